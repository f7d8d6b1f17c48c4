"""Directory trees: remove (also below a directory fd), copy, measure."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
from pathlib import Path

from ..errors import DockyardError


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    """``os.lstat`` of ``name`` in ``dir_fd``; None if it does not exist."""
    try:
        return os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return None


# a directory opened to be emptied: never a symlink followed, never a FIFO waited on (shutil's
# rmtree opens with plain O_RDONLY, which blocks if a running container swaps in a FIFO)
_RM_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is (a directory recursively); missing is fine.

    Only fds are used: the tree may be a running container's, changing meanwhile (``docker
    cp`` into it); whatever a name is when it is reached is what is removed."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return
    for _ in range(8):  # the name changes type under us: try again as what it is now
        try:
            if stat.S_ISDIR(st.st_mode):
                _remove_dir_at(dir_fd, name)
            else:
                os.unlink(name, dir_fd=dir_fd)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EPERM, errno.EISDIR, errno.ENOTDIR):
                raise
            if (st := lstat_at(dir_fd, name)) is None:
                return
    raise OSError(errno.EBUSY, f"{name} keeps changing while it is removed")


def _remove_dir_at(dir_fd: int, name: str) -> None:
    fd = os.open(name, _RM_DIR_FLAGS, dir_fd=dir_fd)
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for child, is_dir in entries:
            if is_dir:
                remove_at(fd, child)
            else:
                try:
                    os.unlink(child, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except IsADirectoryError:
                    remove_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)


def open_dir_at(dir_fd: int | None, name: str | Path) -> int | None:
    """An fd of the directory ``name`` (in ``dir_fd``), or None if it is gone or is not a
    directory now: a symlink is never followed, a FIFO never waited on. For walking trees a
    running container may change (its layer: ``docker diff``, sizes, commit)."""
    try:
        return os.open(name, _RM_DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise


def lstat_below(root_fd: int, parts: list[str] | tuple[str, ...]) -> os.stat_result | None:
    """``lstat`` of ``parts`` below ``root_fd``, every directory on the way opened with
    ``O_NOFOLLOW``; None if missing (or a component is not a directory)."""
    fd: int | None = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nfd = open_dir_at(fd, part)
            os.close(fd)  # type: ignore[arg-type]
            fd = nfd
            if fd is None:
                return None
        return lstat_at(fd, parts[-1]) if parts else os.fstat(fd)  # type: ignore[arg-type]
    except (NotADirectoryError, FileNotFoundError):
        return None
    finally:
        if fd is not None:
            os.close(fd)


def remove_tree(path: Path) -> None:
    """``rm -rf``; missing is fine."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        path.unlink()


def copy_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` (a directory) to the new path ``dst`` preserving everything (``cp -a``)."""
    proc = subprocess.run(["cp", "-a", "--reflink=auto", "--", str(src), str(dst)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise DockyardError(f"copy {src} -> {dst}: {proc.stderr.strip()}")


def dir_size(root: Path) -> int:
    """Bytes of regular files under ``root``, each inode counted once (through directory
    fds: a directory swapped for a symlink meanwhile is not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0

    def walk(fd: int) -> None:
        nonlocal total
        with os.scandir(fd) as it:
            entries = list(it)
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
            elif stat.S_ISDIR(st.st_mode) and (sub := open_dir_at(fd, e.name)) is not None:
                try:
                    walk(sub)
                finally:
                    os.close(sub)

    top = open_dir_at(None, root)
    if top is None:
        return 0
    try:
        walk(top)
    finally:
        os.close(top)
    return total

