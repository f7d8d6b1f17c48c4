"""Docker's ``filters`` query parameter: ``{"key": ["v1", "v2"]}`` (or the legacy
``{"key": {"v1": true}}``). Different keys must all match; values of one key are alternatives.

The one place every resource (containers, images, networks, volumes, events) parses filters and
reads the shared keys: ``label``/``label!`` (:func:`labels_match`), boolean keys such as
``dangling`` and ``all`` (:func:`bool_value`) and ``until`` (:func:`until_ns`).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Iterable

from .errors import InvalidArgument
from .timestamps import parse_timestamp

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


def labels_match(f: Filters, labels: dict[str, str]) -> bool:
    """moby's ``matchLabels`` (prune, list): every ``label`` matches and not every ``label!`` does."""
    if "label" in f and not match_labels(f["label"], labels):
        return False
    return not ("label!" in f and match_labels(f["label!"], labels))


def bool_value(f: Filters, key: str) -> bool | None:
    """A boolean filter (``dangling``, ``all``): ``true``/``1`` or ``false``/``0``; None when absent."""
    out = None
    for v in f.get(key) or ():
        low = v.lower()
        if low in ("true", "1"):
            b = True
        elif low in ("false", "0"):
            b = False
        else:
            raise InvalidArgument(f"invalid filter '{key}={v}'")
        if out is not None and out != b:
            raise InvalidArgument(f"invalid filter '{key}': conflicting values")
        out = b
    return out


def until_ns(f: Filters) -> int | None:
    """The ``until`` filter (unix seconds, RFC 3339 or a Go duration) in ns; None when absent."""
    return parse_timestamp(f["until"][0], "until") if f.get("until") else None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def name_match(value: str, name: str) -> bool:
    """moby's ``filters.Args.Match``: ``value`` equals ``name`` or is a regular expression found
    in it (containers are matched by ``"/" + name``, so ``^/web$`` is an exact name). A value
    that is no valid expression matches nothing else (dockerd answers 200, not 400)."""
    if value == name:
        return True
    rx = _regex(value)
    return rx is not None and rx.search(name) is not None
