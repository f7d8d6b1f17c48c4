"""A container's filesystem from the outside: ``docker cp`` both ways, ``docker export`` and
``docker commit``.

The container's root filesystem is hostile: a process inside it may plant symlinks (also
while we work). Every lookup here is relative to a directory fd opened on the rootfs; each
component is opened with ``O_NOFOLLOW``, symlinks are read and resolved by hand as if the
rootfs were ``/`` (``..`` never climbs above it), so nothing outside the rootfs is ever
read or written. Files are named to the kernel only as ``/proc/self/fd/<dir fd>/<name>``
with a final component that is never followed. The fds also keep a lazily detached mount
alive, so a container that stops during a copy does not cut the copy short.

Uploads (``PUT .../archive``) are spooled, checked whole, then extracted with
:func:`dockyard.layers.extract`: a refused tar writes nothing.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import posixpath
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .. import layers as L
from ..errors import Conflict, DockyardError, Forbidden, InvalidArgument, NotFound
from ..images.store import CHUNK
from ..images.streams import decompressed
from ..timestamps import rfc3339_nano
from ..userns import to_host_ids
from .inroot import DIR_FLAGS, Root, allowed, fd_path, open_below
from .reconcile import COMMIT_PAUSE_MARKER, resume_interrupted_commits  # noqa: F401  (were here)
from .spec import resolve_user

STAT_HEADER = "X-Docker-Container-Path-Stat"
_MISSING = {errno.ENOENT, errno.ENOTDIR, errno.ELOOP}

# Go's os.FileMode type bits
GO_DIR, GO_SYMLINK, GO_DEVICE, GO_PIPE, GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
GO_SETUID, GO_SETGID, GO_CHARDEV, GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


# -- paths as Docker spells them ---------------------------------------------------------------


def go_base(path: str) -> str:
    """Go's ``filepath.Base``."""
    if path == "":
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rpartition("/")[2]


def abs_path(path: str) -> str:
    """``PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)``."""
    cleaned = posixpath.normpath("/" + path.lstrip("/"))
    if go_base(cleaned) != "." and go_base(path) == ".":
        cleaned += ("" if cleaned.endswith("/") else "/") + "."
    if not cleaned.endswith("/") and path.endswith("/"):
        cleaned += "/"
    return cleaned


def asserts_directory(path: str) -> bool:
    return path.endswith("/") or go_base(path) == "."


def go_mode(mode: int) -> int:
    """A ``st_mode`` as Go's ``os.FileMode``."""
    out = mode & 0o777
    kind = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: GO_DIR, stat.S_IFLNK: GO_SYMLINK, stat.S_IFBLK: GO_DEVICE,
            stat.S_IFCHR: GO_DEVICE | GO_CHARDEV, stat.S_IFIFO: GO_PIPE, stat.S_IFSOCK: GO_SOCKET}.get(kind, 0)
    if mode & stat.S_ISUID:
        out |= GO_SETUID
    if mode & stat.S_ISGID:
        out |= GO_SETGID
    if mode & stat.S_ISVTX:
        out |= GO_STICKY
    return out


def go_time(ns: int) -> str:
    """RFC 3339 with nanoseconds as Go marshals a ``time.Time`` (UTC, trailing zeros dropped)."""
    return rfc3339_nano(ns)


def encode_stat(s: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(s, separators=(",", ":")).encode()).decode()


