"""User namespace remapping: dockerd's ``--userns-remap default|USER[:GROUP]``.

With remapping on, every container (unless ``--userns host``) runs in its own user namespace
whose uid/gid 0..N map to a subordinate range of the host's (``/etc/subuid``, ``/etc/subgid``):
root in the container is an unprivileged uid on the host (e.g. 100000).

As in dockerd:

* ``default`` uses the ``dockremap`` user and group, creating them (``useradd --system``) and
  their ranges (``dockremap:100000:65536``, or the next free range) when missing;
  ``USER[:GROUP]`` reads the ranges of that user (and group; the user's name when no group is
  given) by name or by numeric id; several ranges are mapped one after another.
* The daemon's data lives in ``<data-root>/<uid>.<gid>`` (the host ids of container root), so
  layers unpacked with one mapping are never used with another.
* Layers are unpacked with their owners shifted into the range; new volumes are owned by the
  remapped root; bind mounts keep the host's ownership.
* ``--privileged``, ``--network host`` and ``--pid host`` are refused unless the container
  opts out with ``--userns host`` (Docker's messages).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import grp
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, InvalidArgument

log = logging.getLogger("dockyard.userns")

DEFAULT_NAME = "default"
DEFAULT_USER = "dockremap"
DEFAULT_START, DEFAULT_SIZE = 100000, 65536
SUBUID, SUBGID = Path("/etc/subuid"), Path("/etc/subgid")
CLONE_NEWUSER = 0x10000000
MAX_MAP_LINES = 340  # the kernel's limit on lines in uid_map/gid_map


@dataclass(frozen=True)
class IdRange:
    container: int
    host: int
    size: int


@dataclass(frozen=True)
class IdMapping:
    """The uid and gid maps of remapped containers (container id -> host id)."""

    user: str
    group: str
    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    @staticmethod
    def _to_host(ranges: tuple[IdRange, ...], value: int, kind: str) -> int:
        for r in ranges:
            if r.container <= value < r.container + r.size:
                return r.host + value - r.container
        raise InvalidArgument(f"Container ID {value} cannot be mapped to a host ID ({kind})")

    @staticmethod
    def _to_container(ranges: tuple[IdRange, ...], value: int, kind: str) -> int:
        for r in ranges:
            if r.host <= value < r.host + r.size:
                return r.container + value - r.host
        raise InvalidArgument(f"Host ID {value} cannot be mapped to a container ID ({kind})")

    def uid_to_host(self, uid: int) -> int:
        return self._to_host(self.uids, uid, "uid")

    def gid_to_host(self, gid: int) -> int:
        return self._to_host(self.gids, gid, "gid")

    def uid_to_container(self, uid: int) -> int:
        return self._to_container(self.uids, uid, "uid")

    def gid_to_container(self, gid: int) -> int:
        return self._to_container(self.gids, gid, "gid")

    @property
    def root_uid(self) -> int:
        return self.uid_to_host(0)

    @property
    def root_gid(self) -> int:
        return self.gid_to_host(0)

    @property
    def dirname(self) -> str:
        """dockerd's per-remap data root: ``<uid>.<gid>`` of container root on the host."""
        return f"{self.root_uid}.{self.root_gid}"

    def uid_map(self) -> list[tuple[int, int, int]]:
        return [(r.container, r.host, r.size) for r in self.uids]

    def gid_map(self) -> list[tuple[int, int, int]]:
        return [(r.container, r.host, r.size) for r in self.gids]


# -- the daemon's mapping, for the layer code --------------------------------------------------

_active: IdMapping | None = None
OVERFLOW_ID = 65534  # what the kernel shows for an id outside a mapping


def activate(mapping: IdMapping | None) -> None:
    """Set the daemon's mapping (``--userns-remap``): every tar the daemon unpacks into its
    (per-mapping) storage gets owners shifted into the range (layers, ``docker cp`` into a
    container, build contexts and COPY), and every tar it makes of that storage gets them
    shifted back (``docker cp`` out, ``export``, ``commit``, ``save`` without tar-split), as
    dockerd's archiver does with its IdentityMapping."""
    global _active
    _active = mapping


