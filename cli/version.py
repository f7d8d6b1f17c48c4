"""``dockyard --version`` and ``dockyard version`` as docker prints them: the Client section
always, the Server section when the daemon answers (else its error on stderr and exit 1)."""

from __future__ import annotations

import platform
from typing import Any

import click

from .client import Client, ClientError


def cli_version() -> str:
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        return dist_version("dockyard")
    except PackageNotFoundError:
        return "unknown"


def build_id() -> str:
    """The short git commit of the source when run from a checkout, else the package version."""
    from pathlib import Path

    head = Path(__file__).resolve().parent.parent / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return ref[:7]
    except OSError:
        return "python" + platform.python_version()


def print_version(ctx: click.Context, _param: Any, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"Dockyard version {cli_version()}, build {build_id()}")
    ctx.exit(0)


def client_rows(context: str) -> list[tuple[str, str]]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return [("Version", cli_version()), ("API version", "1.44"),
            ("Go version", "python" + platform.python_version()), ("Git commit", build_id()),
            ("Built", ""), ("OS/Arch", f"linux/{arch}"), ("Context", context)]


@click.command("version")
@click.option("-f", "--format", "fmt", help="Format output using a custom template: 'json', or a Go template")
@click.pass_context
def version(ctx: click.Context, fmt: str | None) -> None:
    """Show the Dockyard version information."""
    if fmt:  # the template data and rendering live with the other --format code
        from .system import version as formatted

        return ctx.invoke(formatted, fmt=fmt)
    client: Client = ctx.obj
    click.echo("Client:")
    for key, value in client_rows(getattr(client, "context_name", "default")):
        click.echo(f" {key + ':':<18} {value}".rstrip() if value else f" {key}:")
    try:
        v = client.get("/version")
    except ClientError as exc:
        click.echo(str(exc), err=True)
        ctx.exit(1)
    click.echo("")
    click.echo(f"Server: {(v.get('Platform') or {}).get('Name', '')}".rstrip())
    click.echo(" Engine:")
    for key, value in [("Version", v.get("Version")),
                       ("API version", f"{v.get('ApiVersion')} (minimum version {v.get('MinAPIVersion')})"),
                       ("Runtime", v.get("GoVersion")), ("Git commit", v.get("GitCommit")),
                       ("Built", v.get("BuildTime")), ("OS/Arch", f"{v.get('Os')}/{v.get('Arch')}"),
                       ("Kernel", v.get("KernelVersion")), ("Experimental", str(bool(v.get("Experimental"))).lower())]:
        click.echo(f"  {key + ':':<17} {value}".rstrip() if value else f"  {key}:")
    for comp in v.get("Components") or []:
        if comp.get("Name") in ("Engine", (v.get("Platform") or {}).get("Name")):
            continue
        click.echo(f" {comp.get('Name')}:")
        click.echo(f"  {'Version:':<17} {comp.get('Version')}")
