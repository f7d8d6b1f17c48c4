"""core/filters.py: the filter keys every resource shares, as moby reads them."""

import pytest

from dockyard import filters as F
from dockyard.errors import InvalidArgument


def test_labels_match_is_mobys_match_labels():
    labels = {"team": "a", "tier": "web"}
    assert F.labels_match({}, labels)
    assert F.labels_match({"label": ["team", "tier=web"]}, labels)
    assert not F.labels_match({"label": ["team=b"]}, labels)
    assert not F.labels_match({"label!": ["team=a"]}, labels)
    assert F.labels_match({"label!": ["team=a", "missing"]}, labels)  # excluded only if every one matches
    assert F.labels_match({"label!": ["team"]}, {})


def test_bool_value_and_until():
    assert F.bool_value({}, "dangling") is None
    assert F.bool_value({"dangling": ["TRUE", "1"]}, "dangling") is True
    assert F.bool_value({"all": ["0"]}, "all") is False
    for bad in (["yes"], ["true", "false"]):
        with pytest.raises(InvalidArgument):
            F.bool_value({"dangling": bad}, "dangling")
    assert F.until_ns({}) is None
    assert F.until_ns({"until": ["1700000000.5"]}) == 1_700_000_000_500_000_000
