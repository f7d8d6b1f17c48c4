"""Parsing of options shared by several commands."""

from __future__ import annotations

from typing import Iterable

import click


def key_values(items: Iterable[str], flag: str) -> dict[str, str]:
    """Repeated ``key=value`` options (``--label``, ``--opt``): a bare key maps to ""."""
    out: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid value {item!r}", param_hint=flag)
        out[key] = value
    return out


def filter_dict(items: Iterable[str]) -> dict[str, list[str]]:
    """Repeated ``--filter key=value`` options as Docker's filters object."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"bad format of filter (expected name=value): {item}", param_hint="--filter")
        out.setdefault(key, []).append(value)
    return out
