"""Unit parts of the service integration: sd_notify's addressing, sd_listen_fds' environment
handling, and the daemon's JSON log time in UTC whatever TZ says."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid

import pytest

from dockyard import sdnotify
from dockyard.builtin.transports import listen_fds
from dockyard.daemon import JSONFormatter


def test_notify_is_a_noop_without_notify_socket(monkeypatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.ready("x") is False


def test_notify_to_an_abstract_socket(monkeypatch) -> None:
    name = f"dockyard-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready("serving") is True
        assert server.recv(4096).decode().splitlines() == ["READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]
        assert sdnotify.stopping() is True
        assert server.recv(4096) == b"STOPPING=1"


def test_notify_to_a_path(monkeypatch, tmp_path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "n.sock"))
        server.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
        assert sdnotify.status("loading") is True
        assert server.recv(4096) == b"STATUS=loading"


def test_listen_fds_for_another_pid_is_nothing_and_env_is_unset(monkeypatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    monkeypatch.setenv("LISTEN_FDNAMES", "api")
    assert listen_fds() == []
    assert not {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} & set(os.environ)


def test_listen_fds_names(monkeypatch) -> None:
    a, b = socket.socketpair()  # fds are usually > 4 here: dup them onto 3 and 4 for the test
    saved = [os.dup(3) if _open(3) else None, os.dup(4) if _open(4) else None]
    try:
        os.dup2(a.fileno(), 3)
        os.dup2(b.fileno(), 4)
        monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
        monkeypatch.setenv("LISTEN_FDS", "2")
        monkeypatch.setenv("LISTEN_FDNAMES", "api:")
        assert listen_fds() == [(3, "api"), (4, "unknown")]
        assert "LISTEN_FDS" not in os.environ
        assert not os.get_inheritable(3)
    finally:
        for fd, old in zip((3, 4), saved):
            if old is None:
                os.close(fd)
            else:
                os.dup2(old, fd)
                os.close(old)
        a.close()
        b.close()


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


@pytest.fixture
def tokyo(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_json_log_time_is_utc(tokyo) -> None:
    record = logging.LogRecord("dockyard.x", logging.INFO, __file__, 1, "hello", None, None)
    record.created = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z; 07:13 the next day in Tokyo
    record.msecs = 250.0
    line = json.loads(JSONFormatter().format(record))
    assert line["time"] == "2023-11-14T22:13:20.250Z"
    assert line["msg"] == "hello"
