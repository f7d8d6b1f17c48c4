"""Looking into one container: ``container inspect``, ``top`` and ``diff``."""

from __future__ import annotations

import sys
from typing import Any

import click

from .client import APIError, Client, q
from .docker_command import command
from .output import table
from .templates import render


def emit_inspect(results: list[Any], fmt: str | None) -> None:
    """docker inspect's output: a JSON array, or the template once per result."""
    from .templates import print_inspect

    print_inspect(fmt, results)


@command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a template like '{{.State.Status}}'")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def container_inspect(client: Client, fmt: str | None, size: bool, containers: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers."""
    results, failed = [], False
    for name in containers:
        try:
            results.append(client.get(f"/containers/{q(name)}/json", params={"size": size or None}))
        except APIError as exc:
            click.echo(f"Error: {exc.message}" if exc.status == 404 else str(exc), err=True)
            failed = True
    emit_inspect(results, fmt)
    if failed:
        sys.exit(1)


@command("top", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(client: Client, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container (CONTAINER [ps OPTIONS])."""
    result = client.get(f"/containers/{q(container)}/top", params={"ps_args": " ".join(ps_args) or None})
    table(result.get("Titles") or [], result.get("Processes") or [])


@command("diff")
@click.argument("container")
@click.pass_obj
def diff(client: Client, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in client.get(f"/containers/{q(container)}/changes") or []:
        click.echo(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}")
