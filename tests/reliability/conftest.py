"""Fixtures of the reliability tests: the shared busybox daemon (``d``, ``client``, as in
tests/integration/conftest.py), a private busybox daemon a test may kill and restart
(``own_daemon``), and :func:`traces` to find anything a container left on the machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from dockyard.testing.daemon import DaemonProcess


def _ids(daemon: DaemonProcess, *args: str) -> set[str]:
    return set(daemon.docker(*args).stdout.decode().split())


@pytest.fixture
def d(busybox_daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """The shared daemon; every container a test makes is removed afterwards."""
    before = _ids(busybox_daemon, "ps", "-aq", "--no-trunc")
    yield busybox_daemon
    for cid in _ids(busybox_daemon, "ps", "-aq", "--no-trunc") - before:
        busybox_daemon.docker("rm", "-fv", cid)


@pytest.fixture
def client(d: DaemonProcess) -> Iterator[Any]:
    c = d.docker_client()
    yield c
    c.close()


@pytest.fixture
def own_daemon(make_daemon: Callable[..., DaemonProcess], busybox_tar: Path) -> Callable[..., DaemonProcess]:
    """``own_daemon(env=...)``: a daemon of this test alone with busybox loaded. Restart it
    on the same data root with ``restart(daemon, env)``; ``make_daemon`` cleans it up."""

    def make(env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = make_daemon(env=env)
        daemon.load(busybox_tar)
        return daemon

    return make


def restart(daemon: DaemonProcess, env: dict[str, str] | None = None) -> DaemonProcess:
    """Start ``daemon`` again (after a crash or stop) on the same data root, with ``env``
    replacing the crash point settings."""
    daemon.stop()
    daemon.env = {k: v for k, v in daemon.env.items() if k != "DOCKYARD_CRASHPOINT"}
    daemon.env.update(env or {})
    return daemon.start()


def traces(daemon: DaemonProcess, cid: str) -> list[str]:
    """Everything of container ``cid`` still on the machine: files or directories named by
    its id under the data and exec roots, mounts, cgroups, processes."""
    found = []
    for root in (daemon.data_root, daemon.exec_root):
        for dirpath, dirnames, filenames in os.walk(root):
            depth = Path(dirpath).relative_to(root).parts
            for name in dirnames + filenames:
                if cid in name:
                    found.append(f"file: {Path(dirpath) / name}")
            if len(depth) >= 3:
                dirnames[:] = []  # ids live near the top (containers/<id>, storage/<driver>/<id>)
            else:
                dirnames[:] = [n for n in dirnames if cid not in n]
    with open("/proc/self/mountinfo") as f:
        found += [f"mount: {line.split()[4]}" for line in f if cid in line]
    for base in Path("/sys/fs/cgroup").iterdir():
        found += [f"cgroup: {p}" for p in base.glob(f"*/{cid}")]
        found += [f"cgroup: {p}" for p in base.glob(f"*/*/{cid}")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if cid.encode() in cmdline:
            found.append(f"process: {pid} " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def cgroup_pids(cid: str) -> set[int]:
    """Processes in any cgroup of ``cid`` (v1 controllers and the v2 tree)."""
    pids: set[int] = set()
    for base in Path("/sys/fs/cgroup").iterdir():
        for p in [*base.glob(f"*/{cid}/cgroup.procs"), *base.glob(f"*/{cid}/tasks")]:
            try:
                pids |= {int(x) for x in p.read_text().split()}
            except OSError:
                pass
    return pids


@pytest.fixture
def crash_daemon(make_daemon: Callable[..., DaemonProcess]) -> Callable[..., DaemonProcess]:
    """``crash_daemon(point)``: a daemon of its own (no image), started once cleanly (its
    default networks exist), then restarted with ``DOCKYARD_CRASHPOINT=point``: it dies (exit
    137, as kill -9) the first time it reaches that point (see ``revive``)."""

    def make(point: str, *args: str) -> DaemonProcess:
        daemon = make_daemon(*args)
        daemon.stop()
        daemon.env["DOCKYARD_CRASHPOINT"] = point
        return daemon.start()

    return make


@pytest.fixture
def revive() -> Callable[[DaemonProcess], DaemonProcess]:
    """``revive(daemon)``: check that a daemon died at its crash point (exit 137) and start it
    again without it (start-up reconciliation runs)."""

    def start(daemon: DaemonProcess) -> DaemonProcess:
        assert daemon.proc is not None
        assert daemon.proc.wait(timeout=60) == 137, f"the daemon did not die at its crash point:\n{daemon.log()}"
        return restart(daemon)

    return start
