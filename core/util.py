"""Small helpers shared by the daemon and the CLI."""

from __future__ import annotations


def human_duration(seconds: float) -> str:
    """Docker's ``About a minute``, ``2 hours`` style (go-units HumanDuration)."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    d = h // 24
    if d < 14:
        return f"{d} days"
    if d < 60:
        return f"{d // 7} weeks"
    if d < 365 * 2:
        return f"{d // 30} months"
    return f"{d // 365} years"
