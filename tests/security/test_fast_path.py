"""Attacks on the ``/_ping`` fast path (core/api/fastpath.py, issue 18), against a real daemon.

The fast path answers a ping on the connection, before the server's handler path. Found here:

* **no write backpressure**: the answer was written to the transport whatever its write buffer
  held. A client that pings one request at a time (waiting until the daemon has read each one,
  which it can see in its own socket's queue) and never reads the answers made the daemon
  buffer ~330 bytes per 35-byte ping without end (+9 MB in 20 s from one Python client; every
  ping restarts the idle clock, so no limit closed it). The normal path waits for the client
  to read (the server's drain) and then stops reading its requests. Now the fast path leaves a
  ping to the normal path while the transport's writing is paused, so the same client stalls.

* **a head cut short behind a whole request** (one write: a request, then the first bytes of the
  next) cancelled the header timer and armed none: the rest could wait until the idle timeout
  (300 s), not ``api-header-timeout`` (60 s); on the fast path and the normal one alike.

Also checked here (these held before): a route pipelined behind a ping (in the same write, in
the next one, or split across both) is still authorized by the policy, and a ping refused by
the policy is refused on the fast path too, in order.
"""

from __future__ import annotations

import fcntl
import re
import socket
import struct
import time

import pytest

pytestmark = pytest.mark.privileged

PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
LIST = b"GET /v1.44/containers/json?all=1 HTTP/1.1\r\nHost: x\r\n\r\n"
TIOCOUTQ = 0x5411  # on a Unix stream socket: bytes the peer has not read yet
# bounds on a hang, not expectations
STALL = 5.0
MAX_PINGS = 30000  # ~10 MB of answers: far past any socket and transport buffer
HANG_CLOSE = 300  # more than the idle timeout of slow_daemon: its close comes first


def _unread(s: socket.socket) -> int:
    return struct.unpack("i", fcntl.ioctl(s.fileno(), TIOCOUTQ, b"\0\0\0\0"))[0]


def _read_all(s: socket.socket, wait: float = 2.0) -> bytes:
    out = b""
    s.settimeout(wait)
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            out += chunk
    except (TimeoutError, socket.timeout):
        pass
    return out


@pytest.fixture
def daemon(make_daemon):
    return make_daemon(env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})


@pytest.mark.parametrize("request_", [PING, LIST])  # both fast-path routes
def test_pings_never_read_stall_the_client_not_fill_the_daemon(daemon, request_):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(daemon.socket))
    sent = 0
    stalled = False
    try:
        while sent < MAX_PINGS:
            s.sendall(request_)  # one request per read of the daemon: each one takes the fast path
            sent += 1
            deadline = time.monotonic() + STALL
            while _unread(s) and time.monotonic() < deadline:
                time.sleep(0.0005 if sent % 64 else 0)
            if _unread(s):
                stalled = True  # the daemon stopped reading this client: backpressure
                break
        # the daemon buffered a bounded amount: far fewer answers than pings went out
        assert stalled, f"the daemon read {sent} pings without their answers being read"
        assert sent < MAX_PINGS // 4
        # nothing lost or reordered: reading drains the answers and the daemon reads on
        s.setblocking(True)
        answers = b""
        while answers.count(b"HTTP/1.1 200 OK") < sent:
            s.settimeout(30)
            chunk = s.recv(1 << 20)
            assert chunk, "connection closed"
            answers += chunk
        assert re.findall(rb"HTTP/1\.1 (\d+)", answers) == [b"200"] * sent
        s.sendall(request_)
        assert b"HTTP/1.1 200 OK" in s.recv(65536)
    finally:
        s.close()
    assert daemon.ping()


# -- the policy still sees what comes behind a ping -----------------------------------------

POLICY = '''
[[rule]]
name = "root"
kind = "unix"
uid = 0
action = "allow"

[[rule]]
name = "pings only"
kind = "unix"
uid = 1001
methods = ["GET"]
routes = ["/_ping"]
action = "allow"
'''


@pytest.fixture
def open_base():
    """A directory uid 1001 can traverse (pytest's tmp_path is 0700 above it); requested before
    make_daemon, so it is removed after the daemon's teardown (which still writes its log)."""
    import shutil
    import tempfile
    from pathlib import Path

    base = Path(tempfile.mkdtemp(prefix="dockyard-fastpath-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_routes_pipelined_behind_a_ping_are_authorized(open_base, make_daemon, tmp_path):
    import os
    import subprocess
    import sys

    base = open_base
    (base / "policy.toml").write_text(POLICY)
    (base / "d.toml").write_text(f'[plugins.auth_tls]\npolicy = "{base / "policy.toml"}"\n')
    d = make_daemon("--config-file", str(base / "d.toml"), base=base / "d")
    (base / "d").chmod(0o711)
    os.chmod(d.socket, 0o666)
    probe = base / "probe.py"
    probe.write_text(_PROBE)
    probe.chmod(0o644)
    uid = 1001
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        sys.executable, str(probe), str(d.socket)],
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    statuses = r.stdout.decode().split()
    # ping, then /info (same write, next write, split), then ping, /version, and a HEAD ping
    # (the rule allows GET only: the fast path runs the policy too), and lists (fast without hooks)
    assert statuses == ["200", "403", "200", "403", "200", "403", "200", "403", "403", "403", "403"], statuses
    d.stop()


_PROBE = r'''
import re, socket, sys, time
P = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
I = b"GET /info HTTP/1.1\r\nHost: x\r\n\r\n"
V = b"GET /v1.44/version HTTP/1.1\r\nHost: x\r\n\r\n"
H = b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
L = b"GET /containers/json HTTP/1.1\r\nHost: x\r\n\r\n"
L2 = b"GET /v1.44/containers/json?all=1 HTTP/1.1\r\nHost: x\r\n\r\n"
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
for part in (P + I, P, I, P + I[:7], I[7:], P + V, H, L, L2):
    s.sendall(part)
    time.sleep(0.05)
want, out = 11, b""
s.settimeout(30)
while len(re.findall(rb"HTTP/1\.1 (\d+)", out)) < want:
    chunk = s.recv(65536)
    if not chunk:
        break
    out += chunk
print(" ".join(x.decode() for x in re.findall(rb"HTTP/1\.1 (\d+)", out)))
'''


# -- a head cut short behind a whole request still meets the header timeout -----------------


@pytest.fixture
def slow_daemon(make_daemon, tmp_path):
    conf = tmp_path / "limits.toml"
    conf.write_text("api-header-timeout = 2\napi-idle-timeout = 120\n")
    return make_daemon("--config-file", str(conf), env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})


@pytest.mark.parametrize("first", [b"/_ping", b"/containers/json", b"/version"])  # the fast paths, the normal one
def test_the_start_of_a_head_behind_a_request_is_timed(slow_daemon, first):
    """Before, a request and the first bytes of the next in one write cancelled the header timer
    and armed none: the cut head held the connection until the idle timeout (300 s by default,
    120 s here), not api-header-timeout's 2 s (the 408 names it; the idle close says nothing)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG_CLOSE)
    s.connect(str(slow_daemon.socket))
    try:
        s.sendall(b"GET " + first + b" HTTP/1.1\r\nHost: x\r\n\r\nGET /_pi")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200 OK"), got[:200]
    assert b"HTTP/1.1 408" in got and b"api-header-timeout" in got, got[-300:]
