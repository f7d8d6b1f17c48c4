"""Service integration (issue 17): socket activation (``-H fd://``) under systemd-socket-activate,
sd_notify READY/STOPPING, the systemd units verified by systemd-analyze, ``--help``/``--version``
for any user, and JSON log lines stamped in UTC."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib" / "systemd"
ACTIVATE = shutil.which("systemd-socket-activate")


class ActivatedDaemon(DaemonProcess):
    """dockyardd started by systemd-socket-activate on ``<base>/dy.sock``: the daemon gets the
    listening socket as fd 3 (LISTEN_FDS) and serves it through ``-H <host>``."""

    def __init__(self, base: Path, host: str = "fd://", fdname: str = "api", env: dict[str, str] | None = None) -> None:
        super().__init__(base, env=env)
        self.socket = self.base / "dy.sock"
        self.url = f"unix://{self.socket}"
        self.host = host
        self.fdname = fdname

    def command(self) -> list[str]:
        # systemd-socket-activate passes only the variables named with -E
        passed = [arg for var in self.env if var in ("PATH", "HOME", "NOTIFY_SOCKET") or var.startswith("DOCKYARD")
                  for arg in ("-E", var)]
        return [ACTIVATE, "-l", str(self.socket), f"--fdname={self.fdname}", *passed,
                sys.executable, "-m", "dockyard", "-H", self.host,
                "--data-root", str(self.data_root), "--exec-root", str(self.exec_root)]


@pytest.mark.privileged
@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate not installed (Debian package systemd)")
@pytest.mark.parametrize("host", ["fd://", "fd://api", "fd://3"])
def test_socket_activation_serves_the_passed_socket(tmp_path: Path, host: str) -> None:
    d = ActivatedDaemon(tmp_path / "d", host=host)
    try:
        d.start()
        status, body = d.request("GET", "/_ping")
        assert (status, body) == (200, b"OK")
        status, body = d.request("GET", "/version")
        assert status == 200 and json.loads(body)["ApiVersion"]
        # the daemon serves the socket systemd made (it binds none of its own)
        assert "API listening on passed socket fd 3" in d.log()
    finally:
        d.finish()
    # the socket belongs to the service manager: the daemon leaves its path alone on exit
    assert d.socket.exists()


@pytest.mark.privileged
@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate not installed (Debian package systemd)")
def test_fd_name_that_was_not_passed_is_a_clear_error(tmp_path: Path) -> None:
    d = ActivatedDaemon(tmp_path / "d", host="fd://other")
    d.base.mkdir(parents=True)
    proc = subprocess.Popen(d.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not d.socket.exists() and proc.poll() is None:
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as s:  # the first connection starts the daemon
            s.connect(str(d.socket))
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert b"fd://other: no such passed socket (passed: 3=api)" in out


@pytest.mark.privileged
def test_sd_notify_ready_and_stopping(tmp_path: Path, make_daemon) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(60)
        d = make_daemon(env={"NOTIFY_SOCKET": str(path)})
        messages = []
        while not any("READY=1" in m for m in messages):
            messages.append(server.recv(4096).decode())
        ready = next(m for m in messages if "READY=1" in m).splitlines()
        assert f"MAINPID={d.proc.pid}" in ready
        assert any(line.startswith("STATUS=") for line in ready)
        assert d.ping()  # READY=1 came once the API serves
        d.stop()
        rest = []
        while not any("STOPPING=1" in m for m in rest):
            rest.append(server.recv(4096).decode())
        assert not any("READY=1" in m for m in rest)


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    service = (UNITS / "dockyard.service").read_text()
    assert "ExecStart=/usr/local/bin/dockyardd -H fd://" in service
    for line in ("Type=notify", "Delegate=yes", "KillMode=process", "TasksMax=infinity", "Restart=always",
                 "Requires=dockyard.socket"):
        assert line in service.splitlines()
    socket_unit = (UNITS / "dockyard.socket").read_text().splitlines()
    for line in ("ListenStream=/run/dockyard.sock", "SocketMode=0660", "SocketGroup=dockyard"):
        assert line in socket_unit
    # verify checks that ExecStart is executable: point it at this environment's dockyardd
    dockyardd = Path(sys.executable).with_name("dockyardd")
    (tmp_path / "dockyard.service").write_text(service.replace("/usr/local/bin/dockyardd", str(dockyardd)))
    shutil.copy(UNITS / "dockyard.socket", tmp_path / "dockyard.socket")
    r = subprocess.run([analyze, "verify", str(tmp_path / "dockyard.service"), str(tmp_path / "dockyard.socket")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def _as_user(uid: int = 1001):
    def demote() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    return demote if os.geteuid() == 0 else None


@pytest.mark.parametrize("flag", ["--help", "-h", "--version", "-v"])
def test_help_and_version_work_for_any_user(flag: str) -> None:
    dockyardd = Path(sys.executable).with_name("dockyardd")
    r = subprocess.run([str(dockyardd), flag], capture_output=True, text=True, preexec_fn=_as_user(),
                       cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    if flag in ("--help", "-h"):
        assert "Usage: dockyardd" in r.stdout and "--data-root" in r.stdout
    else:
        from dockyard import __version__
        assert r.stdout.strip() == f"dockyardd, version {__version__}"


def test_the_daemon_itself_still_needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    dockyardd = Path(sys.executable).with_name("dockyardd")
    r = subprocess.run([str(dockyardd), "--data-root", "/nonexistent"], capture_output=True, text=True,
                       preexec_fn=_as_user(), cwd="/", timeout=60)
    assert r.returncode == 1
    assert "the daemon must run as root" in r.stderr
