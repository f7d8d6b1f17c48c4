"""Devices, cgroup view and OOM score options without root: parsing, validation, the
devices-cgroup rule list and how the runtime spec encodes them."""

from __future__ import annotations

import os

import pytest

from dockyard.containers import cgroupview, devices, runtime_opts
from dockyard.drivers.cgroups import (ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES_HEAD, DEFAULT_DEVICE_RULES_TAIL,
                                      DeviceRule)
from dockyard.drivers.runtime import CgroupMount, ContainerSpec, DeviceNode, Mount
from dockyard.errors import InvalidArgument
from dockyard.runtime import spec as specmod


def test_rule_text_is_the_kernel_syntax():
    assert str(DeviceRule(False, "a")) == "a"
    assert str(DeviceRule(True, "c", 136, None, "rwm")) == "c 136:* rwm"
    assert str(DeviceRule(True, "b", None, None, "m")) == "b *:* m"


def test_default_list_denies_first_and_has_no_tun():
    assert DEFAULT_DEVICE_RULES_HEAD[0] == DeviceRule(False, "a")
    allowed = {(r.type, r.major, r.minor) for r in DEFAULT_DEVICE_RULES_HEAD + DEFAULT_DEVICE_RULES_TAIL if r.allow}
    assert {("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1),
            ("c", 5, 2), ("c", 136, None), ("c", None, None), ("b", None, None)} == allowed
    assert ("c", 10, 200) not in allowed


@pytest.mark.parametrize("text,rule", [
    ("c 1:11 rwm", DeviceRule(True, "c", 1, 11, "rwm")),
    ("b *:* m", DeviceRule(True, "b", None, None, "m")),
    ("a *:* r", DeviceRule(True, "a", None, None, "r")),
])
def test_parse_rule(text, rule):
    assert devices.parse_rule(text) == rule


@pytest.mark.parametrize("text", ["c 1:11", "x 1:2 rwm", "c 1:2 rwx", "c 1:2 rr", "c a:2 r", "", 5])
def test_bad_rule_is_refused_with_dockers_message(text):
    with pytest.raises(InvalidArgument, match="invalid device cgroup format"):
        devices.parse_rule(text)


def test_mapping_of_a_device_copies_the_host_node():
    st = os.stat("/dev/null")
    nodes, perms = devices.mapping_nodes({"PathOnHost": "/dev/null", "PathInContainer": "/dev/xnull",
                                          "CgroupPermissions": "rw"})
    assert nodes == [DeviceNode("/dev/xnull", "c", 1, 3, st.st_mode & 0o7777, st.st_uid, st.st_gid)]
    assert perms == "rw"
    nodes, perms = devices.mapping_nodes({"PathOnHost": "/dev/null"})  # docker-py may send only this
    assert nodes[0].path == "/dev/null" and perms == "rwm"


def test_mapping_of_a_directory_takes_every_node_below():
    nodes, _ = devices.mapping_nodes({"PathOnHost": "/dev", "PathInContainer": "/hostdev"})
    assert any(n.path == "/hostdev/null" for n in nodes)
    assert all(n.path.startswith("/hostdev/") for n in nodes)


@pytest.mark.parametrize("mapping,message", [
    ({"PathOnHost": "/dev/does-not-exist"}, 'adding custom device "/dev/does-not-exist": no such file or directory'),
    ({"PathOnHost": "/etc/hostname"}, "not a device node"),
    ({"PathOnHost": "/dev/null", "PathInContainer": "relative"}, "invalid device path in container: relative"),
    ({"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}, "invalid device mode: rwx"),
    ({"PathInContainer": "/dev/x"}, "PathOnHost is required"),
])
def test_bad_mapping_is_refused(mapping, message):
    with pytest.raises(InvalidArgument, match=message):
        devices.validate({"Devices": [mapping]})


def test_plan_orders_rules_like_runc():
    plan = devices.plan({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n2",
                                      "CgroupPermissions": "r"}],
                         "DeviceCgroupRules": ["c 1:11 rwm"]})
    head, tail = len(DEFAULT_DEVICE_RULES_HEAD), len(DEFAULT_DEVICE_RULES_TAIL)
    assert plan.rules[:head] == list(DEFAULT_DEVICE_RULES_HEAD)
    assert plan.rules[head:-tail] == [DeviceRule(True, "c", 1, 3, "r"), DeviceRule(True, "c", 1, 11, "rwm")]
    assert plan.rules[-tail:] == list(DEFAULT_DEVICE_RULES_TAIL)
    assert [n.path for n in plan.nodes] == ["/dev/n2"]


def test_privileged_plan_allows_all_and_copies_host_dev():
    plan = devices.plan({"Privileged": True, "DeviceCgroupRules": ["c 1:11 rwm"]})
    assert plan.rules == list(ALLOW_ALL_DEVICES)
    paths = {n.path for n in plan.nodes}
    assert "/dev/null" in paths and "/dev/ptmx" not in paths and "/dev/console" not in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) for p in paths)