def _not_found(path: str, cid: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {cid}")


# -- stat and GET ---------------------------------------------------------------------------


def stat_path(root: Root, cid: str, path: str) -> tuple[dict[str, Any], list[str], os.stat_result]:
    """Docker's ``ContainerPathStat`` of ``path``: a final symlink is not followed unless the
    path asserts a directory (``dir/`` or ``dir/.``). Also the resolved components and stat."""
    absolute = abs_path(path)
    follow = asserts_directory(absolute)
    parts = root.resolve(absolute, follow_last=follow)
    try:
        st = root.lstat(parts)
    except OSError as exc:
        if exc.errno in _MISSING:
            raise _not_found(path, cid) from None
        raise
    if follow and not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"lstat {absolute}: not a directory")
    link = ""
    if stat.S_ISLNK(st.st_mode):
        link = "/" + "/".join(root.resolve(absolute, follow_last=True))
    info = {"name": go_base(absolute), "size": st.st_size, "mode": go_mode(st.st_mode),
            "mtime": go_time(st.st_mtime_ns), "linkTarget": link}
    return info, parts, st


def walk(dir_fd: int, prefix: str, allowed_devs: set[int] | None = None) -> Iterator[L.Entry]:
    """Entries below ``dir_fd`` (sorted, parents first), named ``prefix + relative path``.

    Each entry is consumed before the next one is asked for, so the directory fds its path
    goes through are open while it is read. Sockets are skipped (tar has no type for them),
    and so is whatever is on a filesystem not in ``allowed_devs`` (when given).
    """
    try:
        names = sorted(os.listdir(dir_fd))
    except OSError:
        return
    for name in names:
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except OSError:
            continue  # removed meanwhile
        if stat.S_ISSOCK(st.st_mode) or not allowed(st, allowed_devs):
            continue
        yield L.Entry(prefix + name, fd_path(dir_fd, name), st)  # type: ignore[arg-type]
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from walk(sub, prefix + name + "/", allowed_devs)
            finally:
                os.close(sub)


class Archive:
    """A tar of one path of a container (``GET /containers/{id}/archive``), ready to stream.

    Owns the fds it reads through; :meth:`close` releases them.
    """

    def __init__(self, root: Root, cid: str, path: str) -> None:
        self.root = root
        self.stat, parts, st = stat_path(root, cid, path)
        if stat.S_ISSOCK(st.st_mode):
            raise InvalidArgument(f"cannot archive {path}: it is a socket")
        name = self.stat["name"]
        self.is_dir = stat.S_ISDIR(st.st_mode)
        # a directory's fd, or the fd of the directory holding a single file
        self.fd = root.open_dir(parts if self.is_dir else parts[:-1])
        self.base = "." if self.is_dir else parts[-1]
        self.name, self.st = name, st

    def entries(self) -> Iterator[L.Entry]:
        yield L.Entry(self.name, fd_path(self.fd, self.base), self.st)  # type: ignore[arg-type]
        if self.is_dir:
            prefix = "/" if self.name == "/" else self.name + "/"
            yield from walk(self.fd, prefix, self.root.allowed_devs)

    def chunks(self) -> Iterator[bytes]:
        return L.tar_stream(self.entries())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def export_chunks(root: Root) -> Iterator[bytes]:
    """``docker export``: the whole root filesystem, names relative (``bin/busybox``)."""
    return L.tar_stream(walk(root.fd, ""))


# -- PUT -------------------------------------------------------------------------------------


class _RefuseWhiteouts:
    def whiteout(self, dir_fd: int, name: str) -> None:
        raise InvalidArgument(f"invalid tar: whiteout for {name!r}")

    def opaque(self, dir_fd: int, keep: set[str]) -> None:
        raise InvalidArgument("invalid tar: opaque directory marker")


