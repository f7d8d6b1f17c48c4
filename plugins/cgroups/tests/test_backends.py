"""Backend-specific checks on this host: the files the v1 driver writes, every hierarchy is
used and cleaned, entry points load through stevedore."""

import secrets
from pathlib import Path

import pytest
import stevedore

from dockyard.drivers.cgroups import CgroupDriver, Resources
from dockyard.errors import ConfigError, InvalidArgument
from dockyard_cgroups.detect import V1_CONTROLLERS, host_layout
from dockyard_cgroups.v1 import CgroupV1

LAYOUT = host_layout()
MIB = 1024 * 1024
needs_v1 = pytest.mark.skipif("memory" not in LAYOUT.v1, reason="no cgroup v1 memory controller")


def load(name, tmp_path, **config):
    return stevedore.DriverManager(
        "dockyard.cgroups", name, invoke_on_load=True,
        invoke_kwds={"config": config, "root": tmp_path / "root", "state": tmp_path / "state"}).driver


def test_entry_points_registered():
    names = set(stevedore.ExtensionManager("dockyard.cgroups").names())
    assert {"v1", "v2", "auto", "fake"} <= names


@pytest.mark.privileged
def test_stevedore_loads_auto(tmp_path):
    drv = load("auto", tmp_path, parent=f"dockyard-test-{secrets.token_hex(4)}")
    assert isinstance(drv, CgroupDriver)
    expected = 1 if LAYOUT.memory_version() == 1 else 2
    assert (drv.name, drv.version, drv.driver) == (f"v{expected}", expected, "cgroupfs")
    assert drv.list() == []  # constructing creates nothing


def test_stevedore_loads_fake(tmp_path):
    drv = load("fake", tmp_path)
    assert isinstance(drv, CgroupDriver)


def test_unknown_config_key(tmp_path):
    with pytest.raises(ConfigError):
        load("fake", tmp_path, bogus=1)
    if "memory" in LAYOUT.v1:
        with pytest.raises(ConfigError):
            CgroupV1({"bogus": 1})


@pytest.fixture
def v1(make_driver):
    return make_driver(CgroupV1)


def _read(p: Path) -> str:
    return p.read_text().strip()


@pytest.mark.privileged
@needs_v1
def test_v1_limit_files(v1):
    cid = "files"
    r = Resources(memory=64 * MIB, memory_swap=96 * MIB, memory_reservation=32 * MIB, nano_cpus=500_000_000,
                  cpu_shares=512, cpuset_cpus="0", cpuset_mems="0", pids_limit=20)
    v1.create(cid, r)
    mem, cpu = Path(LAYOUT.v1["memory"], v1.parent, cid), Path(LAYOUT.v1["cpu"], v1.parent, cid)
    assert int(_read(mem / "memory.limit_in_bytes")) == 64 * MIB
    if (mem / "memory.memsw.limit_in_bytes").exists():
        assert int(_read(mem / "memory.memsw.limit_in_bytes")) == 96 * MIB
    assert int(_read(mem / "memory.soft_limit_in_bytes")) == 32 * MIB
    assert _read(cpu / "cpu.cfs_quota_us") == "50000"
    assert _read(cpu / "cpu.cfs_period_us") == "100000"
    assert _read(cpu / "cpu.shares") == "512"
    assert _read(Path(LAYOUT.v1["cpuset"], v1.parent, cid, "cpuset.cpus")) == "0"
    assert _read(Path(LAYOUT.v1["pids"], v1.parent, cid, "pids.max")) == "20"
    # the parent got cpuset.cpus/mems copied from the root, so children can be populated
    assert _read(Path(LAYOUT.v1["cpuset"], v1.parent, "cpuset.cpus"))
    assert _read(Path(LAYOUT.v1["cpuset"], v1.parent, "cpuset.mems"))

    v1.update(cid, Resources(memory=256 * MIB, memory_swap=512 * MIB, cpu_quota=-1, pids_limit=0))
    assert int(_read(mem / "memory.limit_in_bytes")) == 256 * MIB
    assert _read(cpu / "cpu.cfs_quota_us") == "-1"
    assert _read(Path(LAYOUT.v1["pids"], v1.parent, cid, "pids.max")) == "max"
    v1.update(cid, Resources(memory=16 * MIB, memory_swap=16 * MIB))  # lowering: memory first
    assert int(_read(mem / "memory.limit_in_bytes")) == 16 * MIB


