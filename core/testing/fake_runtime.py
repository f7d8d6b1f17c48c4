"""``fake`` runtime: the :class:`dockyard.drivers.runtime.Runtime` contract without isolation.

Runs ``spec.args`` as a plain host subprocess (host PATH lookup with the spec's env, the
spec's cwd if it exists on the host), for API tests on any machine, root or not. Same state
dir files (``pid``, ``exit``) and the same binary log format as the native runtime, so the
log/attach code paths are exercised. Not live-restore capable: output is pumped by the
daemon's event loop, and a restarted daemon only sees the pid and the exit file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from ..drivers.runtime import ContainerSpec, ContainerStartError, ExitStatus
from ..errors import ConfigError, Conflict, InvalidState, NoSuchContainer
from ..runtime import state as st
from ..runtime.logfile import LogReader, LogWriter
from ..tasks import spawn

LOG_NAME = "container.log"


class FakeRuntime:
    name: ClassVar[str] = "fake"
    #: optional contracts (dockyard.drivers.runtime); no exec. The environment variable
    #: ``DOCKYARD_FAKE_RUNTIME_CAPABILITIES`` (comma-separated) narrows them, for tests of a
    #: runtime without TTYs or stdin ("fake" drivers of every kind share one config table)
    capabilities: frozenset[str] = frozenset({"tty", "stdin"})

    def __init__(self, config: dict | None = None, root: Path | str = "/tmp/dockyard-fake/root",
                 state: Path | str = "/tmp/dockyard-fake/state") -> None:
        narrowed = os.environ.get("DOCKYARD_FAKE_RUNTIME_CAPABILITIES")
        if narrowed is not None:
            wanted = frozenset(n.strip() for n in narrowed.split(",") if n.strip())
            if not wanted <= FakeRuntime.capabilities:
                raise ConfigError("runtime fake: DOCKYARD_FAKE_RUNTIME_CAPABILITIES: "
                                  f"only {sorted(FakeRuntime.capabilities)}")
            self.capabilities = wanted
        if config:
            raise ConfigError(f"runtime fake: unknown option(s): {', '.join(sorted(config))}")
        self.root, self.state_root = Path(root), Path(state)
        self.state_root.mkdir(parents=True, exist_ok=True)
        self._tasks: dict[str, asyncio.Task] = {}
        self._masters: dict[str, int] = {}  # TTY containers' pty masters (resize)

    @classmethod
    def check(cls) -> None:
        return None

    def _dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid in (".", ".."):
            raise NoSuchContainer(cid)
        return self.state_root / cid

    async def start(self, spec: ContainerSpec) -> int:
        sd = self._dir(spec.id)
        if spec.id in self._tasks and not self._tasks[spec.id].done():
            raise Conflict(f"container {spec.id} is already running")
        created = not sd.exists()
        sd.mkdir(parents=True, exist_ok=True)
        for name in (st.EXIT, st.PID, st.STDIN):
            with contextlib.suppress(FileNotFoundError):
                (sd / name).unlink()
        env = dict(e.split("=", 1) for e in spec.env if "=" in e)
        arg0 = spec.args[0] if spec.args else ""
        exe = arg0 if "/" in arg0 else shutil.which(arg0, path=env.get("PATH", os.defpath))
        if not exe or not os.path.exists(exe):
            if created:
                shutil.rmtree(sd, ignore_errors=True)
            if "/" in arg0:
                raise ContainerStartError(f'exec: "{arg0}": stat {arg0}: no such file or directory', 127)
            raise ContainerStartError(f'exec: "{arg0}": executable file not found in $PATH', 127)
        if not os.access(exe, os.X_OK) or os.path.isdir(exe):
            if created:
                shutil.rmtree(sd, ignore_errors=True)
            raise ContainerStartError(f'exec: "{arg0}": permission denied', 126)
        log_path = Path(spec.log_path) if spec.log_path else sd / LOG_NAME
        st.write_meta(sd, id=spec.id, log_path=str(log_path))
        writer = LogWriter(log_path, spec.log_max_size, spec.log_max_files)
        cwd = spec.cwd if spec.cwd and os.path.isdir(spec.cwd) else str(sd)
        master = slave = None
        if spec.open_stdin:  # there when start returns; its reader comes with the monitor
            os.mkfifo(sd / st.STDIN, 0o600)
        if spec.tty:
            master, slave = os.openpty()
            if spec.console_size:
                _set_size(master, *spec.console_size)
            self._masters[spec.id] = master
            stdio: dict[str, Any] = dict(stdin=slave, stdout=slave, stderr=slave)
        else:
            stdio = dict(stdin=subprocess.PIPE if spec.open_stdin else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc = await asyncio.create_subprocess_exec(exe, *spec.args[1:], env=env, cwd=cwd,
                                                    start_new_session=True, **stdio)
        if slave is not None:
            os.close(slave)
        st.write_atomic(sd / st.PID, f"{proc.pid} {os.getpid()}\n".encode())
        self._tasks[spec.id] = spawn(self._monitor(sd, proc, writer, master, spec), f"fake monitor of {spec.id[:12]}")
        return proc.pid

    async def _monitor(self, sd: Path, proc, writer: LogWriter, master: int | None, spec: ContainerSpec) -> ExitStatus:
        loop = asyncio.get_running_loop()
        pumps = []
        fifo_task = None
        if spec.open_stdin:
            fifo_task = spawn(self._feed_stdin(sd, proc, master, spec.stdin_once), "fake stdin feeder")
        if master is not None:
            done = loop.create_future()

            def on_read() -> None:
                try:
                    data = os.read(master, 1 << 16)
                except OSError:
                    data = b""
                if data:
                    writer.write(1, data)
                else:
                    loop.remove_reader(master)
                    if not done.done():
                        done.set_result(None)
            loop.add_reader(master, on_read)
            pumps.append(done)
        else:
            async def pump(stream, n: int) -> None:
                while data := await stream.read(1 << 16):
                    writer.write(n, data)
            pumps += [spawn(pump(proc.stdout, 1), "fake stdout pump"), spawn(pump(proc.stderr, 2), "fake stderr pump")]
        rc = await proc.wait()
        await asyncio.wait(pumps, timeout=2)
        if master is not None:
            loop.remove_reader(master)
            if self._masters.get(spec.id) == master:
                del self._masters[spec.id]
            os.close(master)
        if fifo_task:
            fifo_task.cancel()
        writer.close()
        code, sig = (128 - rc, -rc) if rc < 0 else (rc, 0)
        status = ExitStatus(exit_code=code, signal=sig, finished_at_ns=time.time_ns())
        st.write_exit(sd, status)
        return status

    async def _feed_stdin(self, sd: Path, proc, master: int | None, once: bool) -> None:
        path = sd / st.STDIN
        while True:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                while True:
                    try:
                        data = os.read(fd, 1 << 16)
                    except BlockingIOError:
                        await asyncio.sleep(0.02)
                        continue
                    if not data:
                        if not _hung_up(fd):  # no writer came yet: not an EOF
                            await asyncio.sleep(0.02)
                            continue
                        break
                    if master is not None:
                        os.write(master, data)
                    else:
                        proc.stdin.write(data)
                        await proc.stdin.drain()
            finally:
                os.close(fd)
            if once:
                if master is None:
                    proc.stdin.close()
                return
            await asyncio.sleep(0.02)

    def state(self, cid: str) -> Literal["running", "exited", "unknown"]:
        sd = self._dir(cid)
        if st.read_exit(sd):
            return "exited"
        pids = st.read_pids(sd)
        if pids and (cid in self._tasks or st.pid_alive(pids[0])):
            return "running"
        return "unknown"

    def exit_status(self, cid: str) -> ExitStatus | None:
        return st.read_exit(self._dir(cid))

    def pid(self, cid: str) -> int | None:
        pids = st.read_pids(self._dir(cid))
        return pids[0] if pids and self.state(cid) == "running" else None

    def logs(self, cid: str) -> LogReader:
        sd = self._dir(cid)
        return LogReader(Path(st.read_meta(sd).get("log_path") or sd / LOG_NAME), sd / st.EXIT)

    def list(self) -> list[str]:
        return sorted(p.name for p in self.state_root.iterdir() if p.is_dir())

    async def wait(self, cid: str) -> ExitStatus:
        sd = self._dir(cid)
        task = self._tasks.get(cid)
        if task is not None:
            return await asyncio.shield(task)
        while True:
            status = st.read_exit(sd)
            if status:
                return status
            if not sd.exists():
                raise NoSuchContainer(cid)
            pids = st.read_pids(sd)
            if pids and not st.pid_alive(pids[0]):
                return st.read_exit(sd) or ExitStatus(exit_code=255, error="container monitor is gone")
            await asyncio.sleep(0.05)

    async def kill(self, cid: str, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(cid)
        if pid is None:
            if not self._dir(cid).exists():
                raise NoSuchContainer(cid)
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="kill")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    async def delete(self, cid: str, logs: bool = True) -> None:
        sd = self._dir(cid)
        if self.state(cid) == "running":
            with contextlib.suppress(InvalidState):
                await self.kill(cid, signal.SIGKILL)
            await self.wait(cid)
        self._tasks.pop(cid, None)
        if logs:
            shutil.rmtree(sd, ignore_errors=True)
            return
        # an undone start: the earlier runs' logs stay, with the meta naming them
        keep = {st.META, *(p.name for p in self.logs(cid).files() if p.parent == sd)}
        for p in sd.glob("*"):
            if p.name in keep:
                continue
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    def resize(self, cid: str, height: int, width: int) -> None:
        master = self._masters.get(cid)
        if master is not None:
            with contextlib.suppress(OSError):
                _set_size(master, height, width)

    def stdin_path(self, cid: str) -> Path:
        return self._dir(cid) / st.STDIN


def _set_size(master: int, height: int, width: int) -> None:
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _hung_up(fd: int) -> bool:
    """A FIFO's read end saw a writer come and go (an empty read alone may mean no writer yet)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & select.POLLHUP for _, ev in p.poll(0))
