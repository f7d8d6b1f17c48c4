"""How the shim puts a container's process (and an exec'd one) into its cgroups: "0" written
to each v1 hierarchy's ``tasks`` file (the single-threaded child moves itself without the
kernel's threadgroup lock and its RCU grace period, ~12 ms a start) and, for the v2 tree,
clone3(CLONE_INTO_CGROUP). Whatever the way, the process (not one thread) must end up in the
container's cgroup of every hierarchy, listed in each ``cgroup.procs``, with its children."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dockyard_cgroups.detect import host_layout

pytestmark = pytest.mark.privileged
LAYOUT = host_layout()
HIERARCHIES = {c: Path(m) for c, m in LAYOUT.v1.items()
               if c in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices")}
if LAYOUT.unified:
    HIERARCHIES[""] = Path(LAYOUT.unified)  # /proc/PID/cgroup names the v2 tree "0::"


def cgroups_of(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctls, path = line.split(":", 2)
        for c in ctls.split(","):
            out[c] = path
    return out


def assert_in_container_cgroups(pid: int, cid: str) -> None:
    mine = cgroups_of(pid)
    for ctl, root in HIERARCHIES.items():
        assert mine[ctl].endswith("/" + cid), (ctl, mine[ctl])
        procs = (root / mine[ctl].lstrip("/") / "cgroup.procs").read_text().split()
        assert str(pid) in procs, (ctl, procs)
    for task in Path(f"/proc/{pid}/task").iterdir():  # every thread went, not only one
        assert cgroups_of(int(task.name)) == mine


def test_run_and_exec_processes_join_every_hierarchy(d):
    r = d.docker("run", "-d", "--network", "none", "busybox", "sh", "-c", "sleep 300 & sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    state = json.loads(d.docker("inspect", cid).stdout)[0]["State"]
    assert state["Running"]
    assert_in_container_cgroups(state["Pid"], cid)
    # the shell's child inherited them (it forked after the move)
    deadline = time.monotonic() + 10
    while not (children := Path(f"/proc/{state['Pid']}/task/{state['Pid']}/children").read_text().split()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_in_container_cgroups(int(children[0]), cid)

    r = d.docker("exec", "-d", cid, "sleep", "301")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while True:
        pids = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
        found = [int(p.name) for p in pids if _cmdline(p) == b"sleep\x00301\x00"]
        if found:
            break
        assert time.monotonic() < deadline, "the exec'd process did not appear"
        time.sleep(0.05)
    assert_in_container_cgroups(found[0], cid)
    # the pids controller counts them all: the container's two sleeps (sh execs the last one)
    # and the exec'd one
    pids_root = HIERARCHIES.get("pids")
    if pids_root is not None:
        current = int((pids_root / cgroups_of(found[0])["pids"].lstrip("/") / "pids.current").read_text())
        assert current >= 3, current
    assert d.docker("rm", "-f", cid).returncode == 0


def _cmdline(p: Path) -> bytes:
    try:
        return (p / "cmdline").read_bytes()
    except OSError:
        return b""
