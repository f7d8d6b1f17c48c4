"""LogDriverSuite: behavioural tests every log driver runs, with real containers on a real
daemon and the real ``docker`` CLI.

Subclass it in a test module (``pytestmark = pytest.mark.privileged``: containers run) and set
``driver`` to the ``--log-driver`` name. Fixtures and hooks a subclass may override:

* ``log_daemon``: the daemon to run containers on, busybox loaded (default: the session's
  ``busybox_daemon``). A driver that needs daemon configuration (a ``[plugins.NAME]`` table)
  starts its own with ``make_daemon("--config-file", ...)``.
* :meth:`run_opts`: extra ``docker run`` arguments (e.g. ``--log-opt`` for the receiver).
* :meth:`stored`: what reached the driver's store for a container, as ``[(stream, bytes)]``
  in order (``stream`` ``"stdout"``/``"stderr"``; each line with its newline, a 16 KiB partial
  piece without). The default reads it back with ``GET /containers/{id}/logs`` (drivers with
  :class:`~dockyard.drivers.logging.ReadableLogs`); a driver that cannot read back collects
  what its receiver got; ``None``: the driver keeps nothing (``none``).

What is checked: lines in order, stdout and stderr apart, a line over 16 KiB, TTY output,
``docker logs -f`` until the container exits (ReadableLogs drivers), no
line lost or doubled across a ``kill -9`` of the daemon while the container writes, unknown
options refused with a 400 naming them (both through :meth:`LogDriver.validate` and ``docker
run``), and the Protocol itself (``docker logs`` works exactly when ReadableLogs is there).
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest

from dockyard.drivers.logging import ForwardedLogs, LogDriver, LogDrivers, ReadableLogs
from dockyard.errors import InvalidArgument
from dockyard.testing.daemon import DaemonProcess, wait_for


def demux(body: bytes) -> list[tuple[str, bytes]]:
    """Docker's multiplexed stream -> [(stream, payload)]."""
    out, i = [], 0
    while i + 8 <= len(body):
        kind, n = struct.unpack(">B3xI", body[i:i + 8])
        out.append(("stderr" if kind == 2 else "stdout", body[i + 8:i + 8 + n]))
        i += 8 + n
    return out


def joined(pieces: list[tuple[str, bytes]], stream: str) -> bytes:
    return b"".join(data for s, data in pieces if s == stream)


