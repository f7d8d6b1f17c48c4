"""Installed entry points, found the way :func:`importlib.metadata.entry_points` finds them,
without importing it (and zipfile, csv, stevedore with it: 1.0 MB of an idle daemon, issue 18).

Discovery is importlib.metadata's for directories on ``sys.path``: in path order, every
``*.dist-info`` and ``*.egg-info`` child (and an ``EGG-INFO`` of a directory ending in
``.egg``), each distribution once by normalized name (the first found wins); each one's
``entry_points.txt`` parsed as importlib.metadata parses it (``[group]`` sections, ``name =
value`` lines, blank and ``#`` lines ignored); values ``module[:attr.attr] [extras]``. A pip
install while the daemon runs is seen by the next call, as with importlib.metadata.

What this reader does not do (distributions in zip files on ``sys.path``, finders on
``sys.meta_path`` offering ``find_distributions``) is left to importlib.metadata itself: when
either is present, :func:`entry_points` asks it instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from typing import Any, Iterator

_PATTERN = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


def _normalize(name: str) -> str:
    """PEP 503 normalization plus dashes as underscores (importlib.metadata's ``Prepared``)."""
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


class Distribution:
    """A distribution's metadata directory: its name and version are read when asked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._headers: dict[str, str] | None = None

    def _read_headers(self) -> dict[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            for fname in ("METADATA", "PKG-INFO"):
                try:
                    with open(os.path.join(self.path, fname), encoding="utf-8") as f:
                        for line in f:
                            if not line.strip():
                                break  # the end of the headers
                            key, sep, value = line.partition(":")
                            if sep and not line[0].isspace():
                                headers.setdefault(key.strip().lower(), value.strip())
                    break
                except OSError:
                    continue
            self._headers = headers
        return self._headers

    @property
    def name(self) -> str | None:
        return self._read_headers().get("name")

    @property
    def version(self) -> str | None:
        return self._read_headers().get("version")


class EntryPoint:
    """``name = value`` of ``group``, from ``dist`` (like :class:`importlib.metadata.EntryPoint`)."""

    __slots__ = ("name", "value", "group", "dist")

    def __init__(self, name: str, value: str, group: str, dist: Any = None) -> None:
        self.name, self.value, self.group, self.dist = name, value, group, dist

    def load(self) -> Any:
        """Import the module and walk the attributes the value names."""
        match = _PATTERN.match(self.value)
        if match is None:
            raise ValueError(f"invalid entry point value {self.value!r}")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, attrs, module)

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def _metadata_dirs(root: str) -> Iterator[tuple[str, str]]:
    """(normalized name, metadata directory) of the distributions in one ``sys.path`` directory,
    in importlib.metadata's order: dist-info/egg-info children, then a ``.egg``'s EGG-INFO."""
    try:
        children = os.listdir(root or ".")
    except OSError:
        return
    base = os.path.basename(root).lower()
    eggs = []
    for child in children:
        low = child.lower()
        if low.endswith((".dist-info", ".egg-info")):
            yield _normalize(low.rpartition(".")[0].partition("-")[0]), os.path.join(root, child)
        elif base.endswith(".egg") and low == "egg-info":
            eggs.append((base.rpartition(".")[0].partition("-")[0].lower().replace("-", "_"),
                         os.path.join(root, child)))
    yield from eggs


def _parse(text: str, dist: Distribution) -> Iterator[EntryPoint]:
    group = None
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
            continue
        if group is None:
            continue
        name, _, value = line.partition("=")
        yield EntryPoint(name.strip(), value.strip(), group, dist)


def _needs_importlib_metadata() -> bool:
    for finder in sys.meta_path:
        if getattr(finder, "find_distributions", None) is not None and \
                getattr(finder, "__name__", "") != "PathFinder":
            return True  # another source of distributions
    return any(entry and os.path.isfile(entry) for entry in sys.path)  # a zip on the path


def _unique_key(path: str, dist: Distribution) -> str:
    """The name importlib.metadata tells distributions apart by (``_unique``: the path's
    ``_normalized_name``): the directory's name before ``-`` when it ends exactly in
    ``.dist-info``/``.egg-info``, else (an egg's ``EGG-INFO``, a ``.DIST-INFO``) the
    metadata's Name, so a dotted egg and the same project's dist-info are one distribution."""
    stem, ext = os.path.splitext(os.path.basename(path))
    name = stem.partition("-")[0] if ext in (".dist-info", ".egg-info") else ""
    return _normalize(name or dist.name or "")


def _all() -> Iterator[EntryPoint]:
    seen: set[str] = set()
    for root in sys.path:
        for _, path in _metadata_dirs(root):
            dist = Distribution(path)
            normalized = _unique_key(path, dist)
            if normalized in seen:
                continue
            seen.add(normalized)
            try:
                with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            yield from _parse(text, dist)


def entry_points(group: str, name: str | None = None) -> list[Any]:
    """The installed entry points of ``group`` (called ``name``), in discovery order."""
    if _needs_importlib_metadata():
        from importlib import metadata

        found = metadata.entry_points(group=group)
        return [ep for ep in found if name is None or ep.name == name]
    return [ep for ep in _all() if ep.group == group and (name is None or ep.name == name)]


def distribution_of(ep: Any) -> tuple[str | None, str | None]:
    """An entry point's distribution name and version (None, None when unknown)."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    if isinstance(dist, Distribution):
        return dist.name, dist.version
    return dist.metadata["Name"], dist.version  # an importlib.metadata Distribution
