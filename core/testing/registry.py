"""A real registry (Debian's ``docker-registry``: CNCF Distribution) on 127.0.0.1, for tests
and benchmarks: its own config and storage in a temporary directory, plain or with htpasswd
basic auth, stopped (and its storage left to the caller's temp dir) on exit.

    with LocalRegistry(tmp_path / "reg") as reg:            # reg.host == "127.0.0.1:PORT"
        ...
    with LocalRegistry(tmp_path / "reg", users={"alice": "secret"}) as reg:
        ...
"""

from __future__ import annotations

import http.client
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from .daemon import free_port

REGISTRY_BINARY = "docker-registry"


def registry_available() -> bool:
    return shutil.which(REGISTRY_BINARY) is not None


def htpasswd_line(user: str, password: str) -> str:
    """One bcrypt htpasswd entry (Distribution accepts bcrypt only), from ``htpasswd -B``."""
    out = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True, text=True)
    return out.stdout.strip()


class LocalRegistry:
    def __init__(self, base: Path, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.base = Path(base)
        self.users = dict(users or {})
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = self.base / "storage"
        self.config_path = self.base / "config.yml"
        self.log_path = self.base / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        lines = [
            "version: 0.1",
            "log:", "  level: warn", "  accesslog:", "    disabled: true",
            "storage:", "  filesystem:", f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true",
            "http:", f"  addr: {self.host}", "  secret: dockyard-test-secret",
        ]
        if self.users:
            lines += ["auth:", "  htpasswd:", "    realm: dockyard-test", f"    path: {self.base / 'htpasswd'}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 60.0) -> "LocalRegistry":
        self.base.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        if self.users:
            (self.base / "htpasswd").write_text("".join(htpasswd_line(u, p) + "\n" for u, p in self.users.items()))
        self.config_path.write_text(self.config())
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(self.config_path)], stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self.proc.returncode}:\n{self.log()}")
            if self.ping() is not None:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer within {timeout}s:\n{self.log()}")

    def ping(self) -> int | None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            return status
        except OSError:
            return None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "LocalRegistry":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
