"""Times as Docker writes and reads them: the one place core formats RFC 3339.

Formatting (``ns`` is nanoseconds since the epoch):

* :func:`rfc3339_nano_fixed` -- moby's ``RFC3339NanoFixed``: UTC, always nine fraction digits
  (container, network, image and health times, ``docker logs -t`` prefixes);
* :func:`rfc3339` -- the same, but Go's zero ``time.Time`` for 0 (``StartedAt`` of a container
  that never ran);
* :func:`rfc3339_nano` -- Go's ``RFC3339Nano``: trailing zeros of the fraction dropped (archive
  stat headers, ``SystemTime`` in local time);
* :func:`rfc3339_seconds` / :func:`rfc3339_millis` -- no fraction (volume ``CreatedAt``) / three
  digits (log and audit lines).

Parsing: :func:`parse_rfc3339` (seconds, any zone), :func:`parse_rfc3339_ns` (fast path for
Go's UTC ``RFC3339Nano``, json-file log lines) and Docker's time arguments, ``since``/``until``
of events and logs and the ``until`` filter of prune and image list (moby's
``api/types/time.GetTimestamp``): unix seconds with an optional fraction (``1700000000.5``), an
RFC 3339 time (with or without fraction and zone; a date alone is midnight UTC), or a Go
duration (``10m``, ``1h30m``, ``1.5h``, ``300ms``) meaning that long before now.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time

from .errors import InvalidArgument

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d)?)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")  # "ms" is tried before "m"
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, as Docker marshals it


def _zone(tm: time.struct_time, local: bool) -> str:
    off = tm.tm_gmtoff if local else 0
    if not off:
        return "Z"
    sign, off = ("+", off) if off > 0 else ("-", -off)
    return f"{sign}{off // 3600:02d}:{off % 3600 // 60:02d}"


def rfc3339_nano_fixed(ns: int, local: bool = False) -> str:
    """moby's RFC3339NanoFixed: ``2006-01-02T15:04:05.000000000Z`` in UTC, or in the local zone
    (``...+01:00``, as the docker CLI prints event times)."""
    if not local:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"
    tm = time.localtime(ns // 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{ns % 1_000_000_000:09d}" + _zone(tm, True)


def rfc3339(ns: int) -> str:
    """:func:`rfc3339_nano_fixed`, or :data:`ZERO_TIME` for 0 (a time that never happened)."""
    return rfc3339_nano_fixed(ns) if ns else ZERO_TIME


def rfc3339_nano(ns: int, local: bool = False) -> str:
    """Go's RFC3339Nano: trailing zeros of the fraction dropped; UTC (``Z``) or the local zone."""
    secs, frac = divmod(ns, 1_000_000_000)
    tm = time.localtime(secs) if local else time.gmtime(secs)
    digits = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + (f".{digits}" if digits else "") + _zone(tm, local)


def rfc3339_seconds(ns: int) -> str:
    """Go's RFC3339 in UTC, whole seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def rfc3339_millis(seconds: float) -> str:
    """UTC with three fraction digits, for log and audit lines (``time.time()`` seconds)."""
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def now_rfc3339() -> str:
    """Now, as :func:`rfc3339_nano_fixed`."""
    return rfc3339_nano_fixed(time.time_ns())


_epoch_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> seconds: log lines share their second


def parse_rfc3339_ns(text: str) -> int:
    """ns since the epoch of Go's RFC3339Nano UTC form (``2026-12-06T08:00:00.1234Z``), fast."""
    head = text[:19]
    secs = _epoch_cache.get(head)
    if secs is None:
        secs = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        if len(_epoch_cache) > 4096:
            _epoch_cache.clear()
        _epoch_cache[head] = secs
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        digits = rest[1:].rstrip("Z")
        frac = int((digits + "000000000")[:9]) if digits.isdigit() else 0
    return secs * 1_000_000_000 + frac


def rfc3339_ns(text: object) -> int | None:
    """Exact nanoseconds since the epoch of an RFC 3339 time (any zone, up to nine fraction
    digits); None when absent or not one."""
    m = _RFC3339.match(text.strip()) if isinstance(text, str) and text else None
    if not m:
        return None
    clock = m.group(2) or "00:00:00"
    try:
        base = dt.datetime.strptime(f"{m.group(1)}T{clock if clock.count(':') == 2 else clock + ':00'}",
                                    "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    except ValueError:  # month 13, hour 25, ...
        return None
    tz = (m.group(4) or "Z").replace(":", "")
    offset = 0 if tz == "Z" else (int(tz[1:3]) * 3600 + int(tz[3:5]) * 60) * (1 if tz[0] == "+" else -1)
    frac = int(((m.group(3) or ".")[1:] + "000000000")[:9])
    return (calendar.timegm(base.timetuple()) - offset) * 1_000_000_000 + frac


def parse_rfc3339(text: str | None) -> float:
    """Seconds since the epoch for Docker's RFC 3339 (nano) timestamps; 0 when absent or not one."""
    ns = rfc3339_ns(text)
    return 0.0 if ns is None else ns // 1_000_000_000 + (ns % 1_000_000_000) / 1e9


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
    ns = rfc3339_ns(value)
    if ns is not None:
        return ns
    raise InvalidArgument(f"invalid value for {name}: {value!r}: expected unix seconds, an RFC 3339 time "
                          "or a duration such as 10m")
