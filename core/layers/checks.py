"""The id and option checks every storage driver uses (no tar code: imported by a driver's start)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError, InvalidArgument

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_id(value: str, what: str = "id") -> str:
    """Layer and container ids are single safe path components."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidArgument(f"invalid {what} {value!r}")
    return value


def check_config(driver: str, options: tuple[str, ...], config: dict | None,
                 root: Path | None) -> dict:
    """A driver's ``config`` (copied) once it names only ``options`` and there is a ``root``."""
    config = dict(config or {})
    unknown = set(config) - set(options)
    if unknown:
        raise ConfigError(f"storage {driver}: unknown option(s): {', '.join(sorted(unknown))}")
    if root is None:
        raise ConfigError(f"storage {driver}: no root directory")
    return config


def bool_option(config: dict, key: str, default: bool, driver: str) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"storage {driver}: {key} must be true or false, not {value!r}")
    return value
