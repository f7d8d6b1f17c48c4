"""docker exec and attach-with-stdin end to end: the real docker CLI and docker-py, real kernel."""

import os
import pty
import select
import signal
import struct
import termios
import fcntl
import subprocess
import time

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


@pytest.fixture
def ctr(d):
    r = d.docker("run", "-d", "--hostname", "exechost", "busybox", "sh", "-c",
                 "echo made > /created; exec sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    # ready when /created is written and the shell has exec'd sleep (tests look for PID 1)
    wait_for(lambda: d.docker("exec", cid, "cat", "/created", "/proc/1/cmdline").stdout == b"made\nsleep\x00300\x00")
    return cid


def test_exec_output_and_exit_codes(d, ctr):
    r = d.docker("exec", ctr, "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"
    r = d.docker("exec", ctr, "sh", "-c", "exit 4")
    assert r.returncode == 4
    r = d.docker("exec", ctr, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")


def test_exec_sees_container(d, ctr):
    assert d.docker("exec", ctr, "hostname").stdout == b"exechost\n"
    assert d.docker("exec", ctr, "cat", "/created").stdout == b"made\n"
    ps = d.docker("exec", ctr, "ps", "-o", "pid,args").stdout.decode()
    lines = [line.split(None, 1) for line in ps.splitlines()[1:]]
    assert ["1", "sleep 300"] in lines, ps
    assert d.docker("exec", ctr, "readlink", "/proc/self/ns/net").stdout == \
        d.docker("exec", ctr, "readlink", "/proc/1/ns/net").stdout
    r = d.docker("exec", "-w", "/tmp", "-e", "FOO=bar", "-u", "nobody", ctr, "sh", "-c", "pwd; echo $FOO; id -u")
    assert r.stdout == b"/tmp\nbar\n65534\n", r.stderr


def test_exec_caps_and_cgroup(d, ctr):
    own = d.docker("exec", ctr, "grep", "CapBnd", "/proc/1/status").stdout.split()[-1]
    assert d.docker("exec", ctr, "grep", "CapBnd", "/proc/self/status").stdout.split()[-1] == own
    priv = d.docker("exec", "--privileged", ctr, "grep", "CapBnd", "/proc/self/status").stdout.split()[-1]
    assert int(priv, 16) > int(own, 16)
    assert d.docker("exec", ctr, "cat", "/proc/self/cgroup").stdout == \
        d.docker("exec", ctr, "cat", "/proc/1/cgroup").stdout


def test_exec_stdin(d, ctr):
    r = d.docker("exec", "-i", ctr, "cat", input=b"piped data\n" * 1000)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"piped data\n" * 1000
    r = d.docker("exec", "-i", ctr, "sh", "-c", "read x; exit $x", input=b"7\n")
    assert r.returncode == 7


def test_exec_missing_binary(d, ctr):
    r = d.docker("exec", ctr, "nosuchbinary")
    assert r.returncode in (126, 127)
    out = r.stdout + r.stderr
    assert b'exec: "nosuchbinary": executable file not found in $PATH' in out, out


def test_exec_not_running(d):
    cid = d.docker("create", "busybox", "true").stdout.decode().strip()
    r = d.docker("exec", cid, "true")
    assert r.returncode != 0
    assert b"is not running" in r.stderr


def test_exec_detach_and_inspect(d, ctr):
    client = d.docker_client()
    try:
        api = client.api
        # runs until the test creates /go: "Running" is true however slow the machine is
        script = "while [ ! -e /go ]; do sleep 0.05; done; exit 9"
        eid = api.exec_create(ctr, ["sh", "-c", script])["Id"]
        info = api.exec_inspect(eid)
        assert info["Running"] is False and info["ContainerID"] == client.containers.get(ctr).id
        assert info["ProcessConfig"]["entrypoint"] == "sh"
        assert info["ProcessConfig"]["arguments"] == ["-c", script]
        api.exec_start(eid, detach=True)
        assert api.exec_inspect(eid)["Running"] is True
        assert d.docker("exec", ctr, "touch", "/go").returncode == 0
        wait_for(lambda: not api.exec_inspect(eid)["Running"])
        assert api.exec_inspect(eid)["ExitCode"] == 9
    finally:
        client.close()


def test_docker_py_exec_run(d, ctr):
    client = d.docker_client()
    try:
        c = client.containers.get(ctr)
        assert c.exec_run("sh -c 'exit 3'").exit_code == 3
        r = c.exec_run("echo hi")
        assert (r.exit_code, r.output) == (0, b"hi\n")
        r = c.exec_run(["sh", "-c", "echo a; echo b >&2"], demux=True)
        assert r.output == (b"a\n", b"b\n")
        chunks = b"".join(c.exec_run("sh -c 'for i in 1 2 3; do echo $i; done'", stream=True).output)
        assert chunks == b"1\n2\n3\n"
    finally:
        client.close()


def test_exec_events(d, ctr):
    since = str(int(time.time()) - 1)
    d.docker("exec", ctr, "sh", "-c", "exit 2")
    until = str(int(time.time()) + 1)
    ev = d.docker("events", "--since", since, "--until", until, "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}").stdout.decode()
    assert "exec_create: sh -c exit 2" in ev
    assert "exec_start: sh -c exit 2" in ev
    assert "exec_die 2" in ev


def test_run_interactive_stdin(d):
    r = d.docker("run", "-i", "--rm", "busybox", "cat", input=b"hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hi\n"
    r = d.docker("run", "-i", "--rm", "busybox", "sh", "-c", "wc -c", input=b"x" * 300000)
    assert r.stdout.strip() == b"300000"


def test_exec_no_fd_leak(d, ctr):
    pid = int(d.proc.pid)

    def fds():
        return len(os.listdir(f"/proc/{pid}/fd"))

    for _ in range(3):
        d.docker("exec", ctr, "true")
    before = fds()
    client = d.docker_client()
    try:
        c = client.containers.get(ctr)
        for i in range(50):
            r = c.exec_run(["sh", "-c", f"echo {i}"], stdin=(i % 2 == 0))
            assert r.output == f"{i}\n".encode()
    finally:
        client.close()
    wait_for(lambda: fds() <= before + 5)  # the execs' cleanup may still be closing descriptors


def _pty_run(d, *args, send=b"", timeout=60):
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["DOCKER_CONFIG"] = str(d.base / "docker-config")
        os.execvp("docker", ["docker", "-H", d.url, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"# " in out:
            os.write(fd, send)
            sent = True
        w, st = os.waitpid(pid, os.WNOHANG)
        if w:
            status = st
            break
    if status is None:  # the terminal closed (the CLI is exiting), or out of time
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)  # do not hang on a CLI still waiting for input
        _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_exec_tty(d, ctr):
    code, out = _pty_run(d, "exec", "-it", ctr, "sh", send=b"stty size; tty; exit 5\n")
    assert code == 5, out
    assert b"/dev/pts/" in out, out
    assert b"33 99\r\n" in out, out


def test_run_tty(d):
    code, out = _pty_run(d, "run", "-it", "--rm", "busybox", "sh", send=b"stty size; exit 6\n")
    assert code == 6, out
    assert b"33 99\r\n" in out, out


def test_exec_tty_no_stdin(d, ctr):
    r = d.docker("exec", "-t", ctr, "sh", "-c", "tty; exit 2")
    assert r.returncode == 2
    assert b"/dev/pts/" in r.stdout


def test_exec_paused(d, ctr):
    assert d.docker("pause", ctr).returncode == 0
    try:
        r = d.docker("exec", ctr, "true")
        assert r.returncode != 0
        assert b"paused" in r.stderr, r.stderr
    finally:
        d.docker("unpause", ctr)
    assert d.docker("exec", ctr, "true").returncode == 0


def test_exec_ends_with_container(d, ctr):
    p = subprocess.Popen(["docker", "-H", d.url, "exec", ctr, "sleep", "100"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "DOCKER_CONFIG": str(d.base / "docker-config")})
    wait_for(lambda: "sleep 100" in d.docker("top", ctr).stdout.decode())  # the exec runs
    assert p.poll() is None
    assert d.docker("rm", "-f", ctr).returncode == 0
    p.communicate(timeout=60)
    assert p.returncode != 0


def test_exec_bad_workdir_and_user(d, ctr):
    r = d.docker("exec", "-u", "nosuchuser", ctr, "true")
    assert r.returncode != 0
    assert b"nosuchuser" in r.stdout + r.stderr
    r = d.docker("exec", "-w", "/nonexistent-dir", ctr, "true")
    assert r.returncode != 0


def test_exec_tty_resize_api(d, ctr):
    client = d.docker_client()
    try:
        api = client.api
        # prints the size once the resize has reached the terminal (not after a fixed delay)
        eid = api.exec_create(ctr, ["sh", "-c", 'while [ "$(stty size)" != "20 70" ]; do sleep 0.05; done; stty size'],
                              tty=True)["Id"]
        sock = api.exec_start(eid, tty=True, socket=True)
        wait_for(lambda: api.exec_inspect(eid)["Running"])
        api.exec_resize(eid, height=20, width=70)
        raw = sock._sock if hasattr(sock, "_sock") else sock
        out = b""
        raw.settimeout(30)
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            out += chunk
        raw.close()
        assert b"20 70" in out, out
        info = api.exec_inspect(eid)
        assert info["ProcessConfig"]["tty"] is True and info["ExitCode"] == 0
    finally:
        client.close()


def test_docker_py_exec_run_tty(d, ctr):
    client = d.docker_client()
    try:
        r = client.containers.get(ctr).exec_run("sh -c 'tty; exit 4'", tty=True)
        assert r.exit_code == 4
        assert r.output.startswith(b"/dev/pts/")
    finally:
        client.close()


def test_start_attach_stdin(d):
    cid = d.docker("create", "-i", "busybox", "sh", "-c", "read x; echo got $x").stdout.decode().strip()
    r = d.docker("start", "-ai", cid, input=b"value\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"got value\n"


def test_output_waits_until_the_client_has_read_the_headers(d, ctr):
    """docker-py reads a hijacked stream from the raw socket, under the buffered reader that
    parsed the 101: output that arrived together with the headers was lost (exec_run gave b""
    now and then on a loaded machine). On a Unix socket the daemon sends the output only once
    the client has read the headers; the process itself may start (and end) meanwhile, its
    output waits in its log."""
    import http.client
    import json
    import socket

    client = d.docker_client()
    try:
        eid = client.api.exec_create(ctr, ["echo", "hi"])["Id"]
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(d.socket))
        sock.settimeout(60)
        body = json.dumps({"Detach": False, "Tty": False}).encode()
        sock.sendall(f"POST /exec/{eid}/start HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
                     f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        wait_for(lambda: b"\r\n\r\n" in sock.recv(65536, socket.MSG_PEEK))  # the 101, not read yet
        wait_for(lambda: client.api.exec_inspect(eid)["ExitCode"] is not None)  # it ran, its output is ready
        watch_until = time.monotonic() + 1  # a window to look in (the daemon holds back for 10 s)
        while time.monotonic() < watch_until:
            assert sock.recv(65536, socket.MSG_PEEK).endswith(b"\r\n\r\n"), "output sent before the headers were read"
        response = http.client.HTTPResponse(sock)  # as docker-py: headers through a buffered reader ...
        response.begin()
        assert response.status == 101
        data = b""
        while chunk := sock.recv(65536):  # ... then the raw socket
            data += chunk
        sock.close()
        assert data == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
        assert client.api.exec_inspect(eid)["ExitCode"] == 0
    finally:
        client.close()


def test_exec_monitors_are_reaped(d, ctr):
    """An exec's monitor is the daemon's own child (one fork less per exec): the daemon reaps
    it when the exec ends, whether the exec ran to its end, failed to start or was detached."""
    assert d.docker("exec", ctr, "true").returncode == 0
    assert d.docker("exec", ctr, "/no/such/binary").returncode == 127
    assert d.docker("exec", "-d", ctr, "sh", "-c", "sleep 0.2").returncode == 0
    assert d.docker("exec", ctr, "sh", "-c", "exit 3").returncode == 3

    def exec_children() -> list[tuple[str, str]]:
        """(pid, state) of the daemon's children that are (or were) exec monitors."""
        out = []
        for task in os.listdir(f"/proc/{d.proc.pid}/task"):
            try:
                with open(f"/proc/{d.proc.pid}/task/{task}/children") as f:
                    pids = f.read().split()
            except FileNotFoundError:
                continue
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                except FileNotFoundError:
                    continue
                if state == "Z" or b"/exec/" in cmd:  # a zombie has no cmdline left
                    out.append((pid, state))
        return out

    wait_for(lambda: not exec_children())
