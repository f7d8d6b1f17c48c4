"""A full data root degrades but never wedges stop, kill or rm (issue 14, finding 3).

The data root is a 64 MiB tmpfs filled to the last byte. ``docker stop`` used to answer 500
ENOSPC and leave the container running, and ``rm -f`` hung for ever: the exit watcher's
record write raised in a task nobody awaited, so the exit was never signalled. Now the
state changes in memory and waiters are woken; the record is written when space returns;
what cannot work (create) fails with a message naming the cause; and the daemon logs no
"Task exception was never retrieved" (the fixtures fail any test whose daemon does)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from dockyard.testing.daemon import DaemonProcess, wait_for
from dockyard.testing.pytest_plugin import check_task_errors

from .conftest import restart, traces

pytestmark = pytest.mark.privileged


@pytest.fixture
def small_daemon(tmp_path: Path, busybox_tar: Path) -> Iterator[DaemonProcess]:
    """A daemon whose data root is a 64 MiB tmpfs mounted for this test."""
    daemon = DaemonProcess(tmp_path / "d")
    daemon.data_root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0711", "tmpfs", str(daemon.data_root)], check=True)
    try:
        daemon.start()
        daemon.load(busybox_tar)
        yield daemon
    finally:
        for f in daemon.data_root.glob("fill*"):
            f.unlink()
        daemon.finish()
        subprocess.run(["umount", "-l", str(daemon.data_root)], check=False)
    check_task_errors(daemon)


def _fill(root: Path) -> None:
    """Write until the filesystem refuses a single byte more."""
    with open(root / "fill", "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    with pytest.raises(OSError):
        (root / "fill-probe").write_bytes(b"x")


def _ok(daemon: DaemonProcess, *args: str) -> str:
    r = daemon.docker(*args, timeout=60)  # a wedge is a TimeoutExpired, not a hung suite
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def _record(daemon: DaemonProcess, cid: str) -> dict:
    return json.loads((daemon.data_root / "containers" / cid / "config.v2.json").read_text())


def test_stop_kill_and_rm_work_on_a_full_disk(small_daemon):
    d = small_daemon
    stop_me, kill_me, rm_me = (_ok(d, "run", "-d", "--network", "none", "busybox", "sleep", "300") for _ in range(3))
    start_me = _ok(d, "create", "--network", "none", "busybox", "sleep", "300")
    _fill(d.data_root)

    # a start cannot record its intent: a clear error, and nothing half set up is left
    r = d.docker("start", start_me)
    assert r.returncode != 0 and b"no space left on device (ENOSPC)" in r.stderr, r.stderr
    assert json.loads(_ok(d, "inspect", "-f", "{{json .State}}", start_me))["Status"] == "created"
    assert [t for t in traces(d, start_me) if not t.startswith("file: ")] == []

    _ok(d, "stop", "-t", "1", stop_me)
    assert json.loads(_ok(d, "inspect", "-f", "{{json .State}}", stop_me))["Status"] == "exited"
    _ok(d, "kill", kill_me)
    wait_for(lambda: json.loads(_ok(d, "inspect", "-f", "{{json .State}}", kill_me))["Status"] == "exited")
    assert _ok(d, "wait", kill_me) == "137"
    _ok(d, "rm", "-f", rm_me)
    assert rm_me not in _ok(d, "ps", "-aq", "--no-trunc").split()
    assert traces(d, rm_me) == []

    (d.data_root / "fill").unlink()  # the rm freed a little; make it full again
    _fill(d.data_root)
    r = d.docker("create", "--network", "none", "busybox", "true")
    assert r.returncode != 0 and b"no space left on device (ENOSPC)" in r.stderr, r.stderr

    # space returns: the records kept in memory are written (retried every second)
    (d.data_root / "fill").unlink()
    wait_for(lambda: _record(d, stop_me)["status"] == "exited" and _record(d, kill_me)["status"] == "exited")
    assert _record(d, kill_me)["exit_code"] == 137
    assert "Task exception was never retrieved" not in d.log()
    restart(d)
    assert json.loads(_ok(d, "inspect", "-f", "{{json .State}}", stop_me))["Status"] == "exited"
    _ok(d, "start", start_me)  # works again once there is space
    _ok(d, "rm", "-f", stop_me, kill_me, start_me)
