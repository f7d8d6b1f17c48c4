"""Docker's time arguments: ``since``/``until`` of events and logs, the ``until`` filter of
prune and image list (moby's ``api/types/time.GetTimestamp``).

A value is unix seconds with an optional fraction (``1700000000.5``), an RFC 3339 time (with or
without fraction and zone; a date alone is midnight UTC), or a Go duration (``10m``,
``1h30m``, ``1.5h``, ``300ms``) meaning that long before now.
"""

from __future__ import annotations

import datetime as dt
import re
import time

from .errors import InvalidArgument

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")  # "ms" is tried before "m"
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def parse_rfc3339(text: str | None) -> float:
    """Seconds since the epoch for Docker's RFC 3339 (nano) timestamps; 0 when absent or not one."""
    m = _RFC3339.match(text.strip()) if text else None
    if not m:
        return 0.0
    clock = m.group(2) or "00:00:00"
    base = dt.datetime.strptime(f"{m.group(1)}T{clock if clock.count(':') == 2 else clock + ':00'}",
                                "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    tz = (m.group(4) or "Z").replace(":", "")
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60) * (1 if tz[0] == "+" else -1)
    return base.timestamp() - offset + (float("0" + m.group(3)) if m.group(3) else 0.0)


def duration_ns(text: str) -> int | None:
    """A Go duration (``1h30m``, ``-5s``, ``1.5h``) in nanoseconds; None if it is not one."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if not rest:
        return None
    total, pos = 0, 0
    while pos < len(rest):
        m = _DURATION.match(rest, pos)
        if not m:
            return None
        total += round(float(m.group(1)) * _UNIT_NS[m.group(2)])
        pos = m.end()
    return sign * total


def parse_timestamp(value: str | None, name: str, now_ns: int | None = None) -> int | None:
    """A ``since``/``until`` value in nanoseconds since the epoch; None when empty."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"-?\d+(\.\d*)?", value):
        seconds, _, frac = value.partition(".")
        sign = -1 if seconds.startswith("-") else 1
        return int(seconds) * 1_000_000_000 + sign * int((frac + "000000000")[:9])
    d = duration_ns(value)
    if d is not None:
        return (time.time_ns() if now_ns is None else now_ns) - d
    if _RFC3339.match(value):
        return round(parse_rfc3339(value) * 1e9)
    raise InvalidArgument(f"invalid value for {name}: {value!r}: expected unix seconds, an RFC 3339 time "
                          "or a duration such as 10m")
