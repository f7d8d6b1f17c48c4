"""Docker's ``filters`` query parameter: ``{"key": ["v1", "v2"]}`` (or the legacy
``{"key": {"v1": true}}``). Different keys must all match; values of one key are alternatives.
"""

from __future__ import annotations

import json
from typing import Iterable

from .errors import InvalidArgument

Filters = dict[str, list[str]]


def parse(text: str | None, allowed: Iterable[str]) -> Filters:
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"invalid filter: {text!r} is not JSON") from None
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filter: expected a JSON object")
    allowed = set(allowed)
    out: Filters = {}
    for key, values in raw.items():
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(values, dict):
            values = [v for v, on in values.items() if on]
        elif isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"invalid filter '{key}': expected a list of strings")
        if values:
            out[key] = values
    return out


def match_labels(wanted: list[str], labels: dict[str, str]) -> bool:
    """``label=key`` (present) or ``label=key=value``; all must match."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
