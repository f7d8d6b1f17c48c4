"""Filesystem changes by Docker's rules: :func:`tree_changes` compares two directory trees
as Docker's naive diff does; :func:`changes_size` is what they add."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .trees import lstat_below, open_dir_at


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's naive diff: mode/owner/rdev always; size and mtime except for directories."""
    if (a.st_mode, a.st_uid, a.st_gid, a.st_rdev) != (b.st_mode, b.st_uid, b.st_gid, b.st_rdev):
        return False
    if stat.S_ISDIR(a.st_mode):
        return True
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns


def _listing(path: Path | None) -> dict[str, os.stat_result]:
    try:
        with os.scandir(path) as it:  # type: ignore[arg-type]
            return {d.name: d.stat(follow_symlinks=False) for d in it}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def _listing_at(fd: int) -> dict[str, os.stat_result]:
    out = {}
    with os.scandir(fd) as it:
        for d in it:
            try:
                out[d.name] = d.stat(follow_symlinks=False)
            except FileNotFoundError:
                pass  # removed meanwhile
    return out


def tree_changes(old: Path | None, new: Path) -> list[dict]:
    """Docker's ``ChangesDirs(new, old)``: what ``new`` changed compared to ``old``.

    Kind 0 modified, 1 added, 2 deleted. A directory containing changes is reported as
    modified (before its children) unless it is itself added.
    """
    changes: list[dict] = []

    def walk(rel: str, o: Path | None, n: int) -> None:
        olds = _listing(o) if o is not None else {}
        news = _listing_at(n)
        for name in sorted(news):
            path, nst = f"{rel}/{name}", news[name]
            ost = olds.pop(name, None)
            start = len(changes)
            if ost is None:
                changes.append({"Path": path, "Kind": 1})
                added = True
            else:
                try:
                    added = not _same(ost, nst) or (
                        stat.S_ISLNK(nst.st_mode) and os.readlink(o / name) != os.readlink(name, dir_fd=n))
                except OSError:  # changed meanwhile
                    added = True
                if added:
                    changes.append({"Path": path, "Kind": 0})
            if stat.S_ISDIR(nst.st_mode) and (sub := open_dir_at(n, name)) is not None:
                both_dirs = ost is not None and stat.S_ISDIR(ost.st_mode)
                try:
                    walk(path, o / name if both_dirs else None, sub)  # type: ignore[operator]
                finally:
                    os.close(sub)
                if len(changes) > start and not added:
                    changes.insert(start, {"Path": path, "Kind": 0})
        for name in sorted(olds):
            changes.append({"Path": f"{rel}/{name}", "Kind": 2})

    top = open_dir_at(None, new)
    if top is None:
        return changes
    try:
        walk("", old, top)
    finally:
        os.close(top)
    return changes


def changes_size(root: Path, changes: list[dict]) -> int:
    """Bytes of the regular files added or modified (Docker's ``ChangesSize``)."""
    total, seen = 0, set()
    root_fd = open_dir_at(None, root)
    if root_fd is None:
        return 0
    try:
        for c in changes:
            if c["Kind"] == 2:
                continue
            st = lstat_below(root_fd, [p for p in c["Path"].split("/") if p])
            if st is None:
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    finally:
        os.close(root_fd)
    return total