@pytest.mark.privileged
@needs_v1
def test_v1_one_procs_file_per_hierarchy(v1):
    v1.create("procs", Resources())
    files = v1.procs_files("procs")
    expected = {str(Path(m, v1.parent, "procs", "cgroup.procs"))
                for ctl, m in LAYOUT.v1.items() if ctl in V1_CONTROLLERS}
    if LAYOUT.unified:
        expected.add(str(Path(LAYOUT.unified, v1.parent, "procs", "cgroup.procs")))
    assert set(files) == expected
    if LAYOUT.v1.get("cpu") != LAYOUT.v1.get("cpuacct"):  # this host: separate mounts
        assert any("/cpuacct/" in f for f in files) and any("/cpu/" in f for f in files)


@pytest.mark.privileged
@needs_v1
def test_v1_refused_limit_is_invalid_argument_and_cleaned(v1):
    with pytest.raises(InvalidArgument, match="cpuset.cpus"):
        v1.create("bad", Resources(memory=64 * MIB, cpuset_cpus="4095"))
    assert not v1.exists("bad")
    for m in set(LAYOUT.v1.values()) | {LAYOUT.unified}:
        assert not Path(m, v1.parent, "bad").exists()


@pytest.mark.privileged
@needs_v1
@pytest.mark.skipif(not LAYOUT.named, reason="no named v1 hierarchy (name=systemd) on this host")
def test_v1_remove_parent_also_removes_what_runc_made_in_named_hierarchies(v1):
    """runc makes the containers' cgroup path in name=systemd too and removes only the leaves:
    the daemon's empty parent there went on existing after every daemon (one a test daemon)."""
    made = [Path(m, v1.parent) for m in LAYOUT.named.values()]
    busy = Path(next(iter(LAYOUT.named.values())), v1.parent + "-busy")
    for d in made:
        d.mkdir(exist_ok=True)
    busy.mkdir(exist_ok=True)
    (busy / "child").mkdir(exist_ok=True)  # someone else's parent that still holds a cgroup
    try:
        v1.remove_parent()
        assert [d for d in made if d.exists()] == []
        assert (busy / "child").is_dir()  # rmdir never takes what is in use
    finally:
        for d in (busy / "child", busy, *made):
            if d.exists():
                d.rmdir()


@pytest.mark.privileged
@needs_v1
def test_v1_remove_cleans_every_hierarchy(v1):
    v1.create("gone", Resources(memory=64 * MIB))
    v1.remove("gone")
    for m in set(LAYOUT.v1.values()) | {LAYOUT.unified}:
        if m:
            assert not Path(m, v1.parent, "gone").exists()
    v1.remove_parent()
    for m in set(LAYOUT.v1.values()) | {LAYOUT.unified}:
        if m:
            assert not Path(m, v1.parent).exists()


@pytest.mark.privileged
@needs_v1
def test_v1_stats_specifics(v1):
    v1.create("st", Resources(memory=64 * MIB, cpu_quota=20000, cpu_period=100000))
    s = v1.stats("st")
    assert {"cache", "total_inactive_file", "rss"} <= set(s["memory_stats"]["stats"])
    assert {"usage", "max_usage", "failcnt", "limit"} <= set(s["memory_stats"])
    assert s["memory_stats"]["limit"] == 64 * MIB
    assert len(s["cpu_stats"]["cpu_usage"]["percpu_usage"]) >= 1
    assert v1.oom_kills("st") == 0