def test_runtime_opts_defaults_and_range():
    hc: dict = {}
    runtime_opts.validate(hc, 1)
    assert hc["CgroupnsMode"] == "host" and hc["OomScoreAdj"] == 0
    hc = {"OomScoreAdj": 300}
    runtime_opts.validate(hc, 2)
    assert hc["CgroupnsMode"] == "private"
    assert runtime_opts.cgroupns(hc) is None and runtime_opts.cgroupns({}) == "host"
    with pytest.raises(InvalidArgument, match=r"Invalid value -1001, range for oom score adj is \[-1000, 1000\]"):
        runtime_opts.validate({"OomScoreAdj": -1001}, 1)
    with pytest.raises(InvalidArgument, match="invalid cgroup namespace mode: shared"):
        cgroupview.normalize_mode({"CgroupnsMode": "shared"}, 1)


def ops_of(spec: ContainerSpec, tmp_path) -> tuple[dict, list[list[bytes]]]:
    data = specmod.build(spec, state_dir=tmp_path, log_path=tmp_path / "log", exit_path=tmp_path / "exit",
                         init_path="/sbin/tini")
    recs, i = [], 0
    while i < len(data):
        sp = data.index(b" ", i)
        nl = data.index(b"\n", sp)
        n = int(data[sp + 1:nl])
        recs.append((data[i:sp].decode(), data[nl + 1:nl + 1 + n]))
        i = nl + 2 + n
    return dict(recs), [v.split(b"\0") for k, v in recs if k == "op"]


CG = [CgroupMount("memory", "cgroup", "memory", "/sys/fs/cgroup/memory/dy/x"),
      CgroupMount("cpu,cpuacct", "cgroup", "cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/dy/x")]


def test_spec_private_cgroupns_is_unshared_not_cloned_and_mounts_hierarchies(tmp_path):
    s = ContainerSpec(id="x", rootfs=tmp_path, args=["true"], cgroup_mounts=CG, cgroup_links=[("cpu,cpuacct", "cpu")],
                      namespaces={"net": None, "ipc": None, "uts": None, "pid": None, "cgroup": None},
                      mounts=[Mount("/tmp", "/sys/fs/cgroup", "bind", [])], oom_score_adj=-5)
    d, ops = ops_of(s, tmp_path)
    assert d["cgroupns"] == b"1" and not int(d["clone_flags"]) & specmod.CLONE_NEWCGROUP
    assert d["oom_score_adj"] == b"-5"
    i = ops.index([b"tmpfs", b"/sys/fs/cgroup", b"14", b"mode=755"])
    assert ops[i + 1][:4] == [b"mount", b"cgroup", b"/sys/fs/cgroup/memory", b"cgroup"] and ops[i + 1][5] == b"memory"
    assert ops[i + 2][5] == b"cpu,cpuacct"
    assert ops[i + 3] == [b"symlink", b"cpu,cpuacct", b"/sys/fs/cgroup/cpu"]
    assert ops[i + 4] == [b"setro", b"/sys/fs/cgroup"]
    assert ops.index([b"setro", b"/sys/fs/cgroup"]) < next(  # before a user's mount over it
        j for j, o in enumerate(ops) if o[:3] == [b"bind", b"/tmp", b"/sys/fs/cgroup"])


