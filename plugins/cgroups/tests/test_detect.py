"""Layout detection on canned /proc/self/mountinfo + /proc/cgroups for three kinds of host."""

from dockyard_cgroups.auto import pick
from dockyard_cgroups.detect import detect
from dockyard_cgroups.v1 import CgroupV1
from dockyard_cgroups.v2 import CgroupV2

import pytest
from dockyard.errors import SkipPlugin

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUPS = """\
#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	1	1
cpu	1	1	1
cpuacct	2	1	1
blkio	7	1	1
memory	4	48	1
devices	5	1	1
freezer	6	1	1
net_cls	0	1	1
perf_event	0	1	1
net_prio	0	1	1
hugetlb	0	1	1
pids	8	1	1
"""

V2_MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
V2_CGROUPS = """\
#subsys_name	hierarchy	num_cgroups	enabled
cpuset	0	120	1
cpu	0	120	1
cpuacct	0	120	1
blkio	0	120	1
memory	0	120	1
devices	0	120	1
freezer	0	120	1
net_cls	0	120	1
perf_event	0	120	1
net_prio	0	120	1
hugetlb	0	120	1
pids	0	120	1
rdma	0	120	1
misc	0	120	1
"""

V1_MOUNTINFO = """\
24 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 24 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
28 24 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct
29 24 0:27 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
30 24 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,net_cls,net_prio
31 24 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
32 24 0:30 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,freezer
33 24 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset
34 24 0:32 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,blkio
35 24 0:33 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,devices
"""
V1_CGROUPS = """\
#subsys_name	hierarchy	num_cgroups	enabled
cpuset	7	1	1
cpu	2	60	1
cpuacct	2	60	1
blkio	8	60	1
memory	3	80	1
devices	9	60	1
freezer	6	1	1
net_cls	4	1	1
perf_event	10	1	1
net_prio	4	1	1
pids	5	66	1
"""


def test_hybrid_host():
    lay = detect(HYBRID_MOUNTINFO, HYBRID_CGROUPS)
    assert lay.mode == "hybrid"
    assert lay.v1["cpu"] == "/sys/fs/cgroup/cpu"
    assert lay.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert lay.v1["memory"] == "/sys/fs/cgroup/memory"
    assert "systemd" not in lay.v1 and "name=systemd" not in lay.v1
    assert lay.unified == "/sys/fs/cgroup/unified"
    assert lay.v2_controllers == {"hugetlb"}
    assert lay.memory_version() == 1
    assert pick(lay) is CgroupV1
    with pytest.raises(SkipPlugin):
        CgroupV2.check(lay)
    CgroupV1.check(lay)


def test_pure_v2_host():
    lay = detect(V2_MOUNTINFO, V2_CGROUPS)
    assert lay.mode == "v2"
    assert lay.v1 == {}
    assert lay.unified == "/sys/fs/cgroup"
    assert {"memory", "cpu", "pids", "cpuset"} <= lay.v2_controllers
    assert lay.memory_version() == 2
    assert pick(lay) is CgroupV2
    with pytest.raises(SkipPlugin, match="v2"):
        CgroupV1.check(lay)
    CgroupV2.check(lay)


def test_classic_v1_comounted():
    lay = detect(V1_MOUNTINFO, V1_CGROUPS)
    assert lay.mode == "v1"
    assert lay.unified is None
    assert lay.v1["cpu"] == lay.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert lay.v1["net_cls"] == "/sys/fs/cgroup/net_cls,net_prio"
    assert lay.memory_version() == 1
    assert pick(lay) is CgroupV1
    with pytest.raises(SkipPlugin):
        CgroupV2.check(lay)


def test_v1_driver_dedups_comounts():
    drv = CgroupV1({"parent": "x"}, layout=detect(V1_MOUNTINFO, V1_CGROUPS))
    mounts = [str(m) for m in drv.mounts]
    assert mounts.count("/sys/fs/cgroup/cpu,cpuacct") == 1
    assert "/sys/fs/cgroup/net_cls,net_prio" not in mounts
    assert drv.unified is None


def test_nothing_mounted():
    lay = detect("", "")
    assert lay.mode == "none" and lay.memory_version() is None
    with pytest.raises(SkipPlugin):
        pick(lay)


def test_escaped_mountpoint():
    line = "40 31 0:37 / /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw\n"
    assert detect(line).unified == "/mnt/cg v2"
