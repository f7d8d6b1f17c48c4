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
