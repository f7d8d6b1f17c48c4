"""Resources.from_host_config validation (Docker's messages), config parsing, unit conversions."""

import pytest

from dockyard.drivers.cgroups import Resources, parse_cpulist
from dockyard.errors import ConfigError, InvalidArgument
from dockyard_cgroups.common import parse_config
from dockyard_cgroups.v2 import blkio_to_io_weight, shares_to_weight

MIB = 1024 * 1024


def hc(**kw):
    return Resources.from_host_config(kw, ncpus=2)


def test_empty_host_config():
    assert hc().is_empty()
    assert Resources.from_host_config({}).is_empty()


def test_all_keys():
    r = hc(Memory=64 * MIB, MemorySwap=128 * MIB, MemoryReservation=32 * MIB, CpuPeriod=50000,
           CpuQuota=25000, CpuShares=512, CpusetCpus="0", CpusetMems="0", PidsLimit=10, BlkioWeight=300)
    assert r == Resources(memory=64 * MIB, memory_swap=128 * MIB, memory_reservation=32 * MIB,
                          cpu_period=50000, cpu_quota=25000, cpu_shares=512, cpuset_cpus="0",
                          cpuset_mems="0", pids_limit=10, blkio_weight=300)
    assert r.cfs() == (25000, 50000)


def test_zero_means_unset():
    assert hc(Memory=0, NanoCpus=0, CpuShares=0, CpusetCpus="").is_empty()


def test_memory_minimum():
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        hc(Memory=4 * MIB)


def test_swap_defaults_to_twice_memory():
    assert hc(Memory=64 * MIB).memory_swap == 128 * MIB
    assert hc(Memory=64 * MIB, MemorySwap=-1).memory_swap == -1


def test_swap_below_memory():
    with pytest.raises(InvalidArgument, match="Minimum memoryswap limit should be larger than memory limit"):
        hc(Memory=64 * MIB, MemorySwap=32 * MIB)


def test_swap_without_memory():
    with pytest.raises(InvalidArgument, match="always set the Memory limit"):
        hc(MemorySwap=64 * MIB)
    assert Resources.from_host_config({"MemorySwap": 64 * MIB}, update=True).memory_swap == 64 * MIB


def test_reservation():
    with pytest.raises(InvalidArgument, match="can not be less than memory reservation"):
        hc(Memory=32 * MIB, MemoryReservation=64 * MIB)
    with pytest.raises(InvalidArgument, match="Minimum memory reservation allowed is 6MB"):
        hc(MemoryReservation=MIB)


def test_nano_cpus():
    r = hc(NanoCpus=500_000_000)
    assert r.cfs() == (50000, 100000)
    with pytest.raises(InvalidArgument, match="Nano CPUs and CPU Quota cannot both be set"):
        hc(NanoCpus=10**9, CpuQuota=50000)
    with pytest.raises(InvalidArgument, match="Nano CPUs and CPU Period cannot both be set"):
        hc(NanoCpus=10**9, CpuPeriod=50000)
    with pytest.raises(InvalidArgument) as e:
        hc(NanoCpus=3 * 10**9)
    assert str(e.value) == "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"


def test_cfs_ranges():
    with pytest.raises(InvalidArgument, match="CPU cfs period"):
        hc(CpuPeriod=999)
    with pytest.raises(InvalidArgument, match="CPU cfs quota can not be less than 1ms"):
        hc(CpuQuota=999)
    assert hc(CpuQuota=-1).cpu_quota == -1


def test_shares_clamped_like_docker():
    assert hc(CpuShares=1).cpu_shares == 2
    assert hc(CpuShares=10**7).cpu_shares == 262144


def test_blkio_weight_range():
    with pytest.raises(InvalidArgument, match="Range of blkio weight is from 10 to 1000"):
        hc(BlkioWeight=5)


def test_pids_limit_unlimited():
    assert hc(PidsLimit=-1).pids_limit == 0
    assert hc(PidsLimit=0).pids_limit == 0


def test_cpuset_validation():
    with pytest.raises(InvalidArgument, match="Requested CPUs are not available"):
        hc(CpusetCpus="0-4095")
    with pytest.raises(InvalidArgument, match="Invalid value"):
        hc(CpusetCpus="a-b")
    assert parse_cpulist("0-2,5") == {0, 1, 2, 5}


def test_type_errors():
    with pytest.raises(InvalidArgument):
        hc(Memory="64m")
    with pytest.raises(InvalidArgument):
        hc(CpusetCpus=1)


@pytest.mark.parametrize("shares,weight", [(2, 1), (1024, 39), (262144, 10000), (0, 0)])
def test_shares_to_weight(shares, weight):
    assert shares_to_weight(shares) == weight


def test_blkio_to_io_weight():
    assert blkio_to_io_weight(10) == 1 and blkio_to_io_weight(1000) == 10000
    assert blkio_to_io_weight(500) == 1 + (490 * 9999) // 990


def test_config():
    assert parse_config({}) == "dockyard"
    assert parse_config({"parent": "/a/b/"}) == "a/b"
    with pytest.raises(ConfigError, match="unknown"):
        parse_config({"parnet": "x"})
    with pytest.raises(ConfigError):
        parse_config({"parent": "../x"})
