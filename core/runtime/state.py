"""Files of a container's state dir, shared by the native and fake runtimes.

* ``exit``: ``"<exit_code> <signal> <finished_at_ns>\\n"``, written atomically by the monitor.
* ``pid``: ``"<container_pid> <monitor_pid> <container start time>\\n"``, written atomically once
  the process runs (the start time, field 22 of /proc/PID/stat, tells it from a recycled pid).
* ``runtime.json``: what the Python side needs after a restart (log path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import store
from ..drivers.runtime import ExitStatus

EXIT, PID, META, SPEC, STDIN, CONTROL = "exit", "pid", "runtime.json", "spec", "stdin", "control"


def write_atomic(path: Path, data: bytes, sync: bool = True) -> None:
    store.write_atomic(path, data, mode=0o644, sync=sync)


def read_exit(state_dir: Path) -> ExitStatus | None:
    try:
        code, sig, ts = (state_dir / EXIT).read_text().split()[:3]
    except (OSError, ValueError):
        return None
    return ExitStatus(exit_code=int(code), signal=int(sig), finished_at_ns=int(ts))


def write_exit(state_dir: Path, status: ExitStatus) -> None:
    # not fsynced, as the shim's (shim.c write_file_atomic): the state dir is under the exec
    # root (tmpfs), gone with its containers at a power loss; a daemon crash keeps the file
    write_atomic(state_dir / EXIT, f"{status.exit_code} {status.signal} {status.finished_at_ns}\n".encode(),
                 sync=False)


def read_pids(state_dir: Path) -> tuple[int, int] | None:
    """(container pid, monitor pid) or None."""
    try:
        cpid, mpid = (state_dir / PID).read_text().split()[:2]
        return int(cpid), int(mpid)
    except (OSError, ValueError):
        return None


def read_pid_start(state_dir: Path) -> int | None:
    """The container process's start time recorded by the monitor (None if unknown)."""
    try:
        fields = (state_dir / PID).read_text().split()
        return int(fields[2]) or None
    except (OSError, ValueError, IndexError):
        return None


def proc_start(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def write_meta(state_dir: Path, **meta: object) -> None:
    write_atomic(state_dir / META, json.dumps(meta).encode(), sync=False)


def read_meta(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / META).read_text())
    except (OSError, ValueError):
        return {}


def status_from_wait(status: int) -> tuple[int, int]:
    """(docker exit code, signal) from an os.waitpid status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    return os.WEXITSTATUS(status), 0


PF_EXITING = 0x4  # include/linux/sched.h: set as a task enters do_exit()


def pid_alive(pid: int, exiting_is_dead: bool = False) -> bool:
    """Whether ``pid`` exists and is not a zombie; with ``exiting_is_dead``, a task already in
    ``do_exit`` (an init killing the rest of its pid namespace) counts as dead too."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is state, fields[6] flags
    except OSError:
        return False
    return fields[0] != "Z" and not (exiting_is_dead and int(fields[6]) & PF_EXITING)
