"""COPY and ADD: which files a step copies (from the context or from another stage's
filesystem), a hash of them for the cache, and writing them into a root filesystem.

Sources are looked up below a :class:`~dockyard.containers.inroot.Root`, so a symlink in the
context (or in an image) is followed only inside it, like Docker's ``FollowSymlinkInScope``;
a source path that leaves the context with ``..`` is refused. The files reach the target
as a tar checked by the same code as ``docker cp`` (``check_tar``, ``layers.extract``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from .. import layers as L
from ..containers import archive as A
from ..containers import inroot as R
from ..errors import InvalidArgument
from ..images.streams import decompressed, sniff
from ..safeopen import open_regular
from ..userns import to_host_ids
from .ignore import Matcher


class CopyError(InvalidArgument):
    pass


@dataclass
class Source:
    """One resolved source: its components below the root and its lstat."""

    written: str  # as in the Dockerfile
    parts: list[str]
    st: os.stat_result


def _has_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def resolve_sources(root: R.Root, patterns: list[str], what: str, ignore: Matcher | None) -> list[Source]:
    """The sources a COPY names, globs expanded (Go's ``filepath.Match`` per component)."""
    out: list[Source] = []
    for written in patterns:
        cleaned = posixpath.normpath(written.lstrip("/")) if written.strip("/") else "."
        if cleaned == ".." or cleaned.startswith("../"):
            raise CopyError(f"{what} failed: forbidden path outside the build context: {written} ()")
        candidates = _glob(root, cleaned) if _has_glob(cleaned) else [cleaned]
        found = 0
        for path in candidates:
            if ignore is not None and path != "." and ignore.excluded(path):
                continue
            parts = root.resolve("/" + path, follow_last=True)
            try:
                st = root.lstat(parts)
            except OSError:
                continue
            out.append(Source(written, parts, st))
            found += 1
        if not found:
            if _has_glob(cleaned):
                continue
            raise CopyError(f"{what} failed: file not found in build context or excluded by .dockerignore: "
                            f"stat {written}: file does not exist")
    if not out:
        raise CopyError(f"{what} failed: no source files were specified")
    return out


def _glob(root: R.Root, pattern: str) -> list[str]:
    matches = [""]
    for comp in pattern.split("/"):
        nxt = []
        for base in matches:
            if not _has_glob(comp):
                nxt.append(f"{base}/{comp}" if base else comp)
                continue
            try:
                fd = root.open_dir(root.resolve("/" + base) if base else [])
            except OSError:
                continue
            try:
                names = sorted(os.listdir(fd))
            finally:
                os.close(fd)
            nxt += [f"{base}/{n}" if base else n for n in names if fnmatch.fnmatchcase(n, comp)]
        matches = nxt
    return matches


def entries(root: R.Root, sources: list[Source], dest: str, dest_is_dir: bool, ignore: Matcher | None,
            fds: contextlib.ExitStack) -> Iterator[L.Entry]:
    """Tar entries named relative to the destination directory: a directory source's
    contents, a file under its own name (or, for a file destination, under ``dest``)."""
    for src in sources:
        if stat.S_ISDIR(src.st.st_mode):
            fd = root.open_dir(src.parts)
            fds.callback(os.close, fd)
            rel = "/".join(src.parts)
            for e in A.walk(fd, ""):
                if ignore is not None and ignore.excluded(f"{rel}/{e.name}" if rel else e.name):
                    continue
                yield e
            continue
        fd = root.open_dir(src.parts[:-1])
        fds.callback(os.close, fd)
        name = src.parts[-1] if dest_is_dir else posixpath.basename(dest.rstrip("/"))
        yield L.Entry(name, R.fd_path(fd, src.parts[-1]), src.st)  # type: ignore[arg-type]


def _hashed(items: Iterator[L.Entry], h: Any) -> Iterator[L.Entry]:
    """``items``, feeding ``h`` with each one's name, mode, size, link target and contents
    (not the times: an unchanged file keeps its cache). Each entry's fds are open only until
    the next one is asked for, so it is read here, before it is passed on."""
    for e in items:
        st = e.st or os.lstat(e.path)  # type: ignore[arg-type]
        h.update(f"{e.name}\0{st.st_mode:o}\0{st.st_size}\0".encode("utf-8", "surrogateescape"))
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(e.path).encode("utf-8", "surrogateescape"))  # type: ignore[arg-type, type-var, union-attr]
        elif stat.S_ISREG(st.st_mode):
            fd, _ = open_regular(e.path)  # type: ignore[arg-type]
            if fd is not None:  # else no longer a regular file: never opened (a FIFO would block)
                with open(fd, "rb") as src:
                    while block := src.read(1 << 20):
                        h.update(block)
        yield e


def digest(items: Iterator[L.Entry]) -> str:
    """The cache hash of what a COPY copies."""
    h = hashlib.sha256()
    for _ in _hashed(items, h):
        pass
    return h.hexdigest()


def spool_tar(items: Iterator[L.Entry], spool_dir: Path) -> BinaryIO:
    """The entries as a tar in a temporary file."""
    f = tempfile.TemporaryFile(dir=spool_dir)
    for chunk in L.tar_stream(items):
        f.write(chunk)
    f.seek(0)
    return f  # type: ignore[return-value]


def is_archive(path: str) -> bool:
    """ADD's rule: a local file that is a (maybe compressed) tar is unpacked."""
    import tarfile

    with open(path, "rb") as f:
        head = f.read(512)
        if sniff(head) != "none":
            return True
        f.seek(0)
        try:
            with tarfile.open(fileobj=f, mode="r|"):
                return True
        except (tarfile.TarError, EOFError, OSError):
            return False


def mkdir_p(root: R.Root, path: str, uid: int, gid: int) -> list[str]:
    """Create ``path`` (symlinks followed inside the root) and return its components."""
    parts = root.resolve(path, follow_last=True)
    uid, gid = to_host_ids(uid, gid)  # container ids; --userns-remap: shifted to the host's
    fd = os.open(".", R.DIR_FLAGS, dir_fd=root.fd)
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, uid, gid, dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                pass
            try:
                nfd = os.open(part, R.DIR_FLAGS, dir_fd=fd)
            except OSError:
                raise CopyError(f"cannot copy to {path}: {part} is not a directory") from None
            os.close(fd)
            fd = nfd
    finally:
        os.close(fd)
    return parts


def extract(root: R.Root, dest_parts: list[str], tar: BinaryIO, uid: int | None, gid: int | None) -> None:
    """Unpack ``tar`` (maybe compressed) into the directory ``dest_parts``; with ``uid``,
    everything it wrote is owned by ``uid:gid``."""
    dest_fd = root.open_dir(dest_parts)
    try:
        with tempfile.TemporaryFile() as plain:
            src = decompressed(tar)
            try:
                while chunk := src.read(1 << 20):
                    plain.write(chunk)
            except (EOFError, OSError, ValueError) as exc:
                raise CopyError(f"invalid archive: {exc or type(exc).__name__}") from None
            if plain.tell() == 0:
                return
            plain.seek(0)
            members = A.check_tar(plain, dest_fd, False)
            plain.seek(0)
            L.extract(plain, R.fd_path(dest_fd), A._RefuseWhiteouts())  # type: ignore[arg-type]
            if uid is not None:
                A._chown(dest_fd, members, uid, gid if gid is not None else uid)
    finally:
        os.close(dest_fd)
