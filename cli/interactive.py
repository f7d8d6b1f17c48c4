"""Interactive streams for ``run -i/-t``, ``start -ai``, ``attach`` and ``exec``.

:func:`session` copies our stdin to a hijacked connection and its output to our
stdout/stderr in one ``select`` loop, with the local terminal in raw mode when the container
or exec has a TTY (restored on every way out: normal end, error, SIGTERM/SIGHUP), the
terminal size sent on start and on every SIGWINCH, and Docker's detach keys (TTY only,
default ctrl-p,ctrl-q): typing them ends the session and leaves the process running. The
keys are sent on like any input: the daemon, given the same ``detachKeys``, finds them too
and keeps the process's stdin open (a client that just goes away hangs up an exec's TTY).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import termios
import tty as ttymod
from typing import Any, Callable, Iterator

import click

from .client import APIError, Client, ClientError, q
from .docker_command import command
from .streams import MULTIPLEXED, Demuxer

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
SEND_BUFFER = 1 << 20  # stop reading stdin while this much is not yet sent


def detach_scanner(keys: str | None) -> Any:
    """A scanner for ``--detach-keys`` (Docker's syntax); bad keys are a usage error."""
    from dockyard.containers.detachkeys import DetachScanner, parse_detach_keys
    from dockyard.errors import InvalidArgument

    try:
        return DetachScanner(parse_detach_keys(keys or DEFAULT_DETACH_KEYS))
    except InvalidArgument as exc:
        raise ClientError(str(exc)) from None


def terminal_size(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None if it is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(fd: int, enabled: bool) -> Iterator[None]:
    """Put the terminal on ``fd`` in raw mode (as docker's ``MakeRaw``) and always restore it.
    SIGTERM and SIGHUP become SystemExit while raw, so the ``finally`` runs for them too."""
    if not enabled or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    previous: dict[int, Any] = {}

    def leave(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, leave)
    try:
        ttymod.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Winch:
    """SIGWINCH -> a byte on a pipe the session loop selects on."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.r = self.w = -1
        self.previous: Any = None

    def __enter__(self) -> "_Winch":
        if self.enabled:
            self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.previous = signal.signal(signal.SIGWINCH, self._handler)
        return self

    def _handler(self, _signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.write(self.w, b"w")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            os.read(self.r, 4096)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            signal.signal(signal.SIGWINCH, self.previous)
            os.close(self.r)
            os.close(self.w)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def session(conn: Any, *, tty: bool, stdin: bool, detach_keys: str | None = None,
            resize: Callable[[int, int], None] | None = None, redraw: bool = False,
            stdin_fd: int | None = None, stdout_fd: int | None = None, stderr_fd: int | None = None) -> bool:
    """Run the streams of a hijacked connection until the daemon closes it. Returns True
    if the user typed the detach keys (the caller then leaves the process running).
    ``redraw``: resize one row bigger first, so a program already running redraws its screen
    (docker attach does the same)."""
    in_fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    out_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
    err_fd = sys.stderr.fileno() if stderr_fd is None else stderr_fd
    sys.stdout.flush()
    ctype = conn.headers.get("content-type", "")
    multiplexed = ctype.startswith(MULTIPLEXED) if ctype else not tty
    demuxer = Demuxer()
    scanner = detach_scanner(detach_keys) if tty and stdin else None
    sock: socket.socket = conn.sock
    watch_resize = resize is not None and tty and os.isatty(out_fd)

    def send_size(bigger: int = 0) -> None:
        size = terminal_size(out_fd)
        if resize is not None and size:
            with contextlib.suppress(ClientError):
                resize(size[0] + bigger, size[1])

    def output(data: bytes) -> None:
        if not multiplexed:
            _write_all(out_fd, data)
            return
        for stream, payload in demuxer.feed(data):
            _write_all(err_fd if stream == 2 else out_fd, payload)

    pending = bytearray()
    reading_stdin = stdin
    half_closed = False
    if not stdin:
        conn.close_write()
        half_closed = True
    early = conn.recv() if getattr(conn, "_early", b"") else b""
    if early:
        output(early)
    sock.setblocking(False)
    with raw_terminal(in_fd, tty and stdin), _Winch(watch_resize) as winch:
        if watch_resize:
            if redraw:
                send_size(1)
            send_size()
        while True:
            rlist = [sock]
            if reading_stdin and len(pending) < SEND_BUFFER:
                rlist.append(in_fd)
            if winch.r >= 0:
                rlist.append(winch.r)
            wlist = [sock] if pending else []
            r, w, _ = select.select(rlist, wlist, [])
            if sock in r:
                try:
                    data = sock.recv(1 << 18)
                except BlockingIOError:
                    data = None
                except ConnectionResetError:
                    data = b""
                if data == b"":
                    return False
                if data:
                    output(data)
            if winch.r in r:
                winch.drain()
                send_size()
            if in_fd in r:
                data = os.read(in_fd, 1 << 18)
                if not data:
                    reading_stdin = False
                else:
                    pending += data
                    # The daemon finds the keys in what we send and leaves the process's
                    # stdin open; we only need to know that the session ends here.
                    if scanner is not None and scanner.feed(data)[1]:
                        with contextlib.suppress(OSError):
                            sock.setblocking(True)
                            sock.sendall(pending)
                        return True
            if pending and (sock in w or not wlist):
                try:
                    sent = sock.send(pending)
                    del pending[:sent]
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    pending.clear()
                    reading_stdin = False
            if not reading_stdin and not pending and not half_closed:
                conn.close_write()  # stdin is done: the daemon keeps sending output
                half_closed = True


def check_terminal(tty: bool, stdin: bool, detach_keys: str | None) -> None:
    """Docker's checks before anything is created: ``-it`` needs a terminal; bad keys fail."""
    if tty and stdin and not os.isatty(sys.stdin.fileno()):
        raise ClientError("the input device is not a TTY")
    if detach_keys:
        detach_scanner(detach_keys)


def container_session(client: Client, cid: str, conn: Any, tty: bool, stdin: bool,
                      detach_keys: str | None, redraw: bool = False) -> bool:
    """:func:`session` for a container's attach stream (resized through the container)."""
    def resize(h: int, w: int) -> None:
        client.request("POST", f"/containers/{q(cid)}/resize", params={"h": h, "w": w})

    try:
        return session(conn, tty=tty, stdin=stdin, detach_keys=detach_keys, resize=resize, redraw=redraw)
    finally:
        conn.close()


# -- exec -------------------------------------------------------------------------------------


def exec_body(command: tuple[str, ...], *, interactive: bool, tty: bool, detach: bool, env: list[str],
              user: str | None, workdir: str | None, privileged: bool, detach_keys: str | None,
              console_size: tuple[int, int] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Cmd": list(command), "Tty": tty, "AttachStdin": interactive and not detach,
        "AttachStdout": not detach, "AttachStderr": not detach, "Privileged": privileged, "Detach": detach,
    }
    if env:
        body["Env"] = env
    if user:
        body["User"] = user
    if workdir:
        body["WorkingDir"] = workdir
    if detach_keys:
        body["DetachKeys"] = detach_keys
    if console_size and tty:
        body["ConsoleSize"] = list(console_size)
    return body


@command("exec", context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("--env-file", multiple=True, type=click.Path(), help="Read in a file of environment variables")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("-w", "--workdir", help="Working directory inside the container")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.option("--detach-keys", help="Override the key sequence for detaching a container")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(client: Client, interactive: bool, tty: bool, detach: bool, env: tuple[str, ...],
          env_file: tuple[str, ...], user: str | None, workdir: str | None, privileged: bool,
          detach_keys: str | None, container: str, command: tuple[str, ...]) -> None:
    """Execute a command in a running container; exit with the command's exit code."""
    from .create_flags import parse_env

    if not detach:
        check_terminal(tty, interactive, detach_keys)
    size = terminal_size(sys.stdout.fileno()) if tty else None
    body = exec_body(command, interactive=interactive, tty=tty, detach=detach,
                     env=parse_env(env, env_file, os.environ), user=user, workdir=workdir,
                     privileged=privileged, detach_keys=detach_keys, console_size=size)
    eid = client.post(f"/containers/{q(container)}/exec", body=body)["Id"]
    if detach:
        client.request("POST", f"/exec/{q(eid)}/start", body={"Detach": True, "Tty": tty})
        return
    conn = client.hijack(f"/exec/{q(eid)}/start", body={"Detach": False, "Tty": tty})

    def resize(h: int, w: int) -> None:
        client.request("POST", f"/exec/{q(eid)}/resize", params={"h": h, "w": w})

    try:
        detached = session(conn, tty=tty, stdin=interactive, detach_keys=detach_keys, resize=resize)
    except KeyboardInterrupt:  # ctrl-c without a TTY ends our side only, as docker exec's does
        sys.exit(130)
    finally:
        conn.close()
    if detached:
        return
    try:
        info = client.get(f"/exec/{q(eid)}/json")
    except APIError as exc:
        raise ClientError(str(exc)) from None
    sys.exit(int(info.get("ExitCode") or 0))


def register(cli: click.Group) -> None:
    cli.add_command(exec_)
    group = cli.commands.get("container")
    if isinstance(group, click.Group):
        group.add_command(exec_)
