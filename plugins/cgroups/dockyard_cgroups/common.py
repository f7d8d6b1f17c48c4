"""Shared pieces of the v1 and v2 backends: config, cid checks, file I/O, host counters."""

from __future__ import annotations

import builtins
import errno
import json
import logging
import os
import posixpath
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError, DockyardError, InUse, InvalidArgument, NotFound, NotSupported

log = logging.getLogger("dockyard.cgroups")

CONFIG_KEYS = {"parent"}
_CID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TICKS = os.sysconf("SC_CLK_TCK")


def parse_config(config: dict | None) -> str:
    """Validate the ``[plugins.<name>]`` table; return the parent path (relative, no ``..``)."""
    config = dict(config or {})
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ConfigError(f"cgroups: unknown option(s): {', '.join(sorted(unknown))}")
    parent = str(config.get("parent", "dockyard")).strip("/")
    if not parent or any(p in ("", ".", "..") for p in parent.split("/")):
        raise ConfigError(f"cgroups: invalid parent {config.get('parent')!r}")
    return parent


def check_cid(cid: str) -> str:
    if not isinstance(cid, str) or not _CID.match(cid):
        raise InvalidArgument(f"invalid container id for a cgroup: {cid!r}")
    return cid


def read(path: Path) -> str:
    return path.read_text().strip()


def read_int(path: Path, default: int = 0) -> int:
    try:
        text = read(path)
    except OSError:
        return default
    return default if text in ("", "max") else int(text.split()[0])


def read_kv(path: Path) -> dict[str, int]:
    """A flat-keyed file (memory.stat, cpu.stat, memory.events) as ``{key: int}``."""
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def write(path: Path, value: object) -> None:
    """Write one value; the kernel's refusal becomes InvalidArgument with its reason."""
    data = str(value).encode()
    try:
        # one open, one write, one close (a text-mode open() adds fstat, ioctl and two lseeks;
        # a container start writes ~20 of these)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)  # as open("w")
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.EIO, "short write")
        finally:
            os.close(fd)
    except OSError as e:
        if not path.exists():  # cgroupfs answers EACCES (not ENOENT) for a missing file
            if path.parent.is_dir():
                raise NotSupported(f"cgroup: {path.name} is not available on this host") from e
            raise NotFound(f"cgroup {path.parent} does not exist") from e
        raise InvalidArgument(f"cgroup: cannot write {value!r} to {path}: {e.strerror}") from e


