"""``dockyard``: the Dockyard CLI. Every command is one or more requests to the daemon."""

from __future__ import annotations

import sys
from typing import Any

import click

from .client import Client, ClientError


class Group(click.Group):
    """Turns client errors into a message and an exit code instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            click.echo(str(exc), err=True)
            sys.exit(getattr(exc, "exit_code", 1))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--host", envvar=None, help="Daemon address (default: $DOCKYARD_HOST, $DOCKER_HOST, unix:///run/dockyard.sock)")
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """dockyard: talk to dockyardd (or any Docker Engine API)."""
    ctx.obj = Client(host)


def load_commands() -> None:
    from . import archive, containers, images, system

    for module in (system, images, containers, archive):
        module.register(cli)
    _plugin_commands()


def _plugin_commands() -> None:
    """Let hook modules add commands (``register_commands``); a broken one only warns."""
    from importlib import metadata

    from dockyard.plugins import GROUPS, blocked_names, entry_point_names, make_plugin_manager

    pm = make_plugin_manager()
    blocked = blocked_names()
    for name in entry_point_names(GROUPS["hooks"]):
        if name in blocked:
            continue
        for ep in metadata.entry_points(group=GROUPS["hooks"], name=name):
            try:
                pm.register(ep.load(), name=name)
            except Exception as exc:  # the CLI keeps working without that plugin's commands
                click.echo(f"warning: plugin {name!r} failed to load: {exc}", err=True)
    pm.hook.register_commands(cli=cli)


def main() -> None:
    load_commands()
    cli.main(prog_name="dockyard")


if __name__ == "__main__":
    main()
