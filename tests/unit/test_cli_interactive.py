"""The CLI's interactive session loop against a fake daemon on a socketpair (no root)."""

import os
import socket
import struct
import threading

from dockyard_cli.interactive import exec_body, session


class Conn:
    """What ``Client.hijack`` returns, over one end of a socketpair."""

    def __init__(self, sock, multiplexed=True):
        self.sock, self._early = sock, b""
        self.headers = {"content-type": "application/vnd.docker.multiplexed-stream" if multiplexed
                        else "application/vnd.docker.raw-stream"}

    def recv(self, size=65536):
        return self.sock.recv(size)

    def close_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


def frame(stream, data):
    return struct.pack(">BxxxL", stream, len(data)) + data


def run(daemon, *, tty=False, stdin_data=None, detach_keys=None):
    """Run ``session`` with ``daemon(sock)`` on the other end; returns (detached, out, err)."""
    ours, theirs = socket.socketpair()
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t = threading.Thread(target=daemon, args=(theirs,))
    t.start()
    if stdin_data is not None:
        os.write(in_w, stdin_data)
    os.close(in_w)
    detached = session(Conn(ours, multiplexed=not tty), tty=tty, stdin=stdin_data is not None,
                       detach_keys=detach_keys, stdin_fd=in_r, stdout_fd=out_w, stderr_fd=err_w)
    ours.close()  # as the callers do once the session is over
    t.join(10)
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    out, err = os.read(out_r, 1 << 20), os.read(err_r, 1 << 20)
    os.close(out_r)
    os.close(err_r)
    return detached, out, err


def echo_daemon(sock):
    """Echo stdin as stdout frames until the client's EOF (half-close), then end."""
    while chunk := sock.recv(4096):
        sock.sendall(frame(1, chunk.upper()))
    sock.sendall(frame(2, b"bye\n"))
    sock.close()


def test_stdin_then_half_close_then_output_keeps_flowing():
    detached, out, err = run(echo_daemon, stdin_data=b"hello\n" * 1000)
    assert not detached
    assert out == b"HELLO\n" * 1000 and err == b"bye\n"


def test_no_stdin_half_closes_at_once():
    detached, out, err = run(echo_daemon)
    assert (detached, out, err) == (False, b"", b"bye\n")


def test_tty_detach_keys_end_the_session_and_are_sent_on():
    got = []

    def daemon(sock):
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        got.append(data)
        sock.close()

    detached, out, _ = run(daemon, tty=True, stdin_data=b"ls\r\x01x", detach_keys="ctrl-a,x")
    assert detached
    assert got == [b"ls\r\x01x"]  # the daemon sees the keys too, and keeps the process's stdin


def test_exec_body():
    body = exec_body(("sh", "-c", "x"), interactive=True, tty=True, detach=False, env=["A=1"], user="u",
                     workdir="/w", privileged=False, detach_keys="ctrl-a,x", console_size=(10, 20))
    assert body == {"Cmd": ["sh", "-c", "x"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
                    "AttachStderr": True, "Privileged": False, "Detach": False, "Env": ["A=1"], "User": "u",
                    "WorkingDir": "/w", "DetachKeys": "ctrl-a,x", "ConsoleSize": [10, 20]}
    body = exec_body(("true",), interactive=True, tty=False, detach=True, env=[], user=None, workdir=None,
                     privileged=True, detach_keys=None, console_size=(10, 20))
    assert body == {"Cmd": ["true"], "Tty": False, "AttachStdin": False, "AttachStdout": False,
                    "AttachStderr": False, "Privileged": True, "Detach": True}
