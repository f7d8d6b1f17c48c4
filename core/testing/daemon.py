"""Run a real ``dockyardd`` on a temporary socket, for tests and benchmarks."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dockyard_cli.client import UnixHTTPConnection


class DaemonProcess:
    """``dockyardd`` as a subprocess with its own data root, exec root and socket.

    ``args`` are extra daemon flags. The daemon's log goes to ``<base>/daemon.log``.
    """

    # every base a daemon of this process started in: the suite's leak check judges what is in
    # them (tests/conftest.py), also for daemons outside pytest's temp dirs
    started_bases: set[Path] = set()
    started_data_roots: set[Path] = set()

    def __init__(self, base: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.base = Path(base)
        self.data_root = self.base / "data"
        self.exec_root = self.base / "exec"
        self.socket = self.base / "dockyard.sock"
        self.url = f"unix://{self.socket}"
        self.log_path = self.base / "daemon.log"
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "dockyard",
            "-H", self.url, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            # e.g. "--runtime oci": run a whole suite under another runtime driver
            *shlex.split(os.environ.get("DOCKYARD_TEST_DAEMON_ARGS", "")),
            *self.args,
        ]

    def start(self, timeout: float = 60.0) -> "DaemonProcess":
        self.base.mkdir(parents=True, exist_ok=True)
        DaemonProcess.started_bases.add(self.base.resolve())
        DaemonProcess.started_data_roots.add(self.data_root.resolve())
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, env=self.env,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited with {self.proc.returncode}:\n{self.log()}")
            if self.ping() and self.tcp_listening():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dockyardd did not answer within {timeout}s:\n{self.log()}")

    def ping(self) -> bool:
        try:
            conn = UnixHTTPConnection(str(self.socket), timeout=2)
            conn.request("GET", "/_ping")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def tcp_listening(self) -> bool:
        """Every ``-H tcp://`` or ``tls://`` listener accepts connections: the daemon opens its
        listeners one after another, so the Unix socket can answer before a TCP port does."""
        for flag, value in zip(self.args, self.args[1:]):
            if flag == "-H" and value.startswith(("tcp://", "tls://")):
                host, _, port = value.split("://", 1)[1].rstrip("/").rpartition(":")
                if not port.isdigit():
                    continue  # the daemon's default port: not ours to guess
                host = "127.0.0.1" if host in ("", "0.0.0.0") else host.strip("[]")
                try:
                    socket.create_connection((host, int(port)), timeout=2).close()
                except OSError:
                    return False
        return True

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    #: what asyncio logs for a task whose exception nobody retrieved (see dockyard.tasks)
    UNOBSERVED = "Task exception was never retrieved"

    def unobserved_task_errors(self) -> list[str]:
        """The log's "Task exception was never retrieved" reports, each with the lines that
        follow it (the traceback): the fixtures fail a test whose daemon logged one."""
        lines = self.log().splitlines()
        return ["\n".join(lines[i:i + 12]) for i, line in enumerate(lines) if self.UNOBSERVED in line]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def request(self, method: str, path: str, timeout: float = 60) -> tuple[int, bytes]:
        conn = UnixHTTPConnection(str(self.socket), timeout=timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def finish(self) -> None:
        """Remove every container (with its anonymous volumes) and user network, then stop.

        Fixtures end with this, so a test that failed half-way leaves no mount, cgroup, link
        or nft rule behind: a daemon that was killed (or stopped, with live-restore) is started
        again to clean up what its containers still hold."""
        if self.proc is None:
            return
        if self.proc.poll() is not None:
            try:
                self.start()
            except RuntimeError:
                return
        try:
            _, body = self.request("GET", "/containers/json?all=1")
            for c in json.loads(body):
                self.request("DELETE", f"/containers/{c['Id']}?force=1&v=1")
            _, body = self.request("GET", "/networks")
            for n in json.loads(body):
                if n.get("Name") not in ("bridge", "host", "none"):
                    self.request("DELETE", f"/networks/{n['Id']}")
        except (OSError, http.client.HTTPException, ValueError):
            pass
        self.stop()

    def kill(self) -> None:
        """``kill -9``: what live-restore must survive."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def load(self, tar: Path) -> None:
        """Load a docker-save tar (e.g. the ``busybox_tar`` fixture) through the API."""
        conn = UnixHTTPConnection(str(self.socket), timeout=120)
        with open(tar, "rb") as f:
            conn.request("POST", "/images/load?quiet=1", body=f, headers={"Content-Type": "application/x-tar"})
            r = conn.getresponse()
            body = r.read()
        conn.close()
        if r.status != 200 or b"errorDetail" in body:
            raise RuntimeError(f"loading {tar} failed: {r.status} {body[:500]!r}")

    def docker_client(self, **kw: Any) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, **kw)

    def cli(self, *args: str, input: bytes | None = None, timeout: float = 60,
            check: bool = False) -> subprocess.CompletedProcess[bytes]:
        """Run the ``dockyard`` CLI against this daemon."""
        return subprocess.run([sys.executable, "-m", "dockyard_cli", "-H", self.url, *args],
                              input=input, capture_output=True, timeout=timeout, check=check, env=self.env)

    def docker(self, *args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run the real ``docker`` CLI against this daemon."""
        return subprocess.run(["docker", "-H", self.url, *args], input=input, capture_output=True,
                              timeout=timeout, env={**self.env, "DOCKER_CONFIG": str(self.base / "docker-config")})

    def __enter__(self) -> "DaemonProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout``.

    The timeout bounds a wait on a loaded CI machine (2 cores at load 6); it is not an
    expectation: a condition that holds returns at once, so only a failing test pays for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
