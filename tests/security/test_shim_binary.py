"""The shim that the daemon runs as root can never be written from a container, and a container
that kills the shim monitors it can see does not make the daemon report live containers as
exited (issue 13, finding 2; CVE-2019-5736 class).

Before the fix a container with ``--pid host`` got a handle to
``<data-root>/runtime/native/dockyard-shim-*`` through ``/proc/PID/exe`` of a shim process,
killed the monitors (the daemon then recorded every container as exited 255), and once no
process executed the file any more (no ETXTBSY) it opened the handle again for writing. Now
every shim process runs from a sealed memfd (write/grow/shrink/chmod sealed), the file on disk
is 0555 root's, and a monitor's death is reconciled from the kernel: the container's process
(same pid and start time) is adopted and its end recorded when it really ends (exit code
unknown: 255).

Each test runs on a daemon of its own: the attacker kills every monitor of that daemon (and
only of that daemon: the pids are passed to it; other daemons run on this machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

# Run in a --pid host container with the monitor pids of its daemon in $MONITORS. Holds a read
# handle (fd 3) to the binary of the first one, tries to write each one's exe while it runs,
# kills them all and its own monitor (no process executes the binary any more: no ETXTBSY),
# then tries to write through the handle it kept. It starts when the test creates /tmp/go (once
# the daemon has the container running: a monitor killed before it reported is a failed start).
# Writes to /report/out, a bind of a test dir (its stdout dies with its monitor) "exe <pid> <link>", "WROTE <how>" on
# a write that succeeded, "refused <how>" otherwise, and "done".
ATTACK = r"""
while [ ! -e /tmp/go ]; do sleep 0.05; done
exec > /report/out 2>&1
self_monitor=$(while read -r k v; do [ "$k" = PPid: ] && echo $v; done < /proc/$$/status)
for m in $MONITORS; do echo "exe $m $(readlink /proc/$m/exe 2>&1)"; done
set -- $MONITORS
# (a failed redirection of `exec` would end the shell: try it in a subshell first)
if (exec 3< /proc/$1/exe) 2>/dev/null; then exec 3< /proc/$1/exe; else echo "nohandle"; fi
try() {
  if echo X | dd of="$1" conv=notrunc bs=1 count=1 2>/dev/null; then echo "WROTE $2"; else echo "refused $2"; fi
}
for m in $MONITORS; do try /proc/$m/exe "running-$m"; done
kill -9 $MONITORS $self_monitor
sleep 1
try /proc/self/fd/3 "handle-after-kill"
for m in $MONITORS; do try /proc/$m/exe "after-kill-$m"; done
echo done
sleep 300
"""


@pytest.fixture
def daemon(make_daemon, busybox_tar):
    d = make_daemon()
    d.load(busybox_tar)
    yield d
    _kill_leftovers(d)


def _kill_leftovers(d) -> None:
    """Kill the processes of the daemon's containers from the host (before its finish()): with
    their monitors killed, a daemon without the fix would leave them running."""
    for pidfile in Path(d.exec_root).rglob("pid"):
        try:
            cpid = int(pidfile.read_text().split()[0])
            if _in_dir(cpid, pidfile.parent):
                os.kill(cpid, signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def _in_dir(pid: int, sd: Path) -> bool:
    """``pid`` is still the process recorded in ``sd`` (start time), not a recycled pid."""
    fields = (sd / "pid").read_text().split()
    if len(fields) < 3:
        return True  # no start time recorded (before the fix): trust the pid (test cleanup only)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[19] == fields[2]


def state_dir(d, cid: str) -> Path:
    for p in Path(d.exec_root).rglob("pid"):
        if p.parent.name == cid:
            return p.parent
    raise AssertionError(f"no runtime state dir for {cid}")


def pids(d, cid: str) -> tuple[int, int]:
    cpid, mpid = (int(x) for x in (state_dir(d, cid) / "pid").read_text().split()[:2])
    return cpid, mpid


def run(d, *args: str) -> str:
    r = d.docker("run", "-d", "--network", "none", *args)  # no network needed: none to wait for
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def inspect(d, cid: str) -> dict:
    r = d.docker("inspect", cid)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)[0]


def shim_files(d) -> dict[Path, str]:
    files = sorted(Path(d.data_root).rglob("dockyard-shim-*"))
    assert files, "no installed shim"
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def wait_output(d, cid: str, marker: str, timeout: float = 60) -> str:
    """/tmp/out of the container once it holds ``marker`` (read by an exec)."""
    deadline = time.monotonic() + timeout
    while True:
        out = d.docker("exec", cid, "sh", "-c", "cat /tmp/out 2>/dev/null; true").stdout.decode()
        if marker in out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def test_installed_shim_is_read_only_and_processes_run_a_sealed_copy(daemon):
    d = daemon
    for path in shim_files(d):
        st = path.stat()
        assert st.st_uid == 0 and st.st_gid == 0
        assert st.st_mode & 0o222 == 0, oct(st.st_mode)
    cid = run(d, "busybox", "sleep", "300")
    _, mpid = pids(d, cid)
    assert os.readlink(f"/proc/{mpid}/exe").startswith("/memfd:dockyard-shim")
    # host root (every capability) cannot write it either: no container can
    try:
        fd = os.open(f"/proc/{mpid}/exe", os.O_WRONLY)
    except OSError:
        pass
    else:
        try:
            with pytest.raises(OSError):
                os.write(fd, b"X")
        finally:
            os.close(fd)


@pytest.mark.parametrize("caps", [["--cap-add", "SYS_PTRACE"], []], ids=["sys_ptrace", "default_caps"])
def test_pid_host_container_cannot_write_the_shim(daemon, caps, tmp_path):
    d = daemon
    before = shim_files(d)
    victim = run(d, "busybox", "sleep", "300")
    ex = d.docker("exec", "-d", victim, "sleep", "300")  # an exec monitor too
    assert ex.returncode == 0, ex.stderr
    time.sleep(0.2)
    monitors = [pids(d, victim)[1]]
    for pidfile in (state_dir(d, victim) / "exec").glob("*/pid"):
        monitors.append(int(pidfile.read_text().split()[1]))
    report = tmp_path / "report"
    report.mkdir()
    attacker = run(d, "--pid", "host", *caps, "-e", "MONITORS=" + " ".join(map(str, monitors)),
                   "-v", f"{report}:/report", "busybox", "sh", "-c", ATTACK)
    assert d.docker("exec", attacker, "touch", "/tmp/go").returncode == 0
    deadline = time.monotonic() + 60
    while "done" not in (out := _read(report / "out")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "done" in out, out
    assert "WROTE" not in out, out
    assert shim_files(d) == before
    if caps:  # with CAP_SYS_PTRACE it could follow the link: it names the sealed memfd
        links = [line for line in out.splitlines() if line.startswith("exe ")]
        assert links and all("/memfd:dockyard-shim" in line for line in links), out


def test_default_container_never_gets_a_writable_shim(daemon):
    """A default container (its own pid namespace, with CAP_SYS_PTRACE) that holds any foreign
    executable it sees through /proc/PID/exe of a process in its namespace (an exec helper before
    its execve) and tries to write it, while many execs run. A regression guard: before the fix
    only ETXTBSY stopped this write (the monitors still executed the file), so it did not fail
    then; the handle it can get now is the sealed memfd, or nothing (non-dumpable)."""
    d = daemon
    before = shim_files(d)
    watcher = r"""
    n=0
    while :; do
      for p in /proc/[0-9]*; do
        [ "$p/exe" -ef /bin/busybox ] && continue
        (
          exec 3< "$p/exe" || exit
          if echo X | dd of=/proc/self/fd/3 conv=notrunc bs=1 count=1 2>/dev/null; then echo "WROTE $p" >> /tmp/found
          else echo "refused $p" >> /tmp/found; fi
        ) 2>/dev/null
      done
    done
    """
    cid = run(d, "--cap-add", "SYS_PTRACE", "busybox", "sh", "-c", watcher)
    for _ in range(60):
        r = d.docker("exec", cid, "true")
        assert r.returncode == 0, r.stderr
    found = d.docker("exec", cid, "sh", "-c", "cat /tmp/found 2>/dev/null; true").stdout.decode()
    assert "WROTE" not in found, found
    assert shim_files(d) == before


def test_killed_monitor_is_no_exit(daemon):
    """A --pid host container kills the monitors of two others: both are still reported running
    while their processes run (exec works), and the exit is recorded when they end: by a kill
    from outside (exit code unknown: 255) and by `docker kill`."""
    d = daemon
    a = run(d, "busybox", "sleep", "300")
    b = run(d, "busybox", "sleep", "300")
    (apid, amon), (bpid, bmon) = pids(d, a), pids(d, b)
    killer = run(d, "--pid", "host", "busybox", "sh", "-c",
                 f"while [ ! -e /tmp/go ]; do sleep 0.05; done; kill -9 {amon} {bmon}; echo killed > /tmp/out; sleep 300")
    assert d.docker("exec", killer, "touch", "/tmp/go").returncode == 0
    assert "killed" in wait_output(d, killer, "killed")
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{amon}/exe") or os.path.exists(f"/proc/{bmon}/exe"):
        assert time.monotonic() < deadline, "the monitors did not die"
        time.sleep(0.05)
    time.sleep(1)  # what the daemon does when it notices the monitors' end
    for cid, cpid in ((a, apid), (b, bpid)):
        st = inspect(d, cid)["State"]
        assert st["Running"] is True and st["Status"] == "running", st
        assert st["Pid"] == cpid
        assert _in_dir(cpid, state_dir(d, cid))
    r = d.docker("exec", a, "echo", "still-here")
    assert r.returncode == 0 and b"still-here" in r.stdout, r.stderr
    ps = d.docker("ps", "-q", "--no-trunc").stdout.decode().split()
    assert a in ps and b in ps

    os.kill(apid, signal.SIGKILL)  # the container's process ends: the daemon records it
    r = d.docker("wait", a, timeout=30)
    assert r.returncode == 0 and r.stdout.decode().strip() == "255", (r.stdout, r.stderr)
    st = inspect(d, a)["State"]
    assert st["Running"] is False and st["ExitCode"] == 255

    r = d.docker("kill", b)
    assert r.returncode == 0, r.stderr
    r = d.docker("wait", b, timeout=30)
    assert r.returncode == 0, r.stderr
    assert inspect(d, b)["State"]["Running"] is False
    assert not _running(bpid)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan is reaped by whoever adopted it, maybe later)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_monitor_while_the_daemon_is_down(daemon):
    """The same reconciliation at start-up: the monitor dies while the daemon is down; the
    restarted daemon finds the container's process still running, keeps it running, and records
    its exit (255) when it ends."""
    d = daemon
    a = run(d, "busybox", "sleep", "300")
    apid, amon = pids(d, a)
    killer = run(d, "--pid", "host", "busybox", "sh", "-c",
                 f"while [ ! -e /tmp/go ]; do sleep 0.05; done; kill -9 {amon}; echo killed > /tmp/out; sleep 300")
    d.kill()  # live-restore: the containers keep running
    # the go signal is a file in the killer's writable layer: no daemon needed to give it
    upper = [p for p in Path(d.data_root).rglob("tmp") if killer in str(p) and p.is_dir()]
    assert upper, "the killer's /tmp not found in its writable layer"
    (upper[0] / "go").write_text("")
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{amon}/exe"):
        assert time.monotonic() < deadline, "the monitor did not die"
        time.sleep(0.05)
    d.start()
    st = inspect(d, a)["State"]
    assert st["Running"] is True and st["Pid"] == apid, st
    os.kill(apid, signal.SIGKILL)
    r = d.docker("wait", a, timeout=30)
    assert r.returncode == 0 and r.stdout.decode().strip() == "255", (r.stdout, r.stderr)
