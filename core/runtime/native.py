"""The ``native`` runtime: each container is started and monitored by ``dockyard-shim``.

The daemon never forks itself: it execs the shim (vfork+exec via
``asyncio.create_subprocess_exec``) with a spec file precomputed by :mod:`.spec`. The shim
forks a monitor and exits; the monitor (setsid, survives the daemon) clones the container
into new namespaces, reports ``ok <pid> <monitor pid>`` or ``error <errno> <stage>`` on
its stdout, logs output, and writes ``<state_dir>/exit`` when the container ends.

The shim is never executed from its file: the daemon keeps a sealed memfd copy (see
:func:`sealed_copy`) and every shim process (monitor, exec helper) runs from it, so
``/proc/PID/exe`` of any of them is a file nobody can write (CVE-2019-5736).

State dir (``<state>/<id>``): ``spec``, ``pid``, ``exit``, ``runtime.json``,
``container.log*`` (unless ``spec.log_path``), ``stdin``/``control`` fifos when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno as E
import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar, Literal

from ..drivers.runtime import ContainerSpec, ContainerStartError, ExecSpec, ExecStartError, ExitStatus
from ..errors import ConfigError, Conflict, InvalidState, NoSuchContainer, SkipPlugin
from ..tasks import set_done, spawn
from . import spec as specmod
from . import state as st
from .logfile import LogReader

log = logging.getLogger(__name__)

SHIM_SOURCE = Path(__file__).with_name("shim.c")
INIT_CANDIDATES = ["/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init", "/usr/bin/tini"]
LOG_NAME = "container.log"


def default_init() -> str:
    for p in INIT_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return INIT_CANDIDATES[0]


def find_cc() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def shim_cache_dir() -> Path:
    """Where compiled shims are shared between data roots (tests make many): the
    DOCKYARD_SHIM_CACHE env var, else /var/cache/dockyard (root) or ~/.cache/dockyard."""
    env = os.environ.get("DOCKYARD_SHIM_CACHE")
    if env:
        return Path(env)
    return Path("/var/cache/dockyard") if os.geteuid() == 0 else Path.home() / ".cache" / "dockyard"


SHIM_MODE = 0o555  # root-owned, nobody's to write: the daemon runs it as root for every container


def _harden(path: Path) -> Path:
    """Make an installed shim root-owned and read-only (``SHIM_MODE``)."""
    st_ = os.stat(path)
    if os.geteuid() == 0 and (st_.st_uid != 0 or st_.st_gid != 0):
        os.chown(path, 0, 0)
    if st_.st_mode & 0o7777 != SHIM_MODE:
        os.chmod(path, SHIM_MODE)
    return path


MFD_EXEC = 0x10  # linux 6.3+: an executable memfd, stated explicitly (vm.memfd_noexec)
F_SEAL_EXEC = 0x20  # linux 6.3+: nobody can chmod it either


def sealed_copy(path: Path, name: str = "dockyard-shim") -> int:
    """A read-only in-memory copy of the executable ``path``, as runc's cloned_binary: a memfd
    holding its bytes, sealed against writes, resizing, chmod and further seals. Returns the fd
    (close-on-exec); run it as ``/proc/self/fd/N``. Whatever handle a container obtains to a
    process running it (``/proc/PID/exe``) then names this memfd, and a write through it fails
    with EPERM, so the file that the daemon runs as root cannot be replaced from a container."""
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        fd = os.memfd_create(name, flags | MFD_EXEC)
    except OSError as e:
        if e.errno != E.EINVAL:  # kernel before 6.3: no MFD_EXEC, memfds are executable
            raise
        fd = os.memfd_create(name, flags)
    try:
        with open(path, "rb") as f:
            view = memoryview(f.read())
        while view:
            view = view[os.write(fd, view):]
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | F_SEAL_EXEC)
        except OSError as e:
            if e.errno != E.EINVAL:
                raise
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    except BaseException:
        os.close(fd)
        raise
    return fd


def packaged_shim() -> Path | None:
    """The shim compiled from this very shim.c when the wheel was built, if installed from one."""
    name = f"dockyard-shim-{hashlib.sha256(SHIM_SOURCE.read_bytes()).hexdigest()[:12]}"
    path = SHIM_SOURCE.with_name(name)
    return path if os.access(path, os.R_OK) else None


def build_shim(root: Path, use_cache: bool = True) -> Path:
    """Compile shim.c into ``root/dockyard-shim-<sha256[:12]>`` once (static if possible);
    a copy already compiled into :func:`shim_cache_dir` is reused. The file is root-owned,
    mode 0555 (it is executed only through :func:`sealed_copy`)."""
    src = SHIM_SOURCE.read_bytes()
    name = f"dockyard-shim-{hashlib.sha256(src).hexdigest()[:12]}"
    target = Path(root) / name
    if os.access(target, os.X_OK):
        return _harden(target)
    packaged = SHIM_SOURCE.with_name(name)  # compiled when the wheel was built (setup.py)
    if packaged != target and os.access(packaged, os.R_OK):
        Path(root).mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
        shutil.copyfile(packaged, tmp)
        _harden(tmp)
        os.rename(tmp, target)
        return target
    if use_cache:
        try:
            cached = build_shim(shim_cache_dir(), use_cache=False)
            Path(root).mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{name}.{os.getpid()}.tmp")
            shutil.copy2(cached, tmp)
            _harden(tmp)
            os.rename(tmp, target)
            return target
        except OSError:
            pass  # no usable cache: compile in place
    cc = find_cc()
    if cc is None:
        raise SkipPlugin("native runtime: no C compiler (cc) to build dockyard-shim")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    err = ""
    for static in (["-static"], []):
        r = subprocess.run([cc, "-O2", *static, "-o", str(tmp), str(SHIM_SOURCE)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            _harden(tmp)
            os.rename(tmp, target)
            return target
        err = r.stderr
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    raise SkipPlugin(f"native runtime: cannot compile dockyard-shim: {err.strip()[:2000]}")


def _rmdir(sd: Path) -> None:
    """Remove a state dir (or the dir a state-dir symlink points to, and the link)."""
    if sd.is_symlink():
        shutil.rmtree(sd.resolve(), ignore_errors=True)
        sd.unlink()
    else:
        shutil.rmtree(sd, ignore_errors=True)


def _strerror(e: int) -> str:
    s = os.strerror(e)
    return s[:1].lower() + s[1:]


def start_error(err: int, stage: str, detail: str, spec: ContainerSpec) -> ContainerStartError:
    """Docker/runc wording for a failure reported by the shim."""
    arg0 = spec.args[0] if spec.args else ""
    if stage == "lookup":
        if err == E.EACCES:
            return ContainerStartError(f'exec: "{arg0}": permission denied', 126, err)
        return ContainerStartError(f'exec: "{arg0}": executable file not found in $PATH', 127, err)
    if stage in ("exec", "exec-init"):
        name = detail if stage == "exec-init" else arg0
        if err == E.ENOENT:
            return ContainerStartError(f'exec: "{name}": stat {name}: no such file or directory', 127, err)
        return ContainerStartError(f'exec: "{name}": {_strerror(err)}', 126, err)
    if stage == "chdir":
        return ContainerStartError(
            f'error during container init: chdir to cwd ("{detail}") set in config.json failed: '
            f'{_strerror(err)}', 128, err)
    message = f"error during container init: {stage} {detail}: {_strerror(err)}".replace("  ", " ")
    return ContainerStartError(message, 128, err)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    loop.add_reader(fd, set_done, fut)
    try:
        await fut
    finally:
        loop.remove_reader(fd)


async def _read_to_eof(fd: int) -> None:
    while True:
        await _readable(fd)
        if not os.read(fd, 4096):
            return


async def spawn_shim(shim: Path | str, spec_path: Path, argv0: str | None = None,
                     monitor_child: bool = False) -> str:
    """Run the shim and return its status line.

    ``posix_spawn`` (vfork) keeps the cost flat whatever the daemon's size, and owning the
    status pipe means nothing waits for the container: an event loop's subprocess ``wait()``
    may wait for every holder of the child's pipes (uvloop's does), and the monitor outlives it.
    ``monitor_child`` (a spec with "monitor_child"): the spawned process is the monitor
    itself, reaped by a task of its own once it exits, not before this returns.
    """
    r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    # in a worker thread: vfork suspends the caller until the shim has exec'd (~0.3 ms, several
    # ms on a loaded host), and on the event loop that held up every other request and start
    spawning = asyncio.ensure_future(asyncio.to_thread(
        os.posix_spawn, str(shim), [argv0 or str(shim), str(spec_path)], {}, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, w, 1),
            (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0),
        ]))
    try:
        try:
            pid = await asyncio.shield(spawning)
        except asyncio.CancelledError:  # the spawn is not undone: reap the shim as below
            await asyncio.wait([spawning])
            if spawning.exception() is not None:
                raise
            pid = spawning.result()
            if monitor_child:
                spawn(_reap(pid), f"reaper of shim {pid}")
            else:
                await _reap(pid)
            raise
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    buf = b""
    try:
        while b"\n" not in buf:
            await _readable(r)
            chunk = os.read(r, 4096)
            if not chunk:
                break
            buf += chunk
        if buf.startswith(b"error"):
            # a failed start: the monitor exits right after reporting; its end of the pipe
            # closes then, so the caller never sees a half-gone container (bounded wait)
            with contextlib.suppress(asyncio.TimeoutError, OSError):
                await asyncio.wait_for(_read_to_eof(r), 5)
    finally:
        os.close(r)
        if monitor_child and not buf.startswith(b"error"):
            spawn(_reap(pid), f"reaper of shim {pid}")  # it monitors the process until its end
        else:
            await _reap(pid)
    return buf.split(b"\n", 1)[0].decode(errors="replace").strip()


async def _reap(pid: int) -> None:
    """The shim's first process exits as soon as it has forked the monitor: reap it."""
    if os.waitpid(pid, os.WNOHANG)[0] == pid:  # gone already (always, once the status line came)
        return
    pidfd = os.pidfd_open(pid)
    try:
        await _readable(pidfd)
    finally:
        os.close(pidfd)
    os.waitpid(pid, 0)


