"""The built-in ``local`` volume driver, as Docker's: ``<data-root>/volumes/<name>/_data``.

Without options a volume is that directory. With ``type``/``device``/``o`` (``docker volume
create --opt type=tmpfs --opt device=tmpfs --opt o=size=100m``, or ``type=none,o=bind,
device=/srv/x``, or nfs...) the device is mounted on ``_data`` when the first container uses
the volume and unmounted when the last one stops, as Docker's local driver does. Options are
kept in ``<name>/opts.json`` so the driver needs nothing from the service to mount.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

from ..errors import DockyardError, InvalidArgument
from ..store import read_json, write_json

log = logging.getLogger("dockyard.volumes.local")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MNT_DETACH = 2

# mount(8) words that are flags rather than filesystem data (util-linux's table, the usual ones)
MS_FLAGS = {
    "ro": (1, True), "rw": (1, False), "nosuid": (2, True), "suid": (2, False), "nodev": (4, True),
    "dev": (4, False), "noexec": (8, True), "exec": (8, False), "sync": (16, True), "async": (16, False),
    "remount": (32, True), "mand": (64, True), "nomand": (64, False), "dirsync": (128, True),
    "noatime": (1024, True), "atime": (1024, False), "nodiratime": (2048, True), "diratime": (2048, False),
    "bind": (4096, True), "rbind": (4096 | 16384, True), "relatime": (1 << 21, True),
    "norelatime": (1 << 21, False), "strictatime": (1 << 24, True), "lazytime": (1 << 25, True),
    "defaults": (0, True),
}
OPTIONS = {"type", "device", "o"}
# a volume is one directory under the root: no separators, no "." or ".." (the service checks
# Docker's stricter rule first; the driver never trusts its callers with a path)
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def parse_mount_options(o: str) -> tuple[int, str]:
    """``"ro,size=10m,bind"`` -> (MS_* flags, "size=10m")."""
    flags, data = 0, []
    for word in filter(None, (w.strip() for w in o.split(","))):
        if word in MS_FLAGS:
            bit, on = MS_FLAGS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


def is_mountpoint(path: Path) -> bool:
    target = str(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split(" ", 5)[4]
                if "\\" in point:
                    point = point.encode().decode("unicode_escape")
                if point == target:
                    return True
    except OSError:
        pass
    return False


class LocalVolumes:
    name = "local"
    #: optional contracts (dockyard.drivers.contracts): none beyond the base Protocol
    capabilities: frozenset[str] = frozenset()
    scope = "local"

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        # the daemon sets "root" to <data-root>/volumes (Docker's layout); else the driver dir
        self.root = Path(config.get("root") or root)
        # "uid:gid" of a new volume's _data (--userns-remap: the remapped root, as dockerd)
        owner = str(config.get("owner") or "")
        self.owner = tuple(int(x) for x in owner.split(":")) if owner else None
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o701)
        self.users: dict[str, set[str]] = {}  # volume -> refs using its device mount
        self.lock = threading.Lock()

    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidArgument(f"invalid volume name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        return self.root / name

    def path(self, name: str) -> str:
        return str(self._dir(name) / "_data")

    def _options(self, name: str) -> dict[str, str]:
        return read_json(self._dir(name) / "opts.json", {}) or {}

    @staticmethod
    def validate(options: dict[str, str]) -> None:
        for key in options:
            if key not in OPTIONS:
                raise InvalidArgument(f'invalid option: "{key}"')
        kind, device = options.get("type", ""), options.get("device", "")
        if kind and not device:
            raise InvalidArgument('missing required option: "device"')
        if device and not kind:
            raise InvalidArgument('missing required option: "type"')
        if options.get("o") and not kind:
            raise InvalidArgument('missing required option: "type"')
        flags, _ = parse_mount_options(options.get("o", ""))
        if flags & 4096 and not os.path.isabs(device):
            raise InvalidArgument(f"bind device must be an absolute path: {device}")

    def create(self, name: str, options: dict[str, str]) -> None:
        options = {k: str(v) for k, v in (options or {}).items()}
        self.validate(options)
        directory = self._dir(name)
        try:
            (directory / "_data").mkdir(parents=True, mode=0o755)
            os.chmod(directory / "_data", 0o755)  # the umask must not decide what containers see
            if self.owner:
                os.chown(directory / "_data", *self.owner)
        except FileExistsError:
            pass
        if options:
            write_json(directory / "opts.json", options)

    def remove(self, name: str) -> None:
        with self.lock:
            self.users.pop(name, None)
            data = Path(self.path(name))
            if is_mountpoint(data):
                _umount(data)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def mount(self, name: str, ref: str) -> str:
        data = Path(self.path(name))
        if not data.is_dir():
            from ..errors import NoSuchVolume

            raise NoSuchVolume(name)
        options = self._options(name)
        if not options:
            return str(data)
        with self.lock:
            users = self.users.setdefault(name, set())
            if not users and not is_mountpoint(data):
                flags, extra = parse_mount_options(options.get("o", ""))
                device = options["device"]
                kind = options["type"]
                if kind == "nfs" and "addr=" in extra:
                    device = device if ":" in device else f":{device}"
                rc = _libc.mount(device.encode(), str(data).encode(), kind.encode(), flags,
                                 extra.encode() if extra else None)
                if rc != 0:
                    err = ctypes.get_errno()
                    raise DockyardError(f"error while mounting volume '{data}': failed to mount local volume: "
                                        f"mount {device}:{data}, flags: {flags:#x}, data: {extra}: "
                                        f"{os.strerror(err)}")
            users.add(ref)
        return str(data)

    def unmount(self, name: str, ref: str) -> None:
        if not self._options(name):
            return
        with self.lock:
            users = self.users.get(name, set())
            if ref and ref not in users:
                return  # not ours to release (ref "" asks to undo a mount nobody holds)
            users.discard(ref)
            if users:
                return
            self.users.pop(name, None)
            data = Path(self.path(name))
            if is_mountpoint(data):
                _umount(data)

    def status(self, name: str) -> dict[str, Any] | None:
        return None

    def size(self, name: str) -> int:
        total = 0
        seen: set[tuple[int, int]] = set()
        for root, dirs, files in os.walk(self.path(name)):
            for entry in [*dirs, *files]:
                try:
                    st = os.lstat(os.path.join(root, entry))
                except OSError:
                    continue
                if not stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))  # hard links count once, as in Docker
                    total += st.st_size
        return total

    def close(self) -> None:
        pass


def _umount(path: Path) -> None:
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            log.warning("unmounting %s failed: %s", path, os.strerror(err))
