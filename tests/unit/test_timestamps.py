"""Docker's time arguments (``since``/``until``, prune ``until`` filters)."""

import pytest

from dockyard.errors import InvalidArgument
from dockyard.timestamps import duration_ns, parse_rfc3339, parse_timestamp

NOW = 1_700_000_000 * 10**9


@pytest.mark.parametrize("text,ns", [
    ("10m", 600 * 10**9), ("1h30m", 5400 * 10**9), ("1.5h", 5400 * 10**9), ("300ms", 300 * 10**6),
    ("2us", 2000), ("2µs", 2000), ("7ns", 7), ("-5s", -5 * 10**9), ("1m0.5s", 60_500_000_000),
])
def test_go_durations(text, ns):
    assert duration_ns(text) == ns


@pytest.mark.parametrize("text", ["", "10", "5x", "m", "1h 30m", "--1s", "1.2.3s"])
def test_not_durations(text):
    assert duration_ns(text) is None


@pytest.mark.parametrize("value,ns", [
    ("1700000000", 1_700_000_000 * 10**9),
    ("1700000000.5", 1_700_000_000 * 10**9 + 500_000_000),
    ("1700000000.000000001", 1_700_000_000 * 10**9 + 1),
    ("10m", NOW - 600 * 10**9),
    ("1970-01-01T00:00:10Z", 10 * 10**9),
    ("1970-01-01T01:00:10+01:00", 10 * 10**9),
    ("1970-01-01T00:00:10.25Z", 10_250_000_000),
    ("1970-01-02", 86400 * 10**9),
])
def test_timestamps(value, ns):
    assert parse_timestamp(value, "until", now_ns=NOW) == ns


def test_empty_is_none_and_garbage_is_a_400():
    assert parse_timestamp("", "since") is None and parse_timestamp(None, "since") is None
    with pytest.raises(InvalidArgument, match="invalid value for until: 'soon'"):
        parse_timestamp("soon", "until")


def test_rfc3339_seconds():
    assert parse_rfc3339("1970-01-01T00:00:10.5Z") == 10.5
    assert parse_rfc3339("not a time") == 0.0 and parse_rfc3339(None) == 0.0


def test_one_rfc3339_formatter_for_every_docker_form():
    from dockyard import timestamps as T

    ns = 1_700_000_000_500_000_000
    assert T.rfc3339_nano_fixed(ns) == "2023-11-14T22:13:20.500000000Z"
    assert T.rfc3339(ns) == "2023-11-14T22:13:20.500000000Z" and T.rfc3339(0) == T.ZERO_TIME
    assert T.rfc3339_nano(ns) == "2023-11-14T22:13:20.5Z"
    assert T.rfc3339_nano(1_700_000_000 * 10**9) == "2023-11-14T22:13:20Z"
    assert T.rfc3339_seconds(ns) == "2023-11-14T22:13:20Z"
    assert T.rfc3339_millis(1_700_000_000.0459) == "2023-11-14T22:13:20.045Z"
    assert T.parse_rfc3339_ns(T.rfc3339_nano_fixed(ns)) == ns == T.parse_rfc3339_ns(T.rfc3339_nano(ns))


def test_local_rfc3339_nano_has_a_go_zone(monkeypatch):
    """``SystemTime`` of /info: Go's RFC3339Nano in local time, ``+01:00`` not ``+0100``."""
    import time

    from dockyard.timestamps import parse_rfc3339, rfc3339_nano

    ns = 1_700_000_000_250_000_000
    for tz, zone in (("UTC", "Z"), ("CET-1", "+01:00"), ("<-0330>3:30", "-03:30")):
        monkeypatch.setenv("TZ", tz)
        time.tzset()
        try:
            text = rfc3339_nano(ns, local=True)
        finally:
            monkeypatch.undo()
            time.tzset()
        assert text.endswith(".25" + zone), (tz, text)
        assert parse_rfc3339(text) == 1_700_000_000.25


def test_rfc3339_nano_fixed_in_the_local_zone(monkeypatch):
    """`docker events` prints local times with nine digits and the zone (RFC3339NanoFixed)."""
    import time

    from dockyard.timestamps import rfc3339_nano_fixed

    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    try:
        text = rfc3339_nano_fixed(1_700_000_000_050_000_000, local=True)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert text == "2023-11-14T23:13:20.050000000+01:00"


@pytest.mark.parametrize("text,ns", [
    ("2026-12-06T09:00:00.123456789Z", 1796547600123456789),
    ("2026-12-06T10:00:00.5+01:00", 1796547600500000000),
    ("2026-12-06T08:30:00-00:30", 1796547600000000000),
    ("1970-01-01T00:00:00Z", 0), ("1970-01-01", 0),
    ("garbage", None), ("", None), (None, None), ("2026-13-01T00:00:00Z", None),
])
def test_rfc3339_ns_is_exact(text, ns):
    from dockyard.timestamps import parse_rfc3339, rfc3339_ns

    assert rfc3339_ns(text) == ns
    if ns is not None:
        assert abs(parse_rfc3339(text) - ns / 1e9) < 1e-6


def test_an_impossible_date_is_a_400():
    with pytest.raises(InvalidArgument):
        parse_timestamp("2026-13-01T00:00:00Z", "until")
