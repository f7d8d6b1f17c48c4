"""/dev/shm under --ipc container:X is X's (Docker keeps a shareable container's shm on the
host and binds it), so POSIX shared memory is shared with the IPC namespace, as in a pod."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged


def _run(d, *args: str) -> str:
    r = d.docker("run", "-d", "--network", "none", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_ipc_container_shares_the_donor_s_dev_shm(d):
    x = _run(d, "--ipc", "shareable", "--shm-size", "8m", "busybox", "sh", "-c",
             "echo from-x > /dev/shm/marker; sleep 60")
    y = _run(d, "--ipc", f"container:{x}", "busybox", "sleep", "60")
    r = d.docker("exec", y, "sh", "-c", "cat /dev/shm/marker; echo from-y > /dev/shm/back; df -k /dev/shm | tail -1")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode().split("\n")
    assert out[0] == "from-x"
    assert out[1].split()[1] == "8192", out  # X's size: the same tmpfs
    assert d.docker("exec", x, "cat", "/dev/shm/back").stdout == b"from-y\n"
    px, py = (json.loads(d.docker("inspect", c).stdout)[0]["State"]["Pid"] for c in (x, y))
    assert os.readlink(f"/proc/{px}/ns/ipc") == os.readlink(f"/proc/{py}/ns/ipc")
    host = Path(d.data_root) / "containers" / x / "mounts" / "shm"
    assert os.path.ismount(host) and (host / "marker").read_text() == "from-x\n"
    # a private container keeps its own
    z = _run(d, "busybox", "sleep", "60")
    assert d.docker("exec", z, "ls", "/dev/shm").stdout == b""
    d.docker("rm", "-f", y, z)
    assert d.docker("stop", "-t", "0", x).returncode == 0
    assert not os.path.ismount(host)  # unmounted when X stops, as Docker
    d.docker("rm", x)