def write_each(path: Path, values: list[object]) -> None:
    """Write each value with a write() of its own through one open fd (files such as
    ``devices.allow`` take one rule per write): ``write`` per value, without an open and a
    close each. The kernel's refusal of one becomes InvalidArgument naming it."""
    if len(values) < 2:
        for value in values:
            write(path, value)
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    except OSError:
        write(path, values[0])  # its error (missing file or cgroup)
        raise
    try:
        for value in values:
            data = str(value).encode()
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.EIO, "short write")
            except OSError as e:
                raise InvalidArgument(f"cgroup: cannot write {value!r} to {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def require(d: Path, cid: str) -> None:
    if not d.is_dir():
        raise NotFound(f"no cgroup for container {cid}")


def procs(path: Path) -> list[int]:
    try:
        return sorted({int(x) for x in path.read_text().split()})
    except FileNotFoundError:
        return []


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not pred():
        if time.monotonic() > deadline:
            raise DockyardError(f"cgroup: timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def rmdir_all(dirs: list[Path], timeout: float, kill: Callable[[], None]) -> None:
    """rmdir each directory (deepest first as given), retrying on EBUSY; call ``kill`` once
    after half the timeout. Missing directories are fine."""
    deadline = time.monotonic() + timeout
    killed = False
    start = time.monotonic()
    for d in dirs:
        delay = 0.001
        while True:
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY, errno.EAGAIN):
                    raise
                now = time.monotonic()
                if now > deadline:
                    raise InUse(f"cgroup {d} is still busy after {timeout}s") from e
                if not killed and now - start >= timeout / 2:
                    killed = True
                    try:
                        kill()
                    except DockyardError as ke:
                        log.warning("kill_all before rmdir failed: %s", ke)
                time.sleep(delay)
                delay = min(delay * 2, 0.05)


def mkdirs(base: Path, rel: str, on_new: Callable[[Path], None] | None = None) -> None:
    """mkdir -p ``base/rel``, calling ``on_new(dir)`` for each directory it had to create."""
    d = base
    for part in rel.split("/"):
        d = d / part
        try:
            d.mkdir()
        except FileExistsError:
            continue
        if on_new:
            on_new(d)


# -- host counters --------------------------------------------------------------------

def system_cpu_usage() -> int:
    """Host CPU time in ns from /proc/stat (user..softirq), as Docker's system_cpu_usage."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 1_000_000_000 // _TICKS


def online_cpus() -> int:
    with open("/proc/stat") as f:
        return sum(1 for line in f if line.startswith("cpu") and line[3:4].isdigit())


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def ticks_to_ns(ticks: int) -> int:
    return ticks * 1_000_000_000 // _TICKS


def blkio_entries(lines: list[tuple[int, int, str, int]]) -> list[dict[str, Any]] | None:
    return [{"major": a, "minor": b, "op": op, "value": v} for a, b, op, v in lines] or None


def empty_blkio() -> dict[str, Any]:
    keys = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
            "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
            "io_time_recursive", "sectors_recursive")
    return {k: None for k in keys}



# -- per-container parents ---------------------------------------------------------------

def normalize_parent(parent: str) -> str:
    """Docker's ``--cgroup-parent`` as a path relative to each hierarchy's root: ``filepath.Join``
    cleaning (``..`` cannot climb above the root), no leading or trailing slash; ``""`` is the
    root itself. A relative parent is placed under the root too (this driver's rule, see
    docs/schedulers.md). Raises InvalidArgument for what cannot be a cgroup path."""
    if not isinstance(parent, str) or "\0" in parent or "\n" in parent:
        raise InvalidArgument(f"invalid cgroup parent: {parent!r}")
    return posixpath.normpath("/" + parent).strip("/")


class Parents:
    """Which parent each container's cgroup sits under (when not the driver's default) and
    which ancestor directories this driver created, so that removal takes away only
    directories it made, and only once empty. Kept in ``<state>/parents.json`` (exec-root:
    it lives as long as the cgroups do) so that a restarted daemon finds its containers."""

    def __init__(self, state: Path | None) -> None:
        self.file = Path(state) / "parents.json" if state else None
        self.lock = threading.RLock()
        self.of: dict[str, str] = {}
        self.created: set[str] = set()  # "<hierarchy root>\0<relative dir>"
        if self.file is not None:
            try:
                data = json.loads(self.file.read_text())
                self.of = {str(k): str(v) for k, v in data.get("parents", {}).items()}
                self.created = set(data.get("created", []))
            except FileNotFoundError:
                pass
            except (OSError, ValueError, AttributeError) as e:
                log.warning("cannot read %s: %s", self.file, e)

    def save(self) -> None:
        if self.file is None:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_text(json.dumps({"parents": self.of, "created": sorted(self.created)}))
        os.replace(tmp, self.file)

    def set(self, cid: str, parent: str | None) -> None:
        with self.lock:
            if parent is None:
                if self.of.pop(cid, None) is not None:
                    self.save()
            elif self.of.get(cid) != parent:
                self.of[cid] = parent
                self.save()

    def mkdirs(self, base: Path, rel: str, on_dir: Callable[[Path], None] | None = None) -> None:
        """mkdir -p ``base/rel`` recording each directory made; ``on_dir`` sees every directory
        of the path, new or not, top-down (cpuset inheritance)."""
        d, parts, made = base, [p for p in rel.split("/") if p], False
        for i, part in enumerate(parts):
            d = d / part
            try:
                d.mkdir()
                self.created.add(f"{base}\0{'/'.join(parts[:i + 1])}")
                made = True
            except FileExistsError:
                pass
            if on_dir:
                on_dir(d)
        if made:
            self.save()

    def release(self, base: Path, rel: str) -> None:
        """rmdir the directories of ``base/rel`` this driver created, deepest first, stopping at
        the first one that is busy (holds cgroups or tasks) or was not ours."""
        parts = [p for p in rel.split("/") if p]
        changed = False
        for i in range(len(parts), 0, -1):
            key = f"{base}\0{'/'.join(parts[:i])}"
            if key not in self.created:
                break
            try:
                (base / "/".join(parts[:i])).rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                break
            self.created.discard(key)
            changed = True
        if changed:
            self.save()

    def ancestors(self) -> builtins.set[str]:
        """Every proper prefix (and itself) of the registered parents: never container ids."""
        out: builtins.set[str] = set()
        for p in set(self.of.values()):
            parts = [x for x in p.split("/") if x]
            out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
        return out
