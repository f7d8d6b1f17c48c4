"""Interactive containers end to end: TTYs driven through a real pty (Python's ``pty``) with
the real docker CLI and ours, detach keys, attach to a running container, docker-py's
sockets, and what a client that goes away leaves behind (nothing)."""

import fcntl
import os
import pty
import select
import shlex
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged

CTRL_P_Q = b"\x10\x11"


def docker_argv(d, *args):
    return ["docker", "-H", d.url, *args]


def ours_argv(d, *args):
    return [sys.executable, "-m", "dockyard_cli", "-H", d.url, *args]


ARGV = {"docker": docker_argv, "dockyard": ours_argv}


class Pty:
    """A CLI run on a pty of a given size, as a person at a terminal would run it."""

    def __init__(self, d, argv, rows=33, cols=99):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once
            os.environ["DOCKER_CONFIG"] = str(d.base / "docker-config")
            os.execvp(argv[0], argv)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.out = b""
        self.status = None

    def read_until(self, marker, timeout=60):
        deadline = time.monotonic() + timeout
        while marker not in self.out and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                self.out += chunk
            if self._exited():
                break
        assert marker in self.out, self.out
        return self.out

    def send(self, data):
        os.write(self.fd, data)

    def _exited(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status is not None

    def wait(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not self._exited() and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass
        if not self._exited():
            self.kill()
        return self.status

    def kill(self):
        if not self._exited():
            os.kill(self.pid, signal.SIGKILL)
            _, st = os.waitpid(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(st)

    def close(self):
        self.kill()
        os.close(self.fd)


@pytest.fixture
def term(d):
    made = []

    def start(argv, **kw):
        p = Pty(d, argv, **kw)
        made.append(p)
        return p

    yield start
    for p in made:
        p.close()


def running(d, name):
    return d.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == b"true"


def sleeper(d, *flags):
    r = d.docker("run", "-d", *flags, "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


# -- run -it, exec -it, stty size, exit codes ---------------------------------------------------


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_run_it_shell_exit_code_and_size(d, term, cli):
    p = term(ARGV[cli](d, "run", "-it", "--rm", "busybox", "sh"))
    p.read_until(b"# ")
    p.send(b"echo $((6*7)); stty size\r")
    p.read_until(b"33 99\r\n")
    assert b"\r\n42\r\n" in p.out
    p.send(b"exit 5\r")
    assert p.wait() == 5, p.out


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_exec_it_shell_exit_code_and_size(d, term, cli):
    cid = sleeper(d)
    p = term(ARGV[cli](d, "exec", "-it", cid, "sh"), rows=41, cols=123)
    p.read_until(b"# ")
    p.send(b"echo $((6*7)); stty size; tty\r")
    p.read_until(b"41 123\r\n")
    p.read_until(b"/dev/pts/")
    assert b"\r\n42\r\n" in p.out
    p.send(b"exit 4\r")
    assert p.wait() == 4, p.out


def test_our_exec_forwards_window_size_changes(d, term):
    cid = sleeper(d)
    p = term(ours_argv(d, "exec", "-it", cid, "sh"), rows=20, cols=60)
    p.read_until(b"# ")
    fcntl.ioctl(p.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))
    os.kill(p.pid, signal.SIGWINCH)  # what the kernel sends the terminal's foreground group
    wait_for(lambda: d.docker("exec", cid, "sh", "-c", "stty size < /dev/pts/0").stdout == b"50 150\n"
             or None)
    p.send(b"stty size; exit\r")
    assert p.wait() == 0
    assert b"50 150" in p.out


def test_our_terminal_is_restored(d, term, tmp_path):
    """After `dockyard run -it`, the terminal is back in its original (cooked) mode."""
    script = tmp_path / "t.sh"
    script.write_text(f"{shlex.join(ours_argv(d, 'run', '-it', '--rm', 'busybox', 'sh', '-c', 'exit 3'))}\n"
                      "echo rc=$?; stty -a | grep -o -- '-\\?icanon'\n")
    p = term(["sh", str(script)])
    p.read_until(b"icanon")
    assert p.wait() == 0
    assert b"rc=3" in p.out and b"-icanon" not in p.out, p.out


# -- -i without -t ---------------------------------------------------------------------------


def test_our_interactive_pipes_stdin(d):
    r = d.cli("run", "-i", "--rm", "busybox", "cat", input=b"hi\n")
    assert (r.returncode, r.stdout) == (0, b"hi\n"), r.stderr
    cid = sleeper(d)
    r = d.cli("exec", "-i", cid, "sh", "-c", "wc -c; exit 7", input=b"x" * 300000)
    assert (r.returncode, r.stdout.strip()) == (7, b"300000"), r.stderr
    r = d.cli("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, b"out\n", b"err\n")
    created = d.cli("create", "-i", "busybox", "sh", "-c", "read x; echo got $x").stdout.decode().strip()
    r = d.cli("start", "-ai", created, input=b"value\n")
    assert (r.returncode, r.stdout) == (0, b"got value\n"), r.stderr


def test_our_it_needs_a_terminal_and_good_keys(d):
    r = d.cli("run", "-it", "--rm", "busybox", "true", input=b"")
    assert r.returncode != 0 and b"the input device is not a TTY" in r.stderr
    cid = sleeper(d)
    r = d.cli("exec", "-i", "--detach-keys", "ctrl-1", cid, "true")
    assert r.returncode != 0 and b"Invalid detach keys (ctrl-1)" in r.stderr


def test_our_exec_detached(d):
    cid = sleeper(d)
    assert d.cli("exec", "-d", cid, "sh", "-c", "echo done > /flag").returncode == 0
    wait_for(lambda: d.docker("exec", cid, "cat", "/flag").stdout == b"done\n" or None)


def test_exec_missing_or_not_executable(d):
    cid = sleeper(d)
    for run in (d.docker, d.cli):
        r = run("exec", cid, "nosuchbinary")
        assert r.returncode == 127, r
        assert b'exec: "nosuchbinary": executable file not found in $PATH' in r.stdout + r.stderr
        r = run("exec", cid, "/etc/passwd")
        assert r.returncode == 126, r
        assert b"permission denied" in r.stdout + r.stderr


# -- detach keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_run_it_detach_leaves_container_running(d, term, cli):
    name = f"detach-{cli}"
    p = term(ARGV[cli](d, "run", "-it", "--name", name, "busybox", "sh"))
    p.read_until(b"# ")
    p.send(b"echo $((6*7))\r")
    p.read_until(b"42\r\n")
    p.send(CTRL_P_Q)
    assert p.wait() == 0, p.out
    assert running(d, name)
    # attach again: the same shell, still interactive
    p = term(ARGV[cli](d, "attach", name))
    p.send(b"echo again-$((2*3))\r")
    p.read_until(b"again-6")
    p.send(b"exit 3\r")
    assert p.wait() == 3, p.out
    assert not running(d, name)


def test_custom_detach_keys_and_exec_detach(d, term):
    cid = sleeper(d, "--init")
    p = term(ours_argv(d, "exec", "-it", "--detach-keys", "ctrl-a,x", cid, "sh"))
    p.read_until(b"# ")
    p.send(b"echo $$ > /shell.pid; echo stored\r")
    p.read_until(b"stored")
    p.send(b"\x10\x11")  # not the keys this time: passed to the shell
    p.send(b"\x01x")
    assert p.wait() == 0, p.out
    pid = d.docker("exec", cid, "cat", "/shell.pid").stdout.strip()
    ps = d.docker("exec", cid, "ps", "-o", "pid,args").stdout.decode()
    assert any(line.split() == [pid.decode(), "sh"] for line in ps.splitlines()), ps


def test_docker_py_attach_socket_detach_keys(d, client):
    c = client.containers.run("busybox", "sh", detach=True, tty=True, stdin_open=True)
    sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stream": 1,
                                                  "detachKeys": "ctrl-e,e"})
    raw = sock._sock
    raw.settimeout(30)
    raw.sendall(b"echo $((7*8))\n")
    out = b""
    while b"56" not in out:
        chunk = raw.recv(4096)
        assert chunk, out
        out += chunk
    raw.sendall(b"\x05e")
    while raw.recv(4096):  # the daemon ends the stream
        pass
    raw.close()
    time.sleep(0.3)
    c.reload()
    assert c.status == "running"
    evs = d.docker("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                   f"container={c.id}", "--format", "{{.Action}}").stdout.decode().split()
    assert "detach" in evs


def test_bad_detach_keys_are_refused(d, client):
    c = client.containers.run("busybox", "sh", detach=True, tty=True, stdin_open=True)
    with pytest.raises(Exception, match="Invalid detach keys"):
        client.api.attach_socket(c.id, params={"stdin": 1, "stream": 1, "detachKeys": "ctrl-"})._sock.recv(1)
    with pytest.raises(Exception, match="Invalid escape keys"):
        client.api.exec_create(c.id, "true", detach_keys="nope,x")


# -- attach, docker-py streams ---------------------------------------------------------------


def test_attach_to_running_container_shows_new_output(d):
    cid = d.docker("run", "-d", "busybox", "sh", "-c",
                   "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done").stdout.decode().strip()
    wait_for(lambda: b"tick 3" in d.docker("logs", cid).stdout or None)
    # the history before attaching: attach shows none of it (its first line is at least the
    # last logged one; a replay would start at 0). Taken before attaching, so that a slow
    # attach cannot make the bound wrong.
    logged = d.docker("logs", cid).stdout.split()
    p = subprocess.Popen(docker_argv(d, "attach", "--sig-proxy=false", cid), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env={**os.environ, "DOCKER_CONFIG": str(d.base / "docker-config")})
    try:
        first = None
        deadline = time.monotonic() + 60
        lines = b""
        while time.monotonic() < deadline and lines.count(b"\n") < 3:
            lines += p.stdout.read1(4096)
        got = [int(line.split()[1]) for line in lines.splitlines() if line.startswith(b"tick")]
        assert got, lines
        first = got[0]
        assert first >= int(logged[-1]) >= 3  # only new output, not the history
        assert got == list(range(first, first + len(got)))
    finally:
        p.kill()  # docker attach --sig-proxy=false ignores SIGTERM
        p.wait()
    assert running(d, cid)


def test_docker_py_exec_stream_demux(d, client):
    c = client.containers.get(sleeper(d))
    r = c.exec_run(["sh", "-c", "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; exit 3"],
                   stream=True, demux=True)
    chunks = list(r.output)
    out = b"".join(o for o, _ in chunks if o)
    err = b"".join(e for _, e in chunks if e)
    assert (out, err) == (b"a\nc\n", b"b\n")
    assert all(isinstance(x, tuple) and len(x) == 2 for x in chunks)
    assert c.exec_run("sh -c 'exit 9'").exit_code == 9
    assert c.exec_run("nosuchbinary").exit_code == 127
    assert c.exec_run("true", stdin=True).exit_code == 0


def test_docker_py_attach_socket_stdin(d, client):
    c = client.containers.create("busybox", ["sh", "-c", "read x; echo got $x; echo err >&2"], stdin_open=True)
    sock = client.api.attach_socket(c.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    raw = sock._sock
    raw.settimeout(30)
    c.start()
    raw.sendall(b"hello\n")
    raw.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        chunk = raw.recv(4096)
        if not chunk:
            break
        data += chunk
    raw.close()
    frames = []
    while data:
        stream, n = struct.unpack(">BxxxL", data[:8])
        frames.append((stream, data[8:8 + n]))
        data = data[8 + n:]
    assert (1, b"got hello\n") in frames and (2, b"err\n") in frames, frames
    assert c.wait(timeout=30)["StatusCode"] == 0


# -- leaks ------------------------------------------------------------------------------------


def _daemon_fds(d):
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def _exec_monitors(cid):
    """Live shim monitors of execs of the container ``cid``."""
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                cmd = open(f"/proc/{p}/cmdline", "rb").read()
            except OSError:
                continue
            if b"dockyard-shim" in cmd and f"{cid}/exec/".encode() in cmd:
                out.append(int(p))
    return out


def test_no_fd_leak_after_100_execs(d):
    cid = sleeper(d)
    for _ in range(3):
        d.docker("exec", cid, "true")
    # docker-py keeps a pool of keep-alive connections: count with no client connected
    wait_for(lambda: _daemon_fds(d) or None)
    before = _daemon_fds(d)
    client = d.docker_client()
    try:
        c = client.containers.get(cid)
        for i in range(100):
            kind = i % 4
            if kind == 0:
                assert c.exec_run(["sh", "-c", f"echo {i}"]).output == f"{i}\n".encode()
            elif kind == 1:
                assert c.exec_run(["sh", "-c", f"echo {i}"], tty=True).output == f"{i}\r\n".encode()
            elif kind == 2:
                assert c.exec_run(["sh", "-c", "exit 3"], stdin=True).exit_code == 3
            else:
                assert c.exec_run("nosuchbinary").exit_code == 127
    finally:
        client.close()
    wait_for(lambda: _daemon_fds(d) <= before or None)
    wait_for(lambda: not _exec_monitors(cid) or None)
    state = d.exec_root / "runtime" / "native" / cid / "exec"
    wait_for(lambda: not state.exists() or not os.listdir(state) or None)


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_client_killed_mid_stream_leaves_nothing(d, term, cli):
    cid = sleeper(d, "--init")
    for _ in range(2):
        d.docker("exec", cid, "true")
    before = _daemon_fds(d)
    p = term(ARGV[cli](d, "exec", "-it", cid, "sh"))
    p.read_until(b"# ")
    p.send(b"sleep 1000\r")
    wait_for(lambda: b"sleep 1000" in d.docker("exec", cid, "ps", "-o", "args").stdout or None)
    p.kill()  # SIGKILL: no goodbye, the connection just drops

    def gone():
        ps = d.docker("exec", cid, "ps", "-o", "stat,args").stdout.decode().splitlines()[1:]
        live = [line for line in ps if not line.startswith("Z") and "ps -o" not in line]
        return len(live) == 2 or None  # only the init and `sleep 300`

    wait_for(gone)
    wait_for(lambda: not _exec_monitors(cid) or None)
    wait_for(lambda: _daemon_fds(d) <= before + 2 or None)


def test_resize_without_a_tty_is_refused(d, client):
    c = client.containers.get(sleeper(d))
    with pytest.raises(Exception, match="has no TTY"):
        c.resize(height=10, width=20)
    eid = client.api.exec_create(c.id, "true")["Id"]
    with pytest.raises(Exception, match="has no TTY"):
        client.api.exec_resize(eid, height=10, width=20)
    t = client.containers.run("busybox", "sh", detach=True, tty=True, stdin_open=True)
    t.resize(height=12, width=34)  # the shim applies it on its own time (a control fifo)
    wait_for(lambda: t.exec_run("stty size -F /dev/pts/0").output == b"12 34\n")


def test_several_clients_attached_at_once(d, client):
    c = client.containers.create("busybox", ["sh", "-c", "read x; echo got $x"], stdin_open=True, tty=True)
    socks = [client.api.attach_socket(c.id, params={"stdout": 1, "stream": 1, "stdin": i == 0})._sock
             for i in range(3)]
    c.start()
    socks[0].sendall(b"shared\n")
    for s in socks:
        s.settimeout(30)
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        s.close()
        assert b"got shared" in out, out
    assert c.wait(timeout=30)["StatusCode"] == 0
