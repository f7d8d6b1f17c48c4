"""``dockyard``: the Dockyard CLI. Every command is one or more requests to the daemon."""

from __future__ import annotations

import sys
from typing import Any

import click

from .client import Client, ClientError, TLSConfig


class Group(click.Group):
    """Turns client errors into a message and an exit code instead of a traceback.

    Plugin commands (``register_commands``) are added the first time a name is not a built-in
    command, or the whole list is needed (``--help``): loading the hook modules imports the
    daemon package and the plugins (about half of start-up), which ``dockyard ps`` does not use.
    """

    plugins_loaded = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and not self.plugins_loaded:
            self.load_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        if not self.plugins_loaded:
            self.load_plugins()
        return super().list_commands(ctx)

    def load_plugins(self) -> None:
        self.plugins_loaded = True
        _plugin_commands(self)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ClientError as exc:
            click.echo(str(exc), err=True)
            sys.exit(getattr(exc, "exit_code", 1))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--version", "show_version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, param, value: _print_version(ctx, param, value), help="Print version information and quit")
@click.option("--config", "config_dir", metavar="DIR", help="Location of client config files (default: $DOCKER_CONFIG, ~/.docker)")
@click.option("-c", "--context", help='Name of the context to use (overrides DOCKER_HOST and "docker context use")')
@click.option("-H", "--host", envvar=None, help="Daemon address (default: $DOCKYARD_HOST, $DOCKER_HOST, unix:///run/dockyard.sock)")
@click.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify")
@click.option("--tlsverify", is_flag=True, help="Use TLS and verify the daemon ($DOCKER_TLS_VERIFY)")
@click.option("--tlscacert", metavar="PATH", help="Trust certs signed only by this CA (default: $DOCKER_CERT_PATH/ca.pem, ~/.docker/ca.pem)")
@click.option("--tlscert", metavar="PATH", help="TLS client certificate (default: $DOCKER_CERT_PATH/cert.pem)")
@click.option("--tlskey", metavar="PATH", help="TLS client key (default: $DOCKER_CERT_PATH/key.pem)")
@click.pass_context
def cli(ctx: click.Context, config_dir: str | None, context: str | None, host: str | None, tls: bool, tlsverify: bool, tlscacert: str | None,
        tlscert: str | None, tlskey: str | None) -> None:
    """dockyard: talk to dockyardd (or any Docker Engine API)."""
    import os

    from .contexts import resolve

    if config_dir:
        os.environ["DOCKER_CONFIG"] = config_dir
    host, context_tls, context_name = resolve(host, context)
    flags_tls = TLSConfig.resolve(tls, tlsverify, tlscacert, tlscert, tlskey)
    ctx.obj = Client(host, tls=flags_tls or context_tls)
    ctx.obj.context_name = context_name


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    from .version import print_version

    print_version(ctx, param, value)


def load_commands() -> None:
    from . import archive, build, containers, images, registry, system, volumes

    for module in (system, images, containers, archive, volumes, build, registry):
        module.register(cli)
    from . import contexts, docker_extras, inspect_all, interactive, networks, ports, version

    networks.register(cli)
    inspect_all.register(cli)  # `dockyard inspect`: containers, images, networks and volumes

    ports.register(cli)
    interactive.register(cli)
    contexts.register(cli)
    cli.add_command(version.version)  # docker's Client and Server sections (replaces system's)
    docker_extras.register(cli)  # last: it adds name completion to every command's arguments


def _plugin_commands(cli: click.Group) -> None:
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
