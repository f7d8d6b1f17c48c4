"""``run``/``create`` healthcheck flags: ``--health-cmd``, ``--health-interval``,
``--health-timeout``, ``--health-retries``, ``--health-start-period``, ``--no-healthcheck``
(``Config.Healthcheck``, durations in nanoseconds as Docker sends them)."""

from __future__ import annotations

import re
from typing import Any

import click

_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def duration(text: str, flag: str) -> int:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``) in nanoseconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if text == "0":
        return 0
    if not parts or "".join(n + u for n, u in parts) != text:
        raise click.BadParameter(f"invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)", param_hint=flag)
    return int(sum(float(n) * _UNITS[u] for n, u in parts))


OPTIONS = [
    click.option("--health-cmd", help="Command to run to check health"),
    click.option("--health-interval", help="Time between running the check (ms|s|m|h)"),
    click.option("--health-timeout", help="Maximum time to allow one check to run (ms|s|m|h)"),
    click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy"),
    click.option("--health-start-period", help="Start period for the container to initialize (ms|s|m|h)"),
    click.option("--health-start-interval", help="Time between running the check during the start period (ms|s|m|h)"),
    click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK"),
]


def apply(body: dict[str, Any], o: dict[str, Any]) -> None:
    given = any(o.get(k) is not None for k in ("health_cmd", "health_interval", "health_timeout",
                                                "health_retries", "health_start_period", "health_start_interval"))
    if o.get("no_healthcheck"):
        if given:
            raise click.UsageError("--no-healthcheck conflicts with --health-* options")
        body["Healthcheck"] = {"Test": ["NONE"]}
        return
    if not given:
        return
    hc: dict[str, Any] = {"Test": ["CMD-SHELL", o["health_cmd"]] if o.get("health_cmd") else []}
    for flag, key in (("health_interval", "Interval"), ("health_timeout", "Timeout"),
                      ("health_start_period", "StartPeriod"), ("health_start_interval", "StartInterval")):
        if o.get(flag):
            hc[key] = duration(o[flag], "--" + flag.replace("_", "-"))
    if o.get("health_retries") is not None:
        hc["Retries"] = o["health_retries"]
    body["Healthcheck"] = hc