def active() -> IdMapping | None:
    return _active


def to_container_ids(uid: int, gid: int) -> tuple[int, int]:
    """Host owner -> the owner a tar shows (unchanged without remapping; ids outside the
    mapping, e.g. host root's files on a bind, become the overflow id 65534)."""
    m = _active
    if m is None:
        return uid, gid
    try:
        uid = m.uid_to_container(uid)
    except InvalidArgument:
        uid = OVERFLOW_ID
    try:
        gid = m.gid_to_container(gid)
    except InvalidArgument:
        gid = OVERFLOW_ID
    return uid, gid


def to_host_ids(uid: int, gid: int) -> tuple[int, int]:
    """A container's owner (``COPY --chown``, ``docker cp -a``) -> the host's: shifted by the
    daemon's mapping (an id outside it is a 400, as dockerd)."""
    m = _active
    return (uid, gid) if m is None else (m.uid_to_host(uid), m.gid_to_host(gid))


# -- /etc/subuid, /etc/subgid --------------------------------------------------------------

def read_ranges(path: Path, names: set[str]) -> list[tuple[int, int]]:
    """(start, count) of every ``name:start:count`` line whose name is in ``names`` (a user's
    name and its numeric id: both spellings are valid in these files)."""
    out = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] not in names:
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if start >= 0 and count > 0:
            out.append((start, count))
    return out


def _all_ranges(path: Path) -> list[tuple[int, int]]:
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            out.append((int(parts[1]), int(parts[2])))
    return out


def _to_ranges(found: list[tuple[int, int]]) -> tuple[IdRange, ...]:
    """Ranges sorted by host start, mapped one after another from container id 0 (dockerd's
    createIDMap)."""
    out, next_id = [], 0
    for start, count in sorted(found)[:MAX_MAP_LINES]:
        out.append(IdRange(next_id, start, count))
        next_id += count
    return tuple(out)


def _free_start(paths: tuple[Path, ...], size: int) -> int:
    """The first start >= 100000 whose range overlaps none in the files (dockerd's search)."""
    taken = sorted(r for p in paths for r in _all_ranges(p))
    start = DEFAULT_START
    for s, c in taken:
        if s + c <= start:
            continue
        if s >= start + size:
            break
        start = s + c
    return start


def _append_range(path: Path, name: str, start: int, size: int) -> None:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        if text and not text.endswith("\n"):
            f.write("\n")
        f.write(f"{name}:{start}:{size}\n")


def ensure_default_user(subuid: Path = SUBUID, subgid: Path = SUBGID) -> None:
    """Create ``dockremap`` (user and group) and its ranges when missing, as dockerd does."""
    try:
        pwd.getpwnam(DEFAULT_USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--shell", "/bin/false", "--user-group", DEFAULT_USER],
                           capture_output=True, text=True)
        if r.returncode != 0 and "already exists" not in r.stderr:
            raise ConfigError(f"userns-remap: cannot create the {DEFAULT_USER} user: {r.stderr.strip()}") from None
        log.info("created the %s user for --userns-remap", DEFAULT_USER)
    uid = pwd.getpwnam(DEFAULT_USER).pw_uid
    try:
        gid = grp.getgrnam(DEFAULT_USER).gr_gid
    except KeyError:
        r = subprocess.run(["groupadd", "--system", DEFAULT_USER], capture_output=True, text=True)
        if r.returncode != 0 and "already exists" not in r.stderr:
            raise ConfigError(f"userns-remap: cannot create the {DEFAULT_USER} group: {r.stderr.strip()}") from None
        gid = grp.getgrnam(DEFAULT_USER).gr_gid
    for path, ident in ((subuid, uid), (subgid, gid)):
        if not read_ranges(path, {DEFAULT_USER, str(ident)}):
            start = _free_start((path,), DEFAULT_SIZE)  # each file on its own, as dockerd
            _append_range(path, DEFAULT_USER, start, DEFAULT_SIZE)
            log.info("added %s:%d:%d to %s", DEFAULT_USER, start, DEFAULT_SIZE, path)


