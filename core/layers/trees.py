"""Directory trees: remove (also below a directory fd), copy, measure."""

from __future__ import annotations

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


def remove_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` in ``dir_fd`` whatever it is (a directory recursively); missing is fine."""
    st = lstat_at(dir_fd, name)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


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
    """Bytes of regular files under ``root``, each inode counted once."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total

