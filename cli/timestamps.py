"""The docker CLI's ``--since``/``--until`` values (moby ``api/types/time.GetTimestamp``), turned
into unix seconds on the client, as the docker CLI does before it sends them:

* a Go duration (``10m``, ``1h30m``, ``-5s``; not ``0``): that long before now, whole seconds;
* an RFC 3339-like time (``2006-01-02``, ``...T15``, ``...T15:04``, ``...T15:04:05[.999999999]``)
  with a zone (``Z``, ``+07:00``) is that instant; WITHOUT a zone it is local time, at the local
  zone's offset of *now* (Go's ``time.FixedZone(reference.Zone())``, as docker: a July time read in
  December uses December's offset) -> ``"<seconds>.<9 digits>"``;
* unix seconds (``1700000000``, ``1700000000.5``) pass through unchanged.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation

_DURATION = re.compile(r"[-+]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_ZONE = r"(?P<zone>Z|[+-]\d\d:\d\d)"
_UNIX = re.compile(r"\+?\d+(?:\.\+?\d+)?")


def go_duration_ns(value: str) -> int | None:
    """Go's ``time.ParseDuration`` in nanoseconds, None if ``value`` is not one."""
    if not _DURATION.fullmatch(value):
        return None
    try:
        total = sum(Decimal(n) * _NS[u] for n, u in _DURATION_PART.findall(value))
    except InvalidOperation:
        return None
    ns = int(total)
    return -ns if value.startswith("-") else ns


class TimestampError(ValueError):
    pass


def get_timestamp(value: str, now: float | None = None) -> str:
    """moby's ``GetTimestamp(value, time.Now())``; raises TimestampError as it returns an error."""
    now = time.time() if now is None else now
    if value != "0":
        d = go_duration_ns(value)
        if d is not None:
            return str((int(now * 10**9) - d) // 10**9)
    in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        # Go's RFC3339Nano (or its zone-less variant): seconds and a fraction are required
        pattern = r"(?P<date>\d{4}-\d\d-\d\d)T(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,9}))?"
    elif "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1  # the zone offset's colon
        pattern = {0: r"(?P<date>\d{4}-\d\d-\d\d)T(?P<h>\d\d)",
                   1: r"(?P<date>\d{4}-\d\d-\d\d)T(?P<h>\d\d):(?P<m>\d\d)"}.get(
            colons, r"(?P<date>\d{4}-\d\d-\d\d)T(?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)(?:\.(?P<frac>\d{1,9}))?")
    else:
        pattern = r"(?P<date>\d{4}-\d\d-\d\d)"
    match = re.fullmatch(pattern if in_location else pattern + _ZONE, value)
    parsed = _instant(match, now) if match else None
    if parsed is None:
        if "-" in value:  # was probably an RFC 3339-like time the parser refused
            raise TimestampError(f"invalid time value {value!r}: not an RFC 3339 time, a duration or unix seconds")
        if not _UNIX.fullmatch(value):
            raise TimestampError(f"failed to parse value as time or duration: {value!r}")
        return value  # unix seconds, already what the API takes
    seconds, nanos = parsed
    return f"{seconds}.{nanos:09d}"


def _instant(match: re.Match[str], now: float) -> tuple[int, int] | None:
    g = match.groupdict()
    try:
        wall = datetime.strptime(
            f"{g['date']} {g.get('h') or '00'}:{g.get('m') or '00'}:{g.get('s') or '00'}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    zone = g.get("zone")
    if zone is None:
        offset = time.localtime(now).tm_gmtoff  # the local zone's offset NOW, as Go's FixedZone(reference.Zone())
    elif zone == "Z":
        offset = 0
    else:
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset = (hours * 3600 + minutes * 60) * (-1 if zone[0] == "-" else 1)
    seconds = calendar.timegm(wall.timetuple()) - offset
    nanos = int((g.get("frac") or "0").ljust(9, "0"))
    return seconds, nanos
