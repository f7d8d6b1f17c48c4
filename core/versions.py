"""API versions: Docker's ``/vX.Y`` path prefix and the supported range (no HTTP layer here,
so plugins and the CLI can use it without loading the server)."""

from __future__ import annotations

import re

from . import API_VERSION, MIN_API_VERSION
from .errors import InvalidArgument

VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(?=/)")


def split_version(path: str) -> tuple[str | None, str]:
    """``/v1.44/containers/json`` -> ``("1.44", "/containers/json")``."""
    m = VERSION_PREFIX.match(path)
    if m is None:
        return None, path
    return m.group(1), path[m.end():]


def _vtuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor)


MIN_V, MAX_V = _vtuple(MIN_API_VERSION), _vtuple(API_VERSION)


def check_version(version: str | None) -> str:
    """The version a request speaks; out of range is Docker's 400."""
    if version is None:
        return API_VERSION
    v = _vtuple(version)
    if v < MIN_V:
        raise InvalidArgument(
            f"client version {version} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION}, please upgrade your client to a newer version"
        )
    if v > MAX_V:
        raise InvalidArgument(
            f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
        )
    return version