def _bad(member: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid tar: member {member!r}: {why}")


def check_tar(tar: BinaryIO, dest_fd: int, no_overwrite_dir_non_dir: bool,
              allowed_devs: set[int] | None = None, busy: set[tuple[str, ...]] = frozenset(),  # type: ignore[assignment]
              dest_path: str = "/") -> list[tuple[str, ...]]:
    """Everything :func:`layers.extract` would refuse half-way, refused before anything is
    written: names leaving the destination, members under a symlink or a file (of the tar
    or already on disk), hard links to anything but an earlier file of the tar, devices,
    whiteout names, paths on a filesystem not in ``allowed_devs``, replacing a mount point
    in ``busy`` (or a directory holding one) as Docker does with EBUSY; with
    ``no_overwrite_dir_non_dir``, a directory replaced by a non-directory or the reverse.
    Returns the members' paths, in order."""
    import tarfile  # here: not at import (the tar code is for requests, see tests/api/test_idle_memory.py)

    kinds: dict[tuple[str, ...], bool] = {}  # path -> is a directory, as the tar leaves it
    disk: dict[tuple[str, ...], os.stat_result | None] = {}
    out: list[tuple[str, ...]] = []

    def on_disk(parts: tuple[str, ...]) -> os.stat_result | None:
        if parts not in disk:
            try:
                fd = open_below(dest_fd, parts[:-1])
            except OSError:
                disk[parts] = None  # below something missing (or refused earlier)
            else:
                try:
                    disk[parts] = os.lstat(parts[-1], dir_fd=fd)
                except FileNotFoundError:
                    disk[parts] = None
                finally:
                    os.close(fd)
        return disk[parts]

    try:
        with tarfile.open(fileobj=tar, mode="r|", bufsize=L.READ_SIZE) as tf:
            for m in tf:
                try:
                    parts = L.clean_name(m.name)
                except InvalidArgument:
                    raise _bad(m.name, "absolute or leaves the destination ('..')") from None
                if not parts:
                    continue
                if allowed_devs is not None:
                    for i in range(1, len(parts) + 1):
                        st = on_disk(parts[:i])
                        if st is not None and not allowed(st, allowed_devs):
                            raise _bad(m.name, f"{'/'.join(parts[:i])!r} is on a filesystem of the runtime "
                                               "(/proc, /sys, /dev), which docker cp does not write")
                if busy and (st := on_disk(parts)) is not None and not (m.isdir() and stat.S_ISDIR(st.st_mode)):
                    n = len(parts)
                    if parts in busy or (stat.S_ISDIR(st.st_mode) and any(b[:n] == parts for b in busy)):
                        raise DockyardError(f"unlinkat {posixpath.join(dest_path, *parts)}: device or resource busy")
                if parts[-1].startswith(L.WHITEOUT_PREFIX):
                    raise _bad(m.name, "whiteout names are not allowed")
                if m.ischr() or m.isblk():
                    raise _bad(m.name, "device nodes are not allowed")
                if not (m.isreg() or m.isdir() or m.issym() or m.islnk() or m.isfifo()):
                    raise _bad(m.name, f"unsupported type {m.type!r}")
                for i in range(1, len(parts)):
                    prefix = parts[:i]
                    if prefix in kinds:
                        is_dir = kinds[prefix]
                    else:
                        st = on_disk(prefix)
                        is_dir = st is None or stat.S_ISDIR(st.st_mode)
                        kinds[prefix] = is_dir  # missing parents are created as directories
                    if not is_dir:
                        raise _bad(m.name, f"{'/'.join(prefix)!r} is not a directory (symlink?)")
                if m.islnk():
                    try:
                        target = L.clean_name(m.linkname)
                    except InvalidArgument:
                        raise _bad(m.name, f"hard link to {m.linkname!r} leaves the destination") from None
                    if target == parts or kinds.get(target, True):
                        raise _bad(m.name, f"hard link to {m.linkname!r}, not an earlier file of this tar")
                if no_overwrite_dir_non_dir and parts not in kinds:
                    st = on_disk(parts)
                    if st is not None and stat.S_ISDIR(st.st_mode) and not m.isdir():
                        raise InvalidArgument(f"cannot overwrite directory {'/'.join(parts)!r} "
                                              f"with non-directory {m.name!r}")
                    if st is not None and not stat.S_ISDIR(st.st_mode) and m.isdir():
                        raise InvalidArgument(f"cannot overwrite non-directory {'/'.join(parts)!r} "
                                              f"with directory {m.name!r}")
                was_dir = kinds.get(parts)
                kinds[parts] = m.isdir()
                if was_dir and not m.isdir():  # a directory replaced: what was below it is gone
                    for key in [k for k in kinds if len(k) > len(parts) and k[:len(parts)] == parts]:
                        del kinds[key]
                out.append(parts)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidArgument(f"invalid tar: {exc or 'unexpected end of data'}") from None
    return out


def extract_to_dir(root: Root, c: Any, path: str, body: BinaryIO, *, no_overwrite_dir_non_dir: bool,
                   copy_uid_gid: bool, rootfs: Path, spool_dir: Path) -> None:
    """``PUT /containers/{id}/archive``: unpack ``body`` (a tar, maybe compressed) into the
    directory ``path`` of the container (symlinks followed in its scope, the last one too)."""
    absolute = abs_path(path)
    parts = root.resolve(absolute, follow_last=True)
    try:
        st = root.lstat(parts)
    except OSError as exc:
        if exc.errno in _MISSING:
            raise _not_found(path, c.id) from None
        raise
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidArgument("extraction point is not a directory")
    point = mount_holding(c.mounts, absolute)
    if point is not None and not point.get("RW", True):
        raise Forbidden("mounted volume is marked read-only")
    if point is None and c.host_config.get("ReadonlyRootfs"):
        raise Forbidden("container rootfs is marked read-only")
    owner = None
    if copy_uid_gid:
        uid, gid, _ = resolve_user(rootfs, c.config.get("User") or "")
        owner = (uid, gid)
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        src = decompressed(body)
        try:
            while chunk := src.read(CHUNK):
                spool.write(chunk)
        except (EOFError, OSError, ValueError) as exc:
            raise InvalidArgument(f"invalid archive: {exc or type(exc).__name__}") from None
        if spool.tell() == 0:
            return  # an empty body: nothing to do
        spool.seek(0)
        dest_fd = root.open_dir(parts)
        try:
            n = len(parts)
            busy = {mp[n:] for mp in root.mount_points if len(mp) > n and mp[:n] == tuple(parts)}
            members = check_tar(spool, dest_fd, no_overwrite_dir_non_dir, root.allowed_devs, busy,
                                "/" + "/".join(parts))
            spool.seek(0)
            L.extract(spool, fd_path(dest_fd), _RefuseWhiteouts())  # type: ignore[arg-type]
            if owner is not None:
                _chown(dest_fd, members, *owner)
        finally:
            os.close(dest_fd)


def mount_holding(mounts: list[dict[str, Any]], absolute: str) -> dict[str, Any] | None:
    """The mount (volume, bind or tmpfs) whose destination is ``absolute`` or holds it
    (lexically, as Docker's ``HasResource``); the deepest one."""
    path = posixpath.normpath(absolute)
    best = None
    for point in mounts:
        dest = point.get("Destination") or ""
        if (path == dest or path.startswith(dest.rstrip("/") + "/")) and (
                best is None or len(dest) > len(best["Destination"])):
            best = point
    return best


def _chown(dest_fd: int, members: list[tuple[str, ...]], uid: int, gid: int) -> None:
    uid, gid = to_host_ids(uid, gid)  # container ids; --userns-remap: shifted to the host's
    for parts in dict.fromkeys(members):
        try:
            fd = open_below(dest_fd, parts[:-1])
        except OSError:
            continue
        try:
            os.chown(parts[-1], uid, gid, dir_fd=fd, follow_symlinks=False)
        except OSError:
            pass
        finally:
            os.close(fd)


# -- commit -----------------------------------------------------------------------------------


def merge_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """Moby's ``merge(userConf, imageConf)``: what the commit's config leaves empty comes from
    the container's config."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    ports = container.get("ExposedPorts") or {}
    if not out.get("ExposedPorts"):
        out["ExposedPorts"] = container.get("ExposedPorts")
    else:
        out["ExposedPorts"] = {**ports, **out["ExposedPorts"]}
    if not out.get("Env"):
        out["Env"] = container.get("Env")
    else:
        keys = {e.partition("=")[0] for e in out["Env"]}
        out["Env"] = list(out["Env"]) + [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    labels = dict(out.get("Labels") or {})
    for k, v in (container.get("Labels") or {}).items():
        labels.setdefault(k, v)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
            if "ArgsEscaped" in container:
                out["ArgsEscaped"] = container["ArgsEscaped"]
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if out.get("Healthcheck") is None and container.get("Healthcheck") is not None:
        out["Healthcheck"] = container["Healthcheck"]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    if not out.get("Volumes"):
        out["Volumes"] = container.get("Volumes")
    else:
        out["Volumes"] = {**out["Volumes"], **(container.get("Volumes") or {})}
    if not out.get("StopSignal") and container.get("StopSignal"):
        out["StopSignal"] = container["StopSignal"]
    return out


def commit_config(c: Any, body: dict[str, Any] | None, changes: list[str]) -> dict[str, Any]:
    """The new image's container config: the request's (or the container's) config with the
    ``changes`` applied, completed from the container's config."""
    from ..images.archive import apply_changes

    base = dict(c.config) if body is None else {
        k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    return merge_config(apply_changes(changes, base), c.config)


async def commit(svc: Any, ref: str, *, repo: str | None, tag: str | None, comment: str, author: str,
                 pause: bool, changes: list[str], config: dict[str, Any] | None) -> str:
    """``POST /commit``: the container's changes as a new image; returns its id."""
    from ..images import reference as R
    from ..images.streams import IterReader
    from ..lifecycle import State, require

    c = svc.get(ref)
    svc.require_drivers()
    if c.state in (State.REMOVING, State.DEAD):
        raise Conflict(f"You cannot commit container {c.id} which is "
                       f"{'being removed' if c.state == State.REMOVING else 'Dead'}")
    require(c.state, "commit", c.id)
    image_ref = None
    if repo:
        image_ref = R.parse(repo)
        if image_ref.digest is not None:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        image_ref = image_ref.with_tag(tag) if tag else image_ref.with_default_tag()
    new_config = commit_config(c, config, changes)
    paused = False
    # the pause is the commit's own: a daemon killed during the commit unpauses at its next start
    # (resume_interrupted_commits), the marker written before the pause, removed after the unpause
    marker = svc.dir(c) / COMMIT_PAUSE_MARKER
    if pause and c.state == State.RUNNING and svc.cgroups is not None:
        from ..errors import InvalidState

        marker.touch()
        try:
            await svc.pause(c.id)
            paused = True
        except InvalidState:
            marker.unlink(missing_ok=True)
            if c.state in (State.RUNNING, State.PAUSED):
                raise
            # it exited since the check (docker-py commits a `touch` container at once): moby
            # commits it as it is, there is nothing to pause
        except BaseException:
            marker.unlink(missing_ok=True)
            raise
    try:
        def run() -> Any:
            layer = IterReader(svc.storage.export_changes(c.id))
            try:
                return svc.images.commit(
                    c.image_id, layer, new_config, container_id=c.id, comment=comment, author=author,
                    created_by=" ".join(c.config.get("Cmd") or []), ref=image_ref)
            finally:
                layer.close()

        from .fsworkers import WORKERS

        async with WORKERS.slot(c.id):  # reads the container's files: not in the shared executor
            image = await WORKERS.run(run)
    finally:
        if paused and c.id in svc.containers and c.state == State.PAUSED:
            try:
                await svc.unpause(c.id)
            except Exception:  # noqa: BLE001 - the commit's outcome is what the client asked for
                import logging

                logging.getLogger("dockyard.containers").exception("unpausing %s after commit failed", c.id[:12])
        if paused:
            marker.unlink(missing_ok=True)
    svc.emit("commit", c, comment=comment, imageID=image.id, imageRef=image_ref.familiar if image_ref else "")
    return image.id
