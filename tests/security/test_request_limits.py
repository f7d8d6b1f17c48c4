"""Request limits in core, with no plugin loaded that could add its own (issue 13, finding 5):
before, a 1 GB JSON body to /containers/create was read whole (daemon at 4.26 GB), a client
could hold a connection forever by sending its headers slowly, and one peer could open as many
connections as it liked.

The daemon runs with ``auth_tls`` disabled and small limits from its TOML config file, so each
limit is reached quickly; the defaults and the config keys are checked at the end.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged

USERS_GID = 100  # "users": the socket's group here, so that uid 1001 can connect
BIG = 64 << 20
# a bound on a hang, not an expectation
HANG = 60


@pytest.fixture
def shared_dir():
    """A directory uid 1001 can traverse (pytest's tmp dirs are root-only)."""
    path = Path(tempfile.mkdtemp(prefix="dockyard-limits-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(shared_dir, make_daemon):  # this order: the daemon finishes before its directory goes
    conf = shared_dir / "dockyardd.toml"
    conf.write_text('api-max-json-body = "1m"\napi-header-timeout = 2\napi-idle-timeout = 2\n'
                    "api-max-connections-per-peer = 8\n")
    return make_daemon("--config-file", str(conf), "-G", grp.getgrgid(USERS_GID).gr_name,
                       base=shared_dir / "d", env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})


def _connect(d) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(HANG)
    s.connect(str(d.socket))
    return s


def _response(s: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP response read from ``s`` (Content-Length bodies)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    while length is not None and len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) << 10
    raise AssertionError("no VmRSS")


def _send_body(s: socket.socket, chunks) -> None:
    try:
        for chunk in chunks:
            s.sendall(chunk)
    except OSError:
        pass  # the daemon stopped reading: expected once it answered 413


def _ping(d, s: socket.socket | None = None) -> int:
    s = s or _connect(d)
    try:
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        return _response(s)[0]
    finally:
        s.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_json_body_over_the_limit_is_413_and_never_read_whole(daemon, chunked):
    d = daemon
    before = _rss(d.proc.pid)
    s = _connect(d)
    block = b" " * (1 << 20)
    if chunked:
        head = (b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        chunks = [b"%x\r\n%s\r\n" % (len(block), block)] * (BIG // len(block)) + [b"0\r\n\r\n"]
    else:
        head = (b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % BIG)
        chunks = [block] * (BIG // len(block))
    s.sendall(head)
    sender = threading.Thread(target=_send_body, args=(s, chunks), daemon=True)
    sender.start()
    try:
        status, body = _response(s)
    finally:
        s.close()
        sender.join(HANG)
    assert status == 413
    message = json.loads(body)["message"]
    assert "1 MiB" in message and "api-max-json-body" in message
    assert _rss(d.proc.pid) - before < BIG // 2  # the body was not kept
    assert _ping(d) == 200
    # a body under the limit is still an ordinary request, read and answered by the handler
    body = json.dumps({"Image": "no-such-image:latest", "Labels": {"x": "y" * (512 << 10)}}).encode()
    s = _connect(d)
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    status, body = _response(s)
    s.close()
    assert status == 404 and "No such image" in json.loads(body)["message"]


def test_slow_headers_and_idle_connections_are_cut_off(daemon):
    d = daemon
    # headers sent one byte at a time, slower than the 2 s header timeout allows in total
    s = _connect(d)
    request = b"GET /_ping HTTP/1.1\r\nHost: d\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    got = b""
    try:
        for i in range(len(request)):
            s.sendall(request[i:i + 1])
            time.sleep(0.2)
    except OSError:
        pass  # cut off while sending
    try:
        got = s.recv(65536)
    except OSError:
        pass
    s.close()
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got
    if got:
        assert b"api-header-timeout" in got
    # a connection that never sends anything is closed too
    s = _connect(d)
    got = s.recv(65536)
    s.close()
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got
    # and a kept-alive connection, idle after its answer, is closed (api-idle-timeout)
    s = _connect(d)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
    assert _response(s)[0] == 200
    assert s.recv(65536) == b""
    s.close()


def test_too_many_connections_from_one_peer_are_refused_others_still_served(daemon, busybox_tar):
    d = daemon
    d.load(busybox_tar)
    # hijacked connections (attach, exec) count while open and not after: more of them than the
    # cap, one after another, leave every slot free again
    for _ in range(10):
        r = d.docker("run", "--rm", "--network", "none", "busybox", "true", timeout=HANG)
        assert r.returncode == 0, r.stderr
    held = []
    try:
        for _ in range(8):  # the cap: 8 event streams, each a legitimate long-lived request
            s = _connect(d)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
            held.append(s)
        for s in held:  # every stream has its answer's head: the 8 connections are counted
            data = s.recv(4096)
            assert data.startswith(b"HTTP/1.1 200"), data
        s = _connect(d)
        s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        status, body = _response(s)
        assert status == 429
        assert "api-max-connections-per-peer" in json.loads(body)["message"]
        assert s.recv(65536) == b""  # and closed
        s.close()
        # another uid on the same socket has connections of its own
        r = subprocess.run(["setpriv", "--reuid", "1001", "--regid", str(USERS_GID), "--clear-groups",
                            "curl", "-sS", "--unix-socket", str(d.socket), "http://d/_ping"],
                           capture_output=True, text=True, timeout=HANG)
        assert r.returncode == 0 and r.stdout == "OK", r.stderr
    finally:
        for s in held:
            s.close()
    # once its streams are closed, root is served again
    wait_for(lambda: _ping(d) == 200, timeout=HANG)


def test_streamed_uploads_are_not_json_bodies(daemon, busybox_tar, tmp_path):
    """The 1 MiB JSON limit does not apply to docker load, docker cp or a build context."""
    d = daemon
    assert busybox_tar.stat().st_size > 1 << 20
    d.load(busybox_tar)
    cid = d.docker("create", "--network", "none", "busybox", "true").stdout.decode().strip()
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    r = d.docker("cp", str(big), f"{cid}:/big", timeout=HANG)
    assert r.returncode == 0, r.stderr
    r = d.docker("cp", f"{cid}:/big", str(tmp_path / "back"), timeout=HANG)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back").read_bytes() == big.read_bytes()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "blob").write_bytes(os.urandom(2 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY blob /blob\n")
    r = d.docker("build", "-q", "-t", "limits-big", str(ctx), timeout=HANG * 2)
    assert r.returncode == 0, r.stderr
    d.docker("rm", "-f", cid)
    d.docker("rmi", "-f", "limits-big")


def test_defaults_fit_docker_clients():
    from dockyard.config import DaemonConfig

    c = DaemonConfig()
    assert 4 << 20 <= c.api_max_json_body <= 16 << 20
    assert c.api_max_connections_per_peer >= 100
    assert c.api_header_timeout > 0 and c.api_idle_timeout > 0


def test_config_keys(tmp_path):
    from dockyard.config import build
    from dockyard.errors import ConfigError

    conf = tmp_path / "c.toml"
    conf.write_text('api-max-json-body = "8m"\napi-header-timeout = 5\napi-idle-timeout = 0\n'
                    "api-max-connections-per-peer = 100\n")
    c = build({}, conf)
    assert (c.api_max_json_body, c.api_header_timeout, c.api_idle_timeout, c.api_max_connections_per_peer) == \
        (8 << 20, 5, 0, 100)
    conf.write_text("api-max-connections-per-peer = -1\n")
    with pytest.raises(ConfigError):
        build({}, conf)
