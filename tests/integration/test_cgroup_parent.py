"""--cgroup-parent (HostConfig.CgroupParent) and the daemon's cgroup-parent / exec-opts, as
Docker's cgroupfs driver does them: the container's cgroup is <parent>/<id> in every
hierarchy, limits are enforced there, and the parents the daemon made go away with it."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for
from dockyard_cgroups.detect import host_layout

pytestmark = pytest.mark.privileged
LAYOUT = host_layout()
ROOTS = sorted({Path(m) for c, m in LAYOUT.v1.items()
                if c in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices")}
               | ({Path(LAYOUT.unified)} if LAYOUT.unified else set()))
MEM = Path(LAYOUT.v1["memory"]) if "memory" in LAYOUT.v1 else Path(LAYOUT.unified or "/sys/fs/cgroup")


def rmtree_cgroups(name: str) -> None:
    for root in ROOTS:
        top = root / name
        if top.is_dir():
            for d in sorted((Path(r) for r, _, _ in os.walk(top)), key=lambda p: -len(str(p))):
                d.rmdir()


@pytest.fixture
def prefix():
    name = f"dyk8s-{secrets.token_hex(4)}"
    yield name
    rmtree_cgroups(name)


def inspect(d, cid: str) -> dict:
    return json.loads(d.docker("inspect", cid).stdout)[0]


def cgroup_lines(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controllers: path}."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctls, path = line.split(":", 2)
        out[ctls] = path
    return out


def run(d, *args: str) -> str:
    r = d.docker("run", "-d", "--network", "none", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_container_sits_under_its_parent_in_every_hierarchy(d, prefix):
    parent = f"/{prefix}/kubepods/burstable/pod{secrets.token_hex(4)}"
    cid = run(d, "--cgroup-parent", parent, "-m", "64m", "--cpu-shares", "512", "busybox", "sleep", "60")
    info = inspect(d, cid)
    assert info["HostConfig"]["CgroupParent"] == parent
    lines = cgroup_lines(info["State"]["Pid"])
    controllers = [ctl for ctl in lines if any(x in ctl.split(",") for x in
                                               ("memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "devices"))]
    assert len(controllers) >= 5, lines
    for ctl in controllers:
        assert lines[ctl] == f"{parent}/{cid}", (ctl, lines)
    if "memory" in LAYOUT.v1:
        assert (MEM / parent.lstrip("/") / cid / "memory.limit_in_bytes").read_text().strip() == str(64 << 20)
        assert (Path(LAYOUT.v1["cpu"]) / parent.lstrip("/") / cid / "cpu.shares").read_text().strip() == "512"
    if "cpuset" in LAYOUT.v1:  # new v1 cpuset parents got their cpus/mems (else no task could join)
        assert (Path(LAYOUT.v1["cpuset"]) / prefix / "cpuset.cpus").read_text().strip()
    # exec'd processes join the same cgroup; stats, pause and unpause work under the parent
    r = d.docker("exec", cid, "cat", "/proc/self/cgroup")
    assert f"{parent}/{cid}" in r.stdout.decode(), r.stdout
    stats = json.loads(d.docker("stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
    assert stats["MemUsage"].endswith("64MiB"), stats
    assert d.docker("pause", cid).returncode == 0
    assert inspect(d, cid)["State"]["Status"] == "paused"
    assert d.docker("unpause", cid).returncode == 0
    assert d.docker("rm", "-f", cid).returncode == 0
    assert not [r for r in ROOTS if (r / prefix).exists()], "the parents the daemon made are removed"


def test_memory_limit_of_the_pod_parent_is_enforced(d, prefix):
    """kubelet's pattern: the pod cgroup (made by kubelet, not the engine) carries the limit;
    the container has none of its own and is OOM-killed by its parent's."""
    if "memory" not in LAYOUT.v1:
        pytest.skip("needs the v1 memory controller")
    pod = MEM / prefix / "pod1"
    pod.mkdir(parents=True)
    (pod / "memory.limit_in_bytes").write_text(str(32 << 20))
    if (pod / "memory.memsw.limit_in_bytes").exists():
        (pod / "memory.memsw.limit_in_bytes").write_text(str(32 << 20))
    cid = run(d, "--cgroup-parent", f"/{prefix}/pod1", "busybox", "tail", "/dev/zero")
    assert d.docker("wait", cid).stdout.strip() == b"137"
    state = inspect(d, cid)["State"]
    assert state["OOMKilled"] is True, state
    assert d.docker("rm", cid).returncode == 0
    assert pod.is_dir(), "a parent the daemon did not make is never removed"
    assert not (pod / cid).exists()


def test_shared_parent_stays_until_the_last_container_and_slice_names_are_paths(d, prefix):
    pod = f"{prefix}/kubepods-besteffort-pod1.slice"  # cgroupfs: a *.slice parent is a plain directory
    a = run(d, "--cgroup-parent", pod, "busybox", "sleep", "60")
    b = run(d, "--cgroup-parent", pod, "busybox", "sleep", "60")
    assert f"/{pod}/{a}" in cgroup_lines(inspect(d, a)["State"]["Pid"]).values()
    d.docker("rm", "-f", a)
    assert (MEM / pod / b).is_dir() and inspect(d, b)["State"]["Running"]
    d.docker("rm", "-f", b)
    assert not (MEM / prefix).exists()


def test_daemon_default_parent_and_live_restore(make_daemon, busybox_tar, prefix):
    d = make_daemon("--cgroup-parent", f"{prefix}/docker")
    d.load(busybox_tar)
    cid = run(d, "busybox", "sleep", "60")
    own = run(d, "--cgroup-parent", f"/{prefix}/own", "busybox", "sleep", "60")
    assert inspect(d, cid)["HostConfig"]["CgroupParent"] == ""  # as Docker: the default is not copied in
    assert (MEM / prefix / "docker" / cid).is_dir()  # Nomad's cpuset fixer looks for <parent>/<id>
    d.kill()
    d.start()  # a restarted daemon finds both cgroups under their parents (not "stale")
    for c in (cid, own):
        assert inspect(d, c)["State"]["Running"], c
        assert d.docker("pause", c).returncode == 0 and d.docker("unpause", c).returncode == 0
        stats = json.loads(d.docker("stats", "--no-stream", "--format", "{{json .}}", c).stdout)
        assert stats["PIDs"] == "1", stats
    assert (MEM / prefix / "own" / own).is_dir()
    assert d.docker("rm", "-f", cid, own).returncode == 0
    wait_for(lambda: not (MEM / prefix).exists())


def test_exec_opts_cgroupdriver(make_daemon):
    d = make_daemon("--exec-opt", "native.cgroupdriver=cgroupfs")
    info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
    assert info["CgroupDriver"] == "cgroupfs"
    bad = make_daemon("--exec-opt", "native.cgroupdriver=systemd", start=False)
    with pytest.raises(RuntimeError, match="native.cgroupdriver=systemd"):
        bad.start()
    if Path("/proc/1/comm").read_text().strip() != "systemd":
        assert "PID 1 is not systemd" in bad.log()
    nope = make_daemon("--exec-opt", "native.cgroupdriver=none", start=False)
    with pytest.raises(RuntimeError, match="internally used"):
        nope.start()