class LogDriverSuite:
    driver = ""
    keeps = True  # False: the driver keeps nothing to check (``none``)

    @pytest.fixture
    def log_daemon(self, busybox_daemon: DaemonProcess) -> DaemonProcess:
        return busybox_daemon

    @pytest.fixture
    def run(self, log_daemon: DaemonProcess) -> Any:
        """``run(*args, detach=False)`` -> container name; every container is removed afterwards."""
        names: list[str] = []

        def run(*args: str, detach: bool = False, tty: bool = False, volumes: tuple[str, ...] = ()) -> str:
            name = f"conf-log-{uuid.uuid4().hex[:10]}"
            names.append(name)
            cmd = ["run", "--name", name, "--log-driver", self.driver, *self.run_opts()]
            cmd += ["-d"] if detach else []
            cmd += ["-t"] if tty else []
            for v in volumes:
                cmd += ["-v", v]
            r = log_daemon.docker(*cmd, "busybox", *args, timeout=120)
            assert r.returncode == 0, r.stderr
            return name

        yield run
        for name in names:
            log_daemon.docker("rm", "-f", name)

    def run_opts(self) -> list[str]:
        return []

    def stored(self, daemon: DaemonProcess, name: str) -> list[tuple[str, bytes]] | None:
        status, body = daemon.request("GET", f"/containers/{name}/logs?stdout=1&stderr=1")
        assert status == 200, body
        tty = json.loads(daemon.docker("inspect", name).stdout)[0]["Config"]["Tty"]
        return [("stdout", body)] if tty else demux(body)

    def wait_stored(self, daemon: DaemonProcess, name: str, predicate: Any) -> list[tuple[str, bytes]] | None:
        """What is stored once ``predicate`` holds for it (forwarding drivers store a little
        after the container's exit)."""
        if not self.keeps:
            return None
        return wait_for(lambda: (lambda got: got if predicate(got) else None)(self.stored(daemon, name)), timeout=60)

    # -- the protocol --------------------------------------------------------------------------

    def test_is_a_registered_log_driver(self, log_daemon: DaemonProcess) -> None:
        d = LogDrivers().get(self.driver)
        assert isinstance(d, LogDriver) and d.name == self.driver and d.while_daemon_down
        info = json.loads(log_daemon.docker("info", "--format", "{{json .Plugins.Log}}").stdout)
        assert self.driver in info

    def test_validate_names_an_unknown_option(self, log_daemon: DaemonProcess) -> None:
        d = LogDrivers().get(self.driver)
        with pytest.raises(InvalidArgument, match="no-such-opt"):
            d.validate({"no-such-opt": "1"}, {})
        # the API's 400 names it (the docker CLI refuses any --log-opt for "none" itself)
        import docker

        client = log_daemon.docker_client()
        try:
            opts = dict(o.split("=", 1) for o in self.run_opts()[1::2] if "=" in o)
            hc = client.api.create_host_config(log_config={"Type": self.driver, "Config": {**opts, "no-such-opt": "1"}})
            with pytest.raises(docker.errors.APIError) as err:
                client.api.create_container("busybox", ["true"], host_config=hc)
            assert err.value.response.status_code == 400 and "no-such-opt" in str(err.value.explanation)
        finally:
            client.close()
        if self.driver != "none":
            r = log_daemon.docker("run", "--rm", "--log-driver", self.driver, *self.run_opts(), "--log-opt",
                                  "no-such-opt=1", "busybox", "true")
            assert r.returncode != 0 and b"no-such-opt" in r.stderr, r.stderr

    def test_docker_logs_exactly_when_readable(self, run: Any, log_daemon: DaemonProcess) -> None:
        name = run("echo", "hi")
        r = log_daemon.docker("logs", name)
        if isinstance(LogDrivers().get(self.driver), ReadableLogs):
            wait_for(lambda: log_daemon.docker("logs", name).stdout == b"hi\n", timeout=60)
        else:
            assert r.returncode != 0 and b"configured logging driver does not support reading" in r.stderr

    def test_follow_until_the_container_exits(self, run: Any, log_daemon: DaemonProcess, tmp_path: Path) -> None:
        """``docker logs -f`` shows what is there, then what comes, and ends when the container has
        exited and everything it wrote was shown (ReadableLogs drivers)."""
        if not isinstance(LogDrivers().get(self.driver), ReadableLogs):
            pytest.skip(f"the {self.driver} log driver cannot be read back")
        import subprocess
        import threading

        marks = tmp_path / "follow"
        marks.mkdir()
        name = run("sh", "-c", "echo first; while [ ! -e /m/go ]; do sleep 0.05; done; echo second",
                   detach=True, volumes=(f"{marks}:/m",))
        follower = subprocess.Popen(["docker", "-H", log_daemon.url, "logs", "-f", name], stdout=subprocess.PIPE,
                                    env={**log_daemon.env, "DOCKER_CONFIG": str(log_daemon.base / "docker-config")})
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.extend(follower.stdout or ()), daemon=True)
        reader.start()
        try:
            wait_for(lambda: got == [b"first\n"], timeout=60)
            (marks / "go").touch()
            assert follower.wait(60) == 0  # a bound, not a timing: it ends once the container exited
            reader.join(60)
            assert got == [b"first\n", b"second\n"]
        finally:
            if follower.poll() is None:
                follower.kill()
                follower.wait()

    # -- what reaches the store ----------------------------------------------------------------

    def test_lines_in_order(self, run: Any, log_daemon: DaemonProcess) -> None:
        name = run("sh", "-c", "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done")
        want = b"".join(b"line%d\n" % i for i in range(500))
        got = self.wait_stored(log_daemon, name, lambda g: len(joined(g, "stdout")) >= len(want))
        if got is None:
            return
        assert joined(got, "stdout") == want and joined(got, "stderr") == b""

    def test_stdout_and_stderr_apart(self, run: Any, log_daemon: DaemonProcess) -> None:
        name = run("sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2")
        got = self.wait_stored(log_daemon, name, lambda g: len(g) >= 4)
        if got is None:
            return
        assert joined(got, "stdout") == b"out1\nout2\n"
        assert joined(got, "stderr") == b"err1\nerr2\n"

    def test_line_over_16k(self, run: Any, log_daemon: DaemonProcess) -> None:
        name = run("sh", "-c", 'printf "%20000s\\n" x; echo after')
        want = b" " * 19999 + b"x\nafter\n"
        got = self.wait_stored(log_daemon, name, lambda g: joined(g, "stdout").endswith(b"after\n"))
        if got is None:
            return
        assert joined(got, "stdout") == want

    def test_tty(self, run: Any, log_daemon: DaemonProcess) -> None:
        name = run("sh", "-c", "echo tty1; echo tty2 >&2", tty=True)
        got = self.wait_stored(log_daemon, name, lambda g: b"tty2" in joined(g, "stdout"))
        if got is None:
            return
        out = joined(got, "stdout")
        assert out.replace(b"\r\n", b"\n") == b"tty1\ntty2\n" and joined(got, "stderr") == b""

    def test_nothing_lost_across_a_daemon_restart(self, run: Any, log_daemon: DaemonProcess, tmp_path: Path) -> None:
        """The container writes while the daemon is killed (kill -9) and started again."""
        if not self.keeps:
            pytest.skip(f"the {self.driver} log driver keeps nothing")
        marks = tmp_path / "marks"
        marks.mkdir()
        name = run("sh", "-c", "i=0; while [ $i -lt 100000 ]; do echo tick$i; echo $i > /m/n; i=$((i+1)); "
                   "[ -e /m/stop ] && exit 0; sleep 0.01; done", detach=True, volumes=(f"{marks}:/m",))
        count = marks / "n"

        def written() -> int:
            try:
                return int(count.read_text() or 0)
            except (OSError, ValueError):
                return 0

        wait_for(lambda: written() > 20, timeout=60)
        log_daemon.kill()
        try:
            at_kill = written()
            wait_for(lambda: written() > at_kill + 50, timeout=60)  # it writes while the daemon is down
        finally:
            log_daemon.start()
        (marks / "stop").touch()
        assert log_daemon.docker("wait", name).returncode == 0
        last = written()
        want = b"".join(b"tick%d\n" % i for i in range(last + 1))
        got = self.wait_stored(log_daemon, name, lambda g: joined(g, "stdout").endswith(b"tick%d\n" % last))
        if got is None:
            return
        lines = joined(got, "stdout").splitlines(keepends=True)
        if isinstance(LogDrivers().get(self.driver), ForwardedLogs):
            # the daemon forwards: the lines of the one buffer record in flight at the kill (sent,
            # cursor not yet saved) may come twice; nothing else may
            seen: set[bytes] = set()
            unique: list[bytes] = []
            again: list[bytes] = []
            for x in lines:
                (again if x in seen else unique).append(x)
                seen.add(x)
            assert len(again) <= 5, again
            lines = unique
        assert b"".join(lines) == want  # nothing lost, nothing twice
