"""``logs``, and docker's ``--since``/``--until`` time values."""

from __future__ import annotations

import sys

import click

from .client import Client, q
from .docker_command import command
from .streams import MULTIPLEXED, copy_output
from .timestamps import TimestampError, get_timestamp


def to_unix(value: str | None, now: float | None = None) -> str | None:
    """docker's ``--since``/``--until``: unix seconds, a Go duration (``1h30m`` ago), or an
    RFC 3339-like time (zone-less = local time) -> unix seconds for the API, as the docker CLI
    converts them (dockyard_cli.timestamps)."""
    if not value:
        return None
    try:
        return get_timestamp(value, now)
    except TimestampError as exc:
        raise click.BadParameter(str(exc)) from None


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
