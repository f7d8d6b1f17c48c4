"""``dockyard inspect``: any object by name or id, as ``docker inspect`` finds it.

Without ``--type``, each name is looked up as a container, an image, a network, then a
volume (the docker CLI's order); the first match wins. A name found nowhere is
``Error: No such object: NAME`` (exit 1), the others are still printed.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .client import APIError, Client, q

# docker's lookup order; each kind's inspect endpoint
KINDS = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
}


def find(client: Client, name: str, kinds: list[str], size: bool) -> dict[str, Any] | None:
    """The first of ``kinds`` named ``name``; None when none is. Errors other than 404 raise."""
    for kind in kinds:
        params = {"size": size or None} if kind == "container" else None
        try:
            return client.get(KINDS[kind].format(q(name)), params=params)
        except APIError as exc:
            if exc.status != 404:
                raise
    return None


@click.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a template like '{{.State.Status}}'")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.option("--type", "type_", type=click.Choice(list(KINDS)), help="Only this type of object")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(client: Client, fmt: str | None, size: bool, type_: str | None, names: tuple[str, ...]) -> None:
    """Return low-level information on containers, images, networks or volumes."""
    from .inspection import emit_inspect

    kinds = [type_] if type_ else list(KINDS)
    results, failed = [], False
    for name in names:
        try:
            found = find(client, name, kinds, size)
        except APIError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = True
            continue
        if found is None:
            click.echo(f"Error: No such {type_ or 'object'}: {name}", err=True)
            failed = True
        else:
            results.append(found)
    emit_inspect(results, fmt)
    if failed:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(inspect)
