"""Issue 14, finding 7: the API sockets listen with dockerd's backlog (4096, capped by the
kernel's ``net.core.somaxconn``), not a site's default 128: a burst of clients arriving while the
daemon's loop is busy queues instead of failing with EAGAIN (Go clients connect non-blocking,
so a full backlog is an immediate error for them)."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from dockyard.builtin.transports import LISTEN_BACKLOG
from dockyard.testing.daemon import free_port

CLIENTS = 300


def somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


def listen_backlog(kind: str, local: str) -> int:
    """Send-Q of a listening socket is its backlog (``ss -l``)."""
    out = subprocess.run(["ss", "-lnH", kind, "src", local], capture_output=True, text=True, check=True).stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    cols = lines[0]
    return int(cols[3] if kind == "-x" else cols[2])  # -x: Netid State Recv-Q Send-Q; -t: State Recv-Q Send-Q


def test_api_sockets_listen_with_dockerds_backlog(make_daemon):
    port = free_port()
    daemon = make_daemon("-H", f"tcp://127.0.0.1:{port}")
    want = min(LISTEN_BACKLOG, somaxconn())
    assert LISTEN_BACKLOG == 4096
    assert listen_backlog("-x", str(daemon.socket)) == want
    assert listen_backlog("-t", f"127.0.0.1:{port}") == want


def test_a_burst_of_non_blocking_connects_to_a_busy_daemon_all_succeed(make_daemon):
    if somaxconn() < CLIENTS + 1:
        pytest.skip(f"net.core.somaxconn is {somaxconn()}: the kernel caps the backlog below {CLIENTS}")
    daemon = make_daemon()
    socks: list[socket.socket] = []
    os.kill(daemon.proc.pid, signal.SIGSTOP)  # the loop accepts nothing: every client waits in the backlog
    try:
        refused = 0
        for _ in range(CLIENTS):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(str(daemon.socket))
            except BlockingIOError as exc:  # EAGAIN: the backlog is full
                assert exc.errno == errno.EAGAIN
                refused += 1
                s.close()
                continue
            socks.append(s)
        assert refused == 0, f"{refused} of {CLIENTS} connects failed with EAGAIN"
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)
    for s in socks:  # and each queued client is served once the loop runs again
        s.setblocking(True)
        s.settimeout(60)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    for s in socks:
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        assert data.endswith(b"OK")
