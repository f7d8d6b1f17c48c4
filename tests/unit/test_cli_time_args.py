"""``logs --since/--until`` and ``events --since/--until`` convert times on the client exactly as
the docker CLI does (moby's GetTimestamp): compared with the real docker CLI's requests to a
recording server, under time zones with and without daylight saving time."""

from __future__ import annotations

import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from dockyard_cli.timestamps import TimestampError, get_timestamp

DOCKER = shutil.which("docker")
DOCKYARD = str(Path(sys.executable).with_name("dockyard"))

TIMES = [
    "2023-11-14T10:00:00", "2023-11-14", "2023-11-14T10", "2023-11-14T10:30", "2023-11-14T10:00:00.5",
    "2023-11-14T10:00:00.123456789", "2023-07-01T10:00:00",  # zone-less: local, at today's offset
    "2023-11-14T10:00:00Z", "2023-11-14T10:00:00+02:00", "2023-11-14T10:00:00-05:30", "2023-11-14T10Z",
    "2023-11-14T10:00:00.25+01:00", "1700000000", "1700000000.5",
]


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[str] = []

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if "/containers/" in self.path and self.path.endswith("/json"):
            body = json.dumps({"Id": "c1", "Config": {"Tty": True}}).encode()
        elif self.path.endswith("/_ping"):
            body = b"OK"
        else:
            body = b""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Api-Version", "1.44")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except BrokenPipeError:
                pass

    def log_message(self, *args: object) -> None:
        pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # http.server wants an (host, port) client address
        conn, _ = super().get_request()
        return conn, ("local", 0)


@pytest.fixture
def recorder(tmp_path: Path):
    path = tmp_path / "rec.sock"
    server = _Server(str(path), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen = []
    yield f"unix://{path}"
    server.shutdown()
    server.server_close()


def _sent(cli: str, host: str, tz: str, *args: str) -> dict[str, str]:
    _Recorder.seen = []
    env = {**os.environ, "TZ": tz, "DOCKER_HOST": host, "DOCKYARD_HOST": host}
    subprocess.run([cli, "-H", host, *args], env=env, capture_output=True, timeout=30)
    paths = [p for p in _Recorder.seen if "/logs" in p or "/events" in p]
    assert paths, f"{cli} {args} sent no logs/events request ({_Recorder.seen})"
    query = parse_qs(urlsplit(paths[-1]).query)
    return {k: v[0] for k, v in query.items() if k in ("since", "until")}


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not on PATH")
@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Kolkata"])
def test_same_since_and_until_as_the_docker_cli(recorder: str, tz: str) -> None:
    for value in TIMES:
        for cmd in (["logs", "--since", value, "--until", value, "c1"], ["events", "--since", value, "--until", value]):
            want = _sent(DOCKER, recorder, tz, *cmd)
            got = _sent(DOCKYARD, recorder, tz, *cmd)
            assert got == want, (tz, cmd)
            assert set(got) == {"since", "until"}


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not on PATH")
def test_durations_are_whole_seconds_ago_as_the_docker_cli(recorder: str) -> None:
    for cmd in (["logs", "--since", "90m", "c1"], ["events", "--since", "1h30m", "--until", "-10s"]):
        want = _sent(DOCKER, recorder, "UTC", *cmd)
        got = _sent(DOCKYARD, recorder, "UTC", *cmd)
        assert set(got) == set(want)
        for key in got:
            assert got[key].isdigit() and want[key].isdigit()
            assert abs(int(got[key]) - int(want[key])) < 600  # both "now - 90m"; never a raw "90m"


@pytest.fixture
def new_york(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_zone_less_is_local_at_the_offset_of_now(new_york) -> None:
    december = 1_796_547_453.0  # 2026-12-06: EST, UTC-5
    assert get_timestamp("2023-11-14T10:00:00", december) == "1699974000.000000000"
    assert get_timestamp("2023-07-01T10:00:00", december) == "1688223600.000000000"  # -5 too, as Go
    assert get_timestamp("2023-11-14", december) == "1699938000.000000000"
    assert get_timestamp("2023-11-14T10:00:00Z", december) == "1699956000.000000000"
    assert get_timestamp("10m", december) == "1796546853"
    assert get_timestamp("1700000000.5", december) == "1700000000.5"
    for bad in ("yesterday", "2023-13-01", "1d", "2023-11-14T10:00:00z"):
        with pytest.raises(TimestampError):
            get_timestamp(bad, december)
