"""``run`` and ``create``: exit 125 for a usage or daemon error, 126/127 when the container's
command cannot start, else the container's own exit code."""

from __future__ import annotations

import sys
from typing import Any, Sequence

import click

from . import interactive
from .client import APIError, Client, ClientError, q
from .create_flags import CREATE_SETTINGS, container_options, create_body
from .docker_command import command
from .sessions import start_attached, start_exit_code


def _create(client: Client, image: str, command: Sequence[str], opts: dict[str, Any], attach: bool) -> str:
    body = create_body(image, command, opts, attach=attach)
    try:
        result = client.post("/containers/create", params={"name": opts.get("name")}, body=body)
    except ClientError as exc:
        exc.exit_code = 125  # type: ignore[misc]
        raise
    for w in result.get("Warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    return result["Id"]


@command("create", context_settings=CREATE_SETTINGS)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(client: Client, image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container (IMAGE [COMMAND] [ARG...]) and print its id."""
    click.echo(_create(client, image, command, opts, attach=False))


@command("run", context_settings=CREATE_SETTINGS)
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Proxy received signals to the process (--sig-proxy=false to turn off)")
@click.option("--detach-keys", help="Override the key sequence for detaching a container")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(client: Client, image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool,
        detach_keys: str | None, **opts: Any) -> None:
    """Create and run a new container from an image (IMAGE [COMMAND] [ARG...])."""
    stdin = bool(opts.get("interactive")) and not detach
    if not detach:
        interactive.check_terminal(bool(opts.get("tty")), stdin, detach_keys)
        opts["console_size"] = interactive.terminal_size(sys.stdout.fileno()) if opts.get("tty") else None
    cid = _create(client, image, command, opts, attach=not detach)
    if detach:
        try:
            client.request("POST", f"/containers/{q(cid)}/start")
        except APIError as exc:
            click.echo(str(exc), err=True)
            sys.exit(start_exit_code(exc.message))
        click.echo(cid)
        return
    start_attached(client, cid, tty=bool(opts.get("tty")), stdin=stdin, detach_keys=detach_keys, sig_proxy=sig_proxy,
                   condition="removed" if opts.get("rm") else "next-exit")