def resolve(value: str, subuid: Path = SUBUID, subgid: Path = SUBGID) -> IdMapping:
    """``--userns-remap`` -> the mapping; ConfigError when the user, group or ranges are missing."""
    value = (value or "").strip()
    if not value:
        raise ConfigError("userns-remap: empty value")
    if value == DEFAULT_NAME:
        ensure_default_user(subuid, subgid)
        user_part, group_part = DEFAULT_USER, DEFAULT_USER
    else:
        user_part, _, group_part = value.partition(":")
    try:
        pw = pwd.getpwuid(int(user_part)) if user_part.isdigit() else pwd.getpwnam(user_part)
    except KeyError:
        raise ConfigError(f"userns-remap: no such user: {user_part}") from None
    if not group_part:
        group_part = pw.pw_name  # dockerd: no group given, the user's name is the group's
    try:
        gr = grp.getgrgid(int(group_part)) if group_part.isdigit() else grp.getgrnam(group_part)
    except KeyError:
        raise ConfigError(f"userns-remap: no such group: {group_part}") from None
    if pw.pw_uid == 0 or gr.gr_gid == 0:
        raise ConfigError("userns-remap: cannot remap to root; name an unprivileged user")
    uids = read_ranges(subuid, {pw.pw_name, str(pw.pw_uid)})
    gids = read_ranges(subgid, {gr.gr_name, str(gr.gr_gid)})
    if not uids:
        raise ConfigError(f"userns-remap: no subuid ranges found for user {pw.pw_name!r} in {subuid}")
    if not gids:
        raise ConfigError(f"userns-remap: no subgid ranges found for group {gr.gr_name!r} in {subgid}")
    return IdMapping(pw.pw_name, gr.gr_name, _to_ranges(uids), _to_ranges(gids))


# -- the daemon's data root ----------------------------------------------------------------

def _can_traverse(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid == gid:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def data_root(base: Path, mapping: IdMapping) -> Path:
    """Create ``<base>/<uid>.<gid>`` (mode 0710, group = remapped root's, as dockerd) after
    checking that remapped root can reach it, and return it."""
    root = base / mapping.dirname
    uid, gid = mapping.root_uid, mapping.root_gid
    for parent in reversed(root.resolve().parents):
        if parent == Path("/") or not parent.exists():
            continue
        if not _can_traverse(parent, uid, gid):
            raise ConfigError(
                f"a subdirectory in your graphroot path ({root}) restricts access to the remapped root "
                f"uid/gid; please fix by allowing 'o+x' permissions on existing directories")
    root.mkdir(parents=True, exist_ok=True)
    os.chown(root, os.geteuid(), gid)
    os.chmod(root, 0o710)
    return root


# -- containers ----------------------------------------------------------------------------

def give_to_root(mapping: IdMapping, paths: Any) -> None:
    """The files the daemon binds into a remapped container (/etc/hosts, resolv.conf,
    hostname) belong to its root, who may edit them as root may without remapping."""
    for path in paths:
        try:
            os.chown(path, mapping.root_uid, mapping.root_gid, follow_symlinks=False)
        except FileNotFoundError:
            pass


def remapped(mapping: IdMapping | None, host_config: dict[str, Any]) -> bool:
    """Whether a container gets the remapped user namespace (not ``--userns host``)."""
    return mapping is not None and (host_config.get("UsernsMode") or "") != "host"


def check_container(mapping: IdMapping | None, host_config: dict[str, Any]) -> None:
    """What Docker refuses under remapping unless the container runs with ``--userns host``
    (moby daemon/daemon_unix.go verifyPlatformContainerSettings)."""
    if not remapped(mapping, host_config):
        return
    if host_config.get("Privileged"):
        raise InvalidArgument("privileged mode is incompatible with user namespaces.  You must run the "
                              "container in the host namespace when running privileged mode")
    if (host_config.get("NetworkMode") or "") == "host":
        raise InvalidArgument("cannot share the host's network namespace when user namespaces are enabled")
    if (host_config.get("PidMode") or "") == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces are enabled")
