"""``docker exec``: exec instances of running containers.

Like Docker, exec records live in memory only; they go away with their container. The
runtime runs each exec (see ``NativeRuntime.exec``): its output is a log file read with
``LogReader.follow``, its stdin a FIFO, its end an exit file.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..drivers.runtime import ExecSpec, ExecStartError, ExitStatus
from ..errors import Conflict, InvalidArgument, NoSuchExec
from ..lifecycle import State
from .detachkeys import parse_detach_keys
from . import environ
from .spec import resolve_user
from ..tasks import spawn

if TYPE_CHECKING:
    from .runtimes import RuntimeSet


@dataclass
class ExecInstance:
    id: str
    container_id: str
    args: list[str]
    env: list[str]
    user: str
    workdir: str
    tty: bool
    privileged: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str
    console_size: tuple[int, int] | None = None
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    error: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    waiter: asyncio.Task[None] | None = None


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return value


class ExecService:
    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self.execs: dict[str, ExecInstance] = {}

    @property
    def runtime(self) -> RuntimeSet:
        return self.containers.runtime

    def _emit(self, action: str, e: ExecInstance, **extra: Any) -> None:
        try:
            c = self.containers.get(e.container_id)
        except Exception:
            return
        cmd = " ".join(e.args)
        self.containers.emit(f"{action}: {cmd}" if action not in ("exec_die", "exec_detach") else action, c,
                              execID=e.id, **extra)

    # -- create / lookup ------------------------------------------------------------------

    def create(self, ref: str, body: dict[str, Any]) -> ExecInstance:
        if not isinstance(body, dict):
            raise InvalidArgument("exec config must be a JSON object")
        c = self.containers.get(ref)
        if c.state == State.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state != State.RUNNING:
            raise Conflict(f"Container {c.id} is not running")
        self.runtime.require(c.id, "exec")  # a 400 naming the container's runtime
        args = _strings(body.get("Cmd"), "Cmd")
        if not args:
            raise InvalidArgument("No exec command specified")
        size = body.get("ConsoleSize")
        keys = body.get("DetachKeys") or body.get("detachKeys") or ""  # docker-py's spelling
        if not isinstance(keys, str):
            raise InvalidArgument("DetachKeys must be a string")
        try:
            parse_detach_keys(keys)
        except InvalidArgument:
            raise InvalidArgument(f"Invalid escape keys ({keys}) provided") from None
        e = ExecInstance(
            id=secrets.token_hex(32), container_id=c.id, args=args,
            env=_strings(body.get("Env"), "Env"), user=body.get("User") or "",
            workdir=body.get("WorkingDir") or "", tty=bool(body.get("Tty")),
            privileged=bool(body.get("Privileged")), attach_stdin=bool(body.get("AttachStdin")),
            attach_stdout=bool(body.get("AttachStdout")), attach_stderr=bool(body.get("AttachStderr")),
            detach_keys=keys,
            console_size=((int(size[0]), int(size[1])) if isinstance(size, list) and len(size) == 2 and size[0]
                          else None),
        )
        self.execs[e.id] = e
        self._emit("exec_create", e)
        return e

    def get(self, eid: str) -> ExecInstance:
        e = self.execs.get(eid)
        if e is None:
            found = [x for k, x in self.execs.items() if eid and k.startswith(eid)]
            if len(found) != 1:
                raise NoSuchExec(eid)
            e = found[0]
        return e

    # -- start ----------------------------------------------------------------------------

    def _spec(self, e: ExecInstance, c: Any) -> ExecSpec:
        root = Path(f"/proc/{c.pid}/root")
        passwd = environ.read_passwd(root)  # once, for the user and HOME
        uid, gid, groups = resolve_user(root, e.user or c.config.get("User") or "", c.host_config.get("GroupAdd"),
                                        passwd=passwd)
        # moby: the daemon's environment (PATH, HOSTNAME, TERM with a TTY), the container's
        # Env, then the exec's; HOME from the image's passwd as runc sets it
        env = environ.daemon_environment(c.config.get("Hostname") or c.id[:12], e.tty, list(c.config.get("Env") or []))
        env = environ.replace_or_append(env, list(e.env))
        env = environ.with_home(env, passwd, e.user or c.config.get("User") or "")
        return ExecSpec(id=e.id, args=e.args, env=env, cwd=e.workdir or c.config.get("WorkingDir") or "/",
                        uid=uid, gid=gid, additional_gids=groups, tty=e.tty, console_size=e.console_size,
                        open_stdin=e.attach_stdin, privileged=e.privileged)

    async def start(self, e: ExecInstance) -> None:
        """Start the process; raises ExecStartError (exit code recorded) or Conflict."""
        if e.started:
            raise Conflict(f"Error: Exec command {e.id} is already running" if e.running
                           else f"Error: Exec command {e.id} has already run")
        c = self.containers.get(e.container_id)
        if c.state == State.PAUSED:
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state != State.RUNNING or not c.pid:
            raise Conflict(f"Container {c.id} is not running")
        e.started = True
        try:
            spec = self._spec(e, c)
            e.pid = await self.runtime.exec(c.id, spec)
        except ExecStartError as exc:
            e.exit_code, e.error = exc.exit_code, exc.message
            e.done.set()
            self._emit("exec_die", e, exitCode=e.exit_code)
            raise
        except BaseException as exc:
            e.exit_code, e.error = 126, str(exc)
            e.done.set()
            raise
        e.running = True
        if e.tty and e.console_size and e.console_size != spec.console_size:  # resized while starting
            self.runtime.exec_resize(c.id, e.id, *e.console_size)
        self._emit("exec_start", e)
        e.waiter = spawn(self._wait(e), f"exec {e.id[:12]} waiter")

    async def _wait(self, e: ExecInstance) -> None:
        try:
            status: ExitStatus = await self.runtime.exec_wait(e.container_id, e.id)
            e.exit_code = status.exit_code
        except asyncio.CancelledError:
            raise
        except Exception:
            e.exit_code = 255
        finally:
            e.running = False
            e.pid = 0
            e.done.set()
        self._emit("exec_die", e, exitCode=e.exit_code)

    def stdin_path(self, e: ExecInstance) -> Path:
        return self.runtime.exec_stdin_path(e.container_id, e.id)

    def stdin_detached(self, e: ExecInstance) -> None:
        """The client typed the detach keys: its stdin closes, but the process's stays open."""
        self.runtime.exec_stdin_detach(e.container_id, e.id)  # a no-op for runtimes that cannot tell

    def detached(self, e: ExecInstance) -> None:
        self._emit("exec_detach", e)

    def logs(self, e: ExecInstance) -> Any:
        return self.runtime.exec_logs(e.container_id, e.id)

    def resize(self, e: ExecInstance, h: int, w: int) -> None:
        """Set the exec's tty size; before it runs (the CLI resizes right after the 101), the
        size is kept and applied once it starts."""
        if not e.tty:
            raise InvalidArgument(f"cannot resize exec {e.id}: it has no TTY (create it with Tty: true)")
        if h <= 0 or w <= 0:
            return
        e.console_size = (h, w)
        if e.running and e.tty:
            self.runtime.exec_resize(e.container_id, e.id, h, w)

    # the client asks for the exit code right after the stream's end (docker exec: then it
    # exits): that request is answered first, the state's removal (~0.3 ms) comes after it
    CLEANUP_DELAY = 0.02

    async def cleanup(self, e: ExecInstance) -> None:
        """After the output is sent: drop the runtime's state (log, fifos); the record stays."""
        await e.done.wait()
        await asyncio.sleep(self.CLEANUP_DELAY)
        with contextlib.suppress(Exception):
            await self.runtime.exec_delete(e.container_id, e.id)

    # -- inspect / forget -----------------------------------------------------------------

    def inspect(self, e: ExecInstance) -> dict[str, Any]:
        return {
            "ID": e.id, "Running": e.running, "ExitCode": e.exit_code, "Pid": e.pid,
            "ProcessConfig": {"tty": e.tty, "entrypoint": e.args[0], "arguments": e.args[1:],
                              "privileged": e.privileged, "user": e.user},
            "OpenStdin": e.attach_stdin, "OpenStderr": e.attach_stderr, "OpenStdout": e.attach_stdout,
            "CanRemove": not e.running and e.started, "ContainerID": e.container_id,
            "DetachKeys": e.detach_keys,
        }

    def for_container(self, cid: str) -> list[str]:
        return [k for k, e in self.execs.items() if e.container_id == cid]

    def forget(self, cid: str) -> None:
        for k in self.for_container(cid):
            e = self.execs.pop(k)
            if e.waiter is not None and not e.waiter.done():
                e.waiter.cancel()
            if e.started and e.exit_code is None:
                e.exit_code = 137  # killed with its container
            e.running = False
            e.done.set()  # nobody may wait forever for an exec of a removed container