def test_spec_host_cgroupns_binds_the_container_dirs(tmp_path):
    s = ContainerSpec(id="x", rootfs=tmp_path, args=["true"], cgroup_mounts=CG)
    d, ops = ops_of(s, tmp_path)
    assert "cgroupns" not in d and "oom_score_adj" not in d
    assert [b"bind", b"/sys/fs/cgroup/memory/dy/x", b"/sys/fs/cgroup/memory", b"15", b"0"] in ops
    s.privileged = True  # read-write, and no read-only remount
    d, ops = ops_of(s, tmp_path)
    assert [b"bind", b"/sys/fs/cgroup/memory/dy/x", b"/sys/fs/cgroup/memory", b"14", b"0"] in ops
    assert [b"setro", b"/sys/fs/cgroup"] not in ops


def test_spec_v2_only_host_mounts_cgroup2_itself(tmp_path):
    s = ContainerSpec(id="x", rootfs=tmp_path, args=["true"],
                      cgroup_mounts=[CgroupMount("", "cgroup2", "", "/sys/fs/cgroup/dy/x")],
                      namespaces={"net": None, "ipc": None, "uts": None, "pid": None, "cgroup": None})
    _, ops = ops_of(s, tmp_path)
    assert not any(o[0] == b"tmpfs" and o[1] == b"/sys/fs/cgroup" for o in ops)
    assert [o[:4] for o in ops if o[2:3] == [b"/sys/fs/cgroup"]] == [[b"mount", b"cgroup", b"/sys/fs/cgroup", b"cgroup2"]]


def test_spec_makes_device_nodes(tmp_path):
    s = ContainerSpec(id="x", rootfs=tmp_path, args=["true"], devices=[DeviceNode("/dev/snd/x", "c", 116, 2, 0o660, 0, 29)])
    _, ops = ops_of(s, tmp_path)
    assert [b"mknod", b"/dev/null", b"c", b"1", b"3", b"666", b"0", b"0"] in ops
    assert [b"mknod", b"/dev/snd/x", b"c", b"116", b"2", b"660", b"0", b"29"] in ops
    assert not any(o[0] == b"bind" and o[1] == b"/dev/null" for o in ops)


def test_view_maps_hierarchies_and_links():
    mountinfo = ("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
                 "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
                 "33 31 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
                 "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n")
    mounts, _ = cgroupview.view(["/sys/fs/cgroup/cpu,cpuacct/dy/c1/cgroup.procs",
                                 "/sys/fs/cgroup/unified/dy/c1/cgroup.procs"], mountinfo, root="/nonexistent")
    assert [(m.name, m.fstype, m.options, m.host_dir) for m in mounts] == []  # not under that root
    mounts, _ = cgroupview.view(["/sys/fs/cgroup/cpu,cpuacct/dy/c1/cgroup.procs",
                                 "/sys/fs/cgroup/unified/dy/c1/cgroup.procs"], mountinfo)
    assert [(m.name, m.fstype, m.options, m.host_dir) for m in mounts] == [
        ("cpu,cpuacct", "cgroup", "cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/dy/c1"),
        ("unified", "cgroup2", "", "/sys/fs/cgroup/unified/dy/c1")]
    v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    mounts, links = cgroupview.view(["/sys/fs/cgroup/dy/c1/cgroup.procs"], v2)
    assert [(m.name, m.fstype) for m in mounts] == [("", "cgroup2")] and links == []
