"""IPC-namespace sysctls (--sysctl kernel.shm*/kernel.msg*/kernel.sem/fs.mqueue.*): set in
the container's own IPC namespace before its process runs, refused under --ipc host with
Docker's (runc's) message, and never touching the host's values."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged


def test_ipc_sysctls_are_set_in_the_container_s_namespace(d):
    host = {k: Path(f"/proc/sys/{k.replace('.', '/')}").read_text().split() for k in
            ("kernel/shmmax", "kernel/msgmax", "kernel/sem", "fs/mqueue/msg_max", "kernel/shm_rmid_forced")}
    r = d.docker("run", "--rm", "--network", "none",
                 "--sysctl", "kernel.shmmax=68719476736", "--sysctl", "kernel.msgmax=65536",
                 "--sysctl", "kernel.sem=250 32000 100 256", "--sysctl", "fs.mqueue.msg_max=64",
                 "--sysctl", "kernel.shm_rmid_forced=1", "busybox", "sh", "-c",
                 "cat /proc/sys/kernel/shmmax /proc/sys/kernel/msgmax /proc/sys/kernel/sem "
                 "/proc/sys/fs/mqueue/msg_max /proc/sys/kernel/shm_rmid_forced")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["68719476736", "65536", "250", "32000", "100", "256", "64", "1"]
    after = {k: Path(f"/proc/sys/{k}").read_text().split() for k in host}
    assert after == host  # the host's own values are untouched


def test_ipc_sysctls_shared_with_container_ipc_and_refused_for_host(d):
    x = d.docker("run", "-d", "--network", "none", "--ipc", "shareable", "--sysctl", "kernel.msgmnb=32768",
                 "busybox", "sleep", "60").stdout.decode().strip()
    r = d.docker("run", "--rm", "--network", "none", "--ipc", f"container:{x}", "busybox",
                 "cat", "/proc/sys/kernel/msgmnb")
    assert r.stdout.strip() == b"32768", r.stderr
    d.docker("rm", "-f", x)
    r = d.docker("run", "--rm", "--network", "none", "--ipc", "host", "--sysctl", "kernel.shmmax=1048576",
                 "busybox", "true")
    assert r.returncode != 0 and b"is not allowed in the hosts ipc namespace" in r.stderr, r.stderr
