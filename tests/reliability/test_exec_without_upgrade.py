"""Issue 14, finding 8: ``POST /exec/{id}/start`` and ``POST /containers/{id}/attach`` from a
client that does not ask to upgrade (curl, plain HTTP) answer as dockerd: ``200`` with the
stream's media type and the raw stream, no chunked encoding, ended by closing the connection.
Before, the headers said ``Transfer-Encoding: chunked`` and the body was no chunks (curl:
"Illegal or missing hexadecimal sequence in chunked-encoding"). With ``Upgrade: tcp`` the
answer is still ``101 UPGRADED``."""

from __future__ import annotations

import json
import socket
import struct
import subprocess

import pytest

pytestmark = pytest.mark.privileged


def api(d, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """A request with a JSON body over the daemon's socket (Content-Length, no upgrade)."""
    data = json.dumps(body).encode() if body is not None else b""
    head, payload = raw(d, f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    return int(head.split(b" ", 2)[1]), payload


def raw(d, request: bytes) -> tuple[bytes, bytes]:
    """Send ``request``, read until the daemon closes (it must close, cleanly): (head, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(d.socket))
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):  # a reset would raise here
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def frames(body: bytes) -> list[tuple[int, bytes]]:
    """Docker's multiplexed stream: 8-byte headers (stream, 0, 0, 0, big-endian length)."""
    out = []
    while body:
        stream, length = struct.unpack(">BxxxL", body[:8])
        out.append((stream, body[8:8 + length]))
        body = body[8 + length:]
    return out


def headers(head: bytes) -> dict[str, str]:
    lines = head.decode().split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


@pytest.fixture
def sleeper(d):
    r = d.docker("run", "-d", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def make_exec(d, cid: str, tty: bool = False) -> str:
    status, body = api(d, "POST", f"/v1.44/containers/{cid}/exec",
                       {"Cmd": ["sh", "-c", "echo out; echo err >&2"], "AttachStdout": True,
                        "AttachStderr": True, "Tty": tty})
    assert status == 201, body
    return json.loads(body)["Id"]


def curl(d, path: str, body: dict, tmp_path) -> tuple[subprocess.CompletedProcess[bytes], dict[str, str], bytes]:
    head_file = tmp_path / "headers"
    r = subprocess.run(["curl", "-sS", "--max-time", "60", "--unix-socket", str(d.socket), "-X", "POST",
                        "-H", "Content-Type: application/json", "-d", json.dumps(body), "-D", str(head_file),
                        f"http://docker{path}"], capture_output=True)
    head = head_file.read_bytes().split(b"\r\n\r\n")[0] if head_file.exists() else b""
    return r, headers(head), r.stdout


def test_exec_start_without_upgrade_with_curl(d, sleeper, tmp_path):
    eid = make_exec(d, sleeper)
    r, hdrs, body = curl(d, f"/v1.44/exec/{eid}/start", {"Detach": False, "Tty": False}, tmp_path)
    assert r.returncode == 0, r.stderr.decode()  # was 56: "Illegal or missing hexadecimal sequence"
    assert "transfer-encoding" not in hdrs
    assert hdrs["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert sorted(frames(body)) == [(1, b"out\n"), (2, b"err\n")]
    status, inspect = api(d, "GET", f"/v1.44/exec/{eid}/json")
    assert json.loads(inspect)["ExitCode"] == 0


def test_exec_start_with_tty_without_upgrade_with_curl(d, sleeper, tmp_path):
    eid = make_exec(d, sleeper, tty=True)
    r, hdrs, body = curl(d, f"/exec/{eid}/start", {"Detach": False, "Tty": True}, tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert "transfer-encoding" not in hdrs
    assert hdrs["content-type"] == "application/vnd.docker.raw-stream"
    assert b"out" in body and b"err" in body and not body.startswith(b"\x01\x00")


def test_exec_start_without_upgrade_on_a_raw_socket_ends_with_a_clean_close(d, sleeper):
    eid = make_exec(d, sleeper)
    data = b'{"Detach":false,"Tty":false}'
    head, body = raw(d, f"POST /v1.41/exec/{eid}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    assert head.startswith(b"HTTP/1.1 200 ")
    hdrs = headers(head)
    assert "transfer-encoding" not in hdrs and "content-length" not in hdrs
    assert hdrs["connection"].lower() == "close"
    # dockerd announces the multiplexed stream from API 1.42 on; the bytes are framed all the same
    assert hdrs["content-type"] == "application/vnd.docker.raw-stream"
    assert sorted(frames(body)) == [(1, b"out\n"), (2, b"err\n")]


def test_exec_start_with_upgrade_is_still_101(d, sleeper):
    eid = make_exec(d, sleeper)
    data = b'{"Detach":false,"Tty":false}'
    head, body = raw(d, f"POST /v1.44/exec/{eid}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
                        f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    hdrs = headers(head)
    assert hdrs["upgrade"] == "tcp" and "transfer-encoding" not in hdrs
    assert hdrs["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert sorted(frames(body)) == [(1, b"out\n"), (2, b"err\n")]


def test_attach_without_upgrade_with_curl(d, tmp_path):
    r = d.docker("run", "-d", "busybox", "sh", "-c", "echo attached; echo also >&2")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    assert d.docker("wait", cid).returncode == 0
    r, hdrs, body = curl(d, f"/v1.44/containers/{cid}/attach?logs=1&stream=0&stdout=1&stderr=1", {}, tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    assert "transfer-encoding" not in hdrs
    assert hdrs["content-type"] == "application/vnd.docker.multiplexed-stream"
    assert sorted(frames(body)) == [(1, b"attached\n"), (2, b"also\n")]
