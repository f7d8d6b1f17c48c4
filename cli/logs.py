"""``logs``, and docker's ``--since``/``--until`` time values."""

from __future__ import annotations

import re
import sys
import time
from datetime import datetime

import click

from .client import Client, q
from .docker_command import command
from .streams import MULTIPLEXED, copy_output


_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def to_unix(value: str | None, now: float | None = None) -> str | None:
    """docker's ``--since``/``--until``: unix seconds, a Go duration (``1h30m`` ago), or an
    RFC 3339 / ``YYYY-MM-DD[THH:MM:SS]`` time -> unix seconds for the API."""
    if not value:
        return None
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if _DURATION.match(value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
        return f"{now - seconds:.9f}"
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(_trim_fraction(text), fmt)
        except ValueError:
            continue
        return f"{dt.timestamp():.9f}"
    raise click.BadParameter(f"invalid time value: {value!r}")


def _trim_fraction(text: str) -> str:
    """Python's %f takes at most 6 digits; RFC 3339 may have 9."""
    return re.sub(r"\.(\d{6})\d+", r".\1", text)


@command("logs")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", help="Show logs since timestamp (2013-01-02T13:23:37Z) or relative (42m)")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--until", help="Show logs before a timestamp or relative (42m)")
@click.argument("container")
@click.pass_obj
def logs(client: Client, details: bool, follow: bool, since: str | None, tail: str, timestamps: bool,
         until: str | None, container: str) -> None:
    """Fetch the logs of a container."""
    params = {"stdout": 1, "stderr": 1, "follow": follow or None, "tail": tail,
              "since": to_unix(since), "until": to_unix(until), "timestamps": timestamps or None,
              "details": details or None}
    response = client.request("GET", f"/containers/{q(container)}/logs", params=params, stream=True)
    multiplexed = (response.headers.get("Content-Type") or MULTIPLEXED).startswith(MULTIPLEXED)
    try:
        copy_output(response.iter_chunks(), multiplexed)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        response.close()