def _send_control(state_dir: Path, command: str) -> None:
    """Send one command line to a shim's control fifo (TTY only); a missing or gone shim is a no-op."""
    try:
        fd = os.open(state_dir / st.CONTROL, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(fd, f"{command}\n".encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _send_resize(state_dir: Path, height: int, width: int) -> None:
    """Ask a shim to resize its pty."""
    _send_control(state_dir, f"resize {int(height)} {int(width)}")


class NativeRuntime:
    """Namespaces + pivot_root + caps + seccomp, through the C shim. Needs root."""

    name: ClassVar[str] = "native"
    #: optional contracts (dockyard.drivers.runtime)
    capabilities: ClassVar[frozenset[str]] = frozenset({"exec", "tty", "stdin", "stdin-detach", "exec-stdin-detach"})
    CONFIG_KEYS = {"init_path", "shim_path"}

    def __init__(self, config: dict | None = None, root: Path | str = "/var/lib/dockyard/runtime/native",
                 state: Path | str = "/run/dockyard/runtime/native") -> None:
        config = dict(config or {})
        unknown = set(config) - self.CONFIG_KEYS
        if unknown:
            raise ConfigError(f"runtime native: unknown option(s): {', '.join(sorted(unknown))}")
        self.root, self.state_root = Path(root), Path(state)
        self.init_path = config.get("init_path") or default_init()
        if config.get("shim_path"):
            self.shim = Path(config["shim_path"])
            if not os.access(self.shim, os.X_OK):
                raise ConfigError(f"runtime native: shim_path {self.shim} is not executable")
        else:
            self.shim = build_shim(self.root)
        # every shim process runs from a sealed memfd (kept open for the daemon's lifetime):
        # /proc/self/fd/N is resolved by the spawned process, which inherits the fd until exec
        self._shim_fd = sealed_copy(self.shim)
        self._shim_exe = f"/proc/self/fd/{self._shim_fd}"
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o711)

    @classmethod
    def check(cls) -> None:
        if os.geteuid() != 0:
            raise SkipPlugin("native runtime needs root")
        if not os.path.exists("/proc/self/ns/pid"):
            raise SkipPlugin("native runtime needs namespaces")
        if find_cc() is None and packaged_shim() is None:
            raise SkipPlugin("native runtime: no C compiler (cc) to build dockyard-shim")

    # ------------------------------------------------------------------ paths
    def _dir(self, cid: str) -> Path:
        if not cid or "/" in cid or cid in (".", ".."):
            raise NoSuchContainer(cid)
        return self.state_root / cid

    def _log_path(self, sd: Path) -> Path:
        p = st.read_meta(sd).get("log_path")
        return Path(p) if p else sd / LOG_NAME

    def _monitor_alive(self, sd: Path, mpid: int) -> bool:
        """The monitor process is alive and really ours (not a recycled pid)."""
        try:
            with open(f"/proc/{mpid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            return False
        return (str(sd / st.SPEC).encode() in cmd or str(sd.resolve() / st.SPEC).encode() in cmd) \
            and st.pid_alive(mpid)

    # A monitor can die while its container runs on: a container with --pid host may kill the
    # monitors it can see (as with Docker's shims), or an operator may. Its exit file then never
    # comes, but that is no exit: the daemon asks the kernel. If the recorded pid still runs with
    # the start time the monitor recorded, it is the same process (not a recycled pid): the
    # container stays "running", is watched through a pidfd (adopted), and its end is recorded
    # when it really happens. Its exit code cannot be had then (its parent, the monitor, is gone
    # and it was reparented to a reaper we are not), so it is recorded as 255; its output after
    # the monitor's death is lost (the monitor was the reader of its pipes), as with Docker.

    def _orphan_pidfd(self, sd: Path) -> int | None:
        """A pidfd of the process recorded in ``sd`` if its monitor is gone, no exit is recorded
        and it still runs as the same process (same start time); else None."""
        pids = st.read_pids(sd)
        start = st.read_pid_start(sd)
        if pids is None or start is None or st.read_exit(sd) is not None or self._monitor_alive(sd, pids[1]):
            return None
        try:
            fd = os.pidfd_open(pids[0])
        except OSError:
            return None
        # checked after the pidfd is open: the pidfd names this very process from now on
        if st.proc_start(pids[0]) != start or not st.pid_alive(pids[0]):
            os.close(fd)
            return None
        return fd

    def _kill_unreported(self, sd: Path) -> None:
        """A start that failed although the process was made (its monitor was killed before it
        reported): kill the process, so that nothing runs that the daemon has no record of."""
        fd = self._orphan_pidfd(sd)
        if fd is not None:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            os.close(fd)

    def _orphan_alive(self, sd: Path) -> bool:
        fd = self._orphan_pidfd(sd)
        if fd is None:
            return False
        os.close(fd)
        return True

    async def _wait_orphan(self, sd: Path, pidfd: int) -> ExitStatus:
        """Wait (pidfd) for a process whose monitor died; record its exit (code unknown: 255)."""
        try:
            await _readable(pidfd)
        finally:
            os.close(pidfd)
        status = st.read_exit(sd)  # a racing writer (the monitor cannot; a restart of ours could)
        if status is None:
            status = ExitStatus(exit_code=255, finished_at_ns=time.time_ns(),
                                error="container monitor was killed; exit code unknown")
            with contextlib.suppress(OSError):
                st.write_exit(sd, status)
        return status

    def _same_process(self, sd: Path, pid: int, mpid: int) -> bool:
        """``pid`` (open as a pidfd by the caller) is still the recorded process: a child of its
        monitor, or, once the monitor is gone, the process with the recorded start time."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if ppid == mpid:
            return True
        start = st.read_pid_start(sd)
        return start is not None and st.proc_start(pid) == start

    # ------------------------------------------------------------------ start
    async def start(self, spec: ContainerSpec) -> int:
        sd = self._dir(spec.id)
        if spec.state_dir and Path(spec.state_dir) != sd and not sd.exists():
            Path(spec.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            sd.symlink_to(Path(spec.state_dir).resolve())  # so list()/wait() find it
        created = not sd.exists() or sd.is_symlink() and not any(sd.iterdir())
        if not created:
            pids = st.read_pids(sd)
            if pids and st.read_exit(sd) is None and (self._monitor_alive(sd, pids[1]) or self._orphan_alive(sd)):
                raise Conflict(f"container {spec.id} is already running")
            for name in (st.EXIT, st.PID, st.SPEC, st.STDIN, st.CONTROL):
                with contextlib.suppress(FileNotFoundError):
                    (sd / name).unlink()
        sd.mkdir(parents=True, exist_ok=True, mode=0o700)
        log_path = Path(spec.log_path) if spec.log_path else sd / LOG_NAME
        try:
            data = specmod.build(spec, state_dir=sd, log_path=log_path, exit_path=sd / st.EXIT,
                                 init_path=self.init_path)
            st.write_meta(sd, id=spec.id, log_path=str(log_path), exec=specmod.exec_settings(spec))
            st.write_atomic(sd / st.SPEC, data, sync=False)
            line = await spawn_shim(self._shim_exe, sd / st.SPEC, argv0=str(self.shim))
            parts = line.split(" ", 3)
            if parts[0] == "ok" and len(parts) >= 3:
                return int(parts[1])
            if parts[0] == "error" and len(parts) >= 3:
                raise start_error(int(parts[1]), parts[2], parts[3] if len(parts) > 3 else "", spec)
            raise ContainerStartError(f"error during container init: shim failed: {line or 'no status'}", 128)
        except BaseException:
            self._kill_unreported(sd)
            if created:
                _rmdir(sd)
            else:
                for name in (st.PID, st.SPEC, st.STDIN, st.CONTROL):
                    with contextlib.suppress(FileNotFoundError):
                        (sd / name).unlink()
            raise

    # ------------------------------------------------------------------ queries
    def state(self, cid: str) -> Literal["running", "exited", "unknown"]:
        sd = self._dir(cid)
        if st.read_exit(sd) is not None:
            return "exited"
        pids = st.read_pids(sd)
        if pids and (self._monitor_alive(sd, pids[1]) or self._orphan_alive(sd)):
            return "running"
        if pids and st.read_exit(sd) is not None:  # exited between the two reads
            return "exited"
        return "unknown"

    def exit_status(self, cid: str) -> ExitStatus | None:
        return st.read_exit(self._dir(cid))

    def pid(self, cid: str) -> int | None:
        sd = self._dir(cid)
        pids = st.read_pids(sd)
        if pids and st.read_exit(sd) is None and st.pid_alive(pids[0]):
            start = st.read_pid_start(sd)
            if start is None or st.proc_start(pids[0]) == start:  # not a recycled pid
                return pids[0]
        return None

    def logs(self, cid: str) -> LogReader:
        sd = self._dir(cid)
        return LogReader(self._log_path(sd), sd / st.EXIT)

    def list(self) -> list[str]:
        try:
            return sorted(p.name for p in self.state_root.iterdir() if p.is_dir())
        except FileNotFoundError:
            return []

    # ------------------------------------------------------------------ actions
    async def wait(self, cid: str) -> ExitStatus:
        sd = self._dir(cid)
        loop = asyncio.get_running_loop()
        while True:
            status = st.read_exit(sd)
            if status is not None:
                return status
            if not sd.exists():
                raise NoSuchContainer(cid)
            pids = st.read_pids(sd)
            if pids is None:  # being started
                await asyncio.sleep(0.05)
                continue
            try:
                pidfd = os.pidfd_open(pids[1])
            except ProcessLookupError:
                pidfd = None
            except OSError:  # no pidfd support: poll
                await asyncio.sleep(0.05)
                if self._monitor_alive(sd, pids[1]) or st.read_exit(sd):
                    continue
                pidfd = None
            if pidfd is None or not self._monitor_alive(sd, pids[1]):
                if pidfd is not None:
                    os.close(pidfd)
                status = st.read_exit(sd)
                if status is not None:
                    return status
                orphan = self._orphan_pidfd(sd)
                if orphan is not None:  # the monitor died, the container did not: adopt it
                    log.warning("monitor of %s is gone but its process %d runs: watching it", cid[:12], pids[0])
                    return await self._wait_orphan(sd, orphan)
                return st.read_exit(sd) or ExitStatus(exit_code=255, error="container monitor is gone")
            fut = loop.create_future()
            loop.add_reader(pidfd, set_done, fut)
            try:
                await fut
            finally:
                loop.remove_reader(pidfd)
                os.close(pidfd)

    async def kill(self, cid: str, sig: int = signal.SIGKILL) -> None:
        sd = self._dir(cid)
        pids = st.read_pids(sd)
        if not sd.exists():
            raise NoSuchContainer(cid)
        if pids is None or st.read_exit(sd) is not None:
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="kill")
        cpid, mpid = pids
        try:
            fd = os.pidfd_open(cpid)
        except ProcessLookupError:
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited",
                               action="kill") from None
        try:
            if not self._same_process(sd, cpid, mpid):  # recycled pid
                raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="kill")
            signal.pidfd_send_signal(fd, sig)
        except (ProcessLookupError, FileNotFoundError):
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited",
                               action="kill") from None
        finally:
            os.close(fd)

    async def delete(self, cid: str, logs: bool = True) -> None:
        """Kill (SIGKILL) if running, wait for the monitor, remove the state dir and logs.
        ``logs=False`` keeps the container's log files (the undo of an interrupted start:
        the output of its earlier runs stays, as Docker keeps it across restarts)."""
        sd = self._dir(cid)
        if not sd.exists():
            return
        pids = st.read_pids(sd)
        if pids and st.read_exit(sd) is None and (self._monitor_alive(sd, pids[1]) or self._orphan_alive(sd)):
            with contextlib.suppress(InvalidState):
                await self.kill(cid, signal.SIGKILL)
            await self.wait(cid)
        # file removals wait for the disk's journal (ms each on a busy ext4 after an fsync):
        # in a worker thread, not on the daemon's event loop
        await asyncio.to_thread(self._remove_files, sd, logs)

    def _remove_files(self, sd: Path, logs: bool) -> None:
        log_path = self._log_path(sd)
        if not logs:  # the meta names the log file (logs() reads it): it stays with the logs
            keep = {st.META, *(p.name for p in LogReader(log_path).files() if p.parent == sd)}
            for p in sd.iterdir():
                if p.name in keep:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        p.unlink()
            return
        if sd not in log_path.parents:
            for p in LogReader(log_path).files():
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        _rmdir(sd)

    # ------------------------------------------------------------------ tty / stdin
    def resize(self, cid: str, height: int, width: int) -> None:
        """Set the tty size of a ``tty`` container (no-op if it has none or ended)."""
        _send_resize(self._dir(cid), height, width)

    def stdin_path(self, cid: str) -> Path:
        """FIFO feeding the container's stdin (``open_stdin``): open it for writing; closing
        it is EOF when ``stdin_once``."""
        return self._dir(cid) / st.STDIN

    def stdin_detach(self, cid: str) -> None:
        """A client detached (detach keys): the next close of the stdin FIFO is not EOF."""
        _send_control(self._dir(cid), "detach")

    # ------------------------------------------------------------------ exec
    # Each exec is run by the shim in exec mode with its own state dir
    # ``<state>/<cid>/exec/<eid>/`` (spec, pid, exit, exec.log, stdin/control fifos): the
    # same files as a container, so logs, stdin and waiting work the same way.

    def _exec_dir(self, cid: str, eid: str) -> Path:
        if not eid or "/" in eid or eid in (".", ".."):
            raise NoSuchContainer(eid)
        return self._dir(cid) / "exec" / eid

    EXEC_SETTINGS_KEPT = 256

    def _exec_settings(self, cid: str, sd: Path, pid: int) -> tuple[dict, tuple[str, ...]]:
        """The exec settings the container's start recorded and the namespaces of its process
        ``pid`` an exec joins (those not the daemon's): the same for every exec of this run of
        the container (a restart makes another process and rewrites the settings: read again),
        so read once per run, not per exec (~0.25 ms: a JSON file and 14 readlinks)."""
        cache: dict[tuple, tuple[dict, tuple[str, ...]]] = self.__dict__.setdefault("_exec_cache", {})
        try:
            key: tuple = (cid, pid, os.stat(sd / st.META).st_mtime_ns)
        except OSError:
            key = (cid, pid, None)
        found = cache.get(key)
        if found is not None:
            return found
        settings = st.read_meta(sd).get("exec")
        if settings is None:  # started by a runtime without exec support: defaults
            settings = {}
        found = (settings, tuple(specmod.exec_namespaces(pid)))
        if len(cache) >= self.EXEC_SETTINGS_KEPT:
            del cache[next(iter(cache))]  # the oldest
        cache[key] = found
        return found

    async def exec(self, cid: str, spec: ExecSpec) -> int:
        """Start ``spec`` in the running container ``cid``; return its host pid. Raises
        ExecStartError (126/127, Docker's wording) when it cannot start."""
        sd = self._dir(cid)
        pid = self.pid(cid)
        if pid is None:
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="exec")
        settings, namespaces = self._exec_settings(cid, sd, pid)
        ed = self._exec_dir(cid, spec.id)
        ed.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            data = specmod.build_exec(spec, settings, pid, state_dir=ed, log_path=ed / "exec.log",
                                      exit_path=ed / st.EXIT, monitor_child=True, namespaces=namespaces)
            st.write_atomic(ed / st.SPEC, data, sync=False)
            line = await spawn_shim(self._shim_exe, ed / st.SPEC, argv0=str(self.shim), monitor_child=True)
            parts = line.split(" ", 3)
            if parts[0] == "ok" and len(parts) >= 3:
                return int(parts[1])
            if parts[0] == "error" and len(parts) >= 3:
                err = start_error(int(parts[1]), parts[2], parts[3] if len(parts) > 3 else "",
                                  ContainerSpec(id=cid, rootfs=Path("/"), args=spec.args))
                detail = err.detail.removeprefix("error during container init: ")  # runc's exec wording
                raise ExecStartError(detail, 126 if err.exit_code == 128 else err.exit_code, err.errno)
            raise ExecStartError(f"shim failed: {line or 'no status'}", 126)
        except BaseException:
            shutil.rmtree(ed, ignore_errors=True)
            raise

    def exec_logs(self, cid: str, eid: str) -> LogReader:
        ed = self._exec_dir(cid, eid)
        return LogReader(ed / "exec.log", ed / st.EXIT)

    def exec_stdin_path(self, cid: str, eid: str) -> Path:
        return self._exec_dir(cid, eid) / st.STDIN

    def exec_exit_status(self, cid: str, eid: str) -> ExitStatus | None:
        return st.read_exit(self._exec_dir(cid, eid))

    async def exec_wait(self, cid: str, eid: str) -> ExitStatus:
        ed = self._exec_dir(cid, eid)
        while True:
            status = st.read_exit(ed)
            if status is not None:
                return status
            pids = st.read_pids(ed)
            if pids is None:
                if not ed.exists():
                    return ExitStatus(exit_code=255, error="exec monitor is gone")
                await asyncio.sleep(0.05)
                continue
            try:
                pidfd = os.pidfd_open(pids[1])
            except OSError:
                pidfd = None
            if pidfd is None or not self._monitor_alive(ed, pids[1]):
                if pidfd is not None:
                    os.close(pidfd)
                status = st.read_exit(ed)
                if status is not None:
                    return status
                orphan = self._orphan_pidfd(ed)  # as for a container (see _orphan_pidfd)
                if orphan is not None:
                    return await self._wait_orphan(ed, orphan)
                return st.read_exit(ed) or ExitStatus(exit_code=255, error="exec monitor is gone")
            try:
                await _readable(pidfd)
            finally:
                os.close(pidfd)

    async def exec_kill(self, cid: str, eid: str, sig: int = signal.SIGKILL) -> None:
        ed = self._exec_dir(cid, eid)
        pids = st.read_pids(ed)
        if pids is None or st.read_exit(ed) is not None:
            return
        try:
            fd = os.pidfd_open(pids[0])
        except OSError:
            return
        try:
            if self._same_process(ed, pids[0], pids[1]):
                signal.pidfd_send_signal(fd, sig)
        except OSError:
            pass
        finally:
            os.close(fd)

    def exec_resize(self, cid: str, eid: str, height: int, width: int) -> None:
        _send_resize(self._exec_dir(cid, eid), height, width)

    def exec_stdin_detach(self, cid: str, eid: str) -> None:
        _send_control(self._exec_dir(cid, eid), "detach")

    async def exec_delete(self, cid: str, eid: str) -> None:
        ed = self._exec_dir(cid, eid)
        if not ed.exists():
            return
        if st.read_exit(ed) is None and st.read_pids(ed):
            await self.exec_kill(cid, eid, signal.SIGKILL)
            await self.exec_wait(cid, eid)
        shutil.rmtree(ed, ignore_errors=True)
