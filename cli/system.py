"""System commands: version, info, events, plugins."""

from __future__ import annotations

import json
from typing import Any

import click

from .client import Client
from .options import filter_dict
from .output import FORMAT_HELP, emit_json, human_size, output, render_template


def register(cli: click.Group) -> None:
    for command in (version, info, events, plugins):
        cli.add_command(command)


def client_version() -> dict[str, Any]:
    """The ``Client`` half of docker version's template data, for this CLI."""
    import platform
    from importlib.metadata import PackageNotFoundError, version as dist_version

    try:
        mine = dist_version("dockyard")
    except PackageNotFoundError:
        mine = "unknown"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {"Version": mine, "ApiVersion": "1.44", "DefaultAPIVersion": "1.44", "GitCommit": "",
            "GoVersion": "python" + platform.python_version(), "Os": "linux", "Arch": arch,
            "BuildTime": "", "Context": "default"}


@click.command()
@click.option("-f", "--format", "fmt", help=FORMAT_HELP)
@click.pass_obj
def version(client: Client, fmt: str | None) -> None:
    """Show the daemon's version."""
    v = client.get("/version")
    if fmt:
        from .gotemplate import Struct, go_json
        from .templates import print_one

        mine = client_version()
        c = Struct("system.clientVersion", {("APIVersion" if k == "ApiVersion" else k): x for k, x in mine.items()},
                   json=mine)
        server = {k: x for k, x in v.items() if x or k not in ("Experimental", "BuildTime")}  # omitempty
        go_names = {"ApiVersion": "APIVersion", "MinAPIVersion": "MinAPIVersion"}
        fields = {"Platform": {}, "Components": [], "Version": "", "APIVersion": "", "MinAPIVersion": "",
                  "GitCommit": "", "GoVersion": "", "Os": "", "Arch": "", "KernelVersion": "", "Experimental": False,
                  "BuildTime": ""}
        fields.update({go_names.get(k, k): x for k, x in v.items()})
        info = Struct("system.versionInfo", {"Client": c, "Server": Struct("*types.Version", fields, json=server)})
        if fmt == "json":
            return click.echo(go_json(info.fields))
        return print_one(fmt, info, name="version")
    rows = [
        ("Server", v.get("Platform", {}).get("Name", "")),
        ("Version", v.get("Version")),
        ("API version", f"{v.get('ApiVersion')} (minimum version {v.get('MinAPIVersion')})"),
        ("Runtime", v.get("GoVersion")),
        ("OS/Arch", f"{v.get('Os')}/{v.get('Arch')}"),
        ("Kernel", v.get("KernelVersion")),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':<14}{value}")


@click.command()
@click.option("-f", "--format", "fmt", help=FORMAT_HELP)
@click.pass_obj
def info(client: Client, fmt: str | None) -> None:
    """Show system-wide information, including every loaded plugin."""
    i = client.get("/info")
    if fmt:
        from .gotemplate import Struct, go_json
        from .templates import print_one

        mine = client_version()
        client_info = {"Debug": False, "Version": mine["Version"], "DefaultAPIVersion": mine["DefaultAPIVersion"],
                       "GitCommit": "", "GoVersion": mine["GoVersion"], "Os": mine["Os"], "Arch": mine["Arch"],
                       "BuildTime": "", "Context": mine["Context"], "Plugins": [], "Warnings": None}
        data = Struct("system.dockerInfo", dict(i, ClientInfo=client_info), json=dict(i, ClientInfo=client_info))
        if fmt == "json":
            return click.echo(go_json(data, escape_html=True))
        return print_one(fmt, data)
    lines = [
        ("Server Version", i.get("ServerVersion")),
        ("Containers", i.get("Containers")),
        (" Running", i.get("ContainersRunning")),
        (" Paused", i.get("ContainersPaused")),
        (" Stopped", i.get("ContainersStopped")),
        ("Images", i.get("Images")),
        ("Storage Driver", i.get("Driver")),
        ("Runtime", i.get("DefaultRuntime")),
        ("Cgroup Driver", i.get("CgroupDriver")),
        ("Cgroup Version", i.get("CgroupVersion")),
        ("Live Restore Enabled", i.get("LiveRestoreEnabled")),
        ("Kernel Version", i.get("KernelVersion")),
        ("Operating System", i.get("OperatingSystem")),
        ("Architecture", i.get("Architecture")),
        ("CPUs", i.get("NCPU")),
        ("Total Memory", human_size(i.get("MemTotal") or 0)),
        ("Name", i.get("Name")),
        ("ID", i.get("ID")),
        ("Root Dir", i.get("DockerRootDir")),
    ]
    for key, value in lines:
        click.echo(f"{key}: {value}")
    plugins_ = i.get("DockyardPlugins") or []
    if plugins_:
        click.echo("Plugins:")
        for p in plugins_:
            click.echo(f" {p['Group']}: {p['Name']} ({p.get('Distribution') or '?'} {p.get('Version') or ''})".rstrip())
    for w in i.get("Warnings") or []:
        click.echo(f"WARNING: {w}", err=True)


@click.command()
@click.option("--since", help="Show all events created since timestamp (RFC 3339, unix seconds, or a duration like 10m)")
@click.option("--until", help="Stream events until this timestamp (RFC 3339, unix seconds, or a duration like 10m)")
@click.option("-f", "--filter", "filters", multiple=True, help="key=value, e.g. type=container, event=start")
@click.option("--format", "fmt", help="json, or a template like '{{.Type}} {{.Action}}'")
@click.pass_obj
def events(client: Client, since: str | None, until: str | None, filters: tuple[str, ...], fmt: str | None) -> None:
    """Stream events from the daemon."""
    from dockyard.timestamps import rfc3339_nano_fixed

    params = {"since": to_timestamp(since), "until": to_timestamp(until), "filters": filter_dict(filters) or None}
    response = client.request("GET", "/events", params=params, stream=True)
    try:
        for ev in response.iter_json():
            if fmt == "json":
                click.echo(json.dumps(ev))
            elif fmt:
                click.echo(render_template(fmt, ev))
            else:
                stamp = rfc3339_nano_fixed(ev["timeNano"], local=True)  # as the docker CLI: local, with the zone
                attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev["Actor"]["Attributes"].items()))
                click.echo(f"{stamp} {ev['Type']} {ev['Action']} {ev['Actor']['ID']}"
                           + (f" ({attrs})" if attrs else ""))
    except KeyboardInterrupt:
        pass
    finally:
        response.close()


@click.command()
@click.option("-f", "--format", "fmt", help=FORMAT_HELP)
@click.pass_obj
def plugins(client: Client, fmt: str | None) -> None:
    """List the daemon's loaded drivers and hook modules with their distributions, and each
    driver's optional capabilities (its contract, checked when it loaded)."""
    items: list[dict[str, Any]] = client.get("/info").get("DockyardPlugins") or []
    output(fmt, items, ("GROUP", "NAME", "DISTRIBUTION", "VERSION", "HOOKS", "CAPABILITIES"),
           [(p["Group"], p["Name"], p.get("Distribution"), p.get("Version"), ",".join(p.get("Hooks") or []),
             ",".join(p["Capabilities"]) if p.get("Capabilities") is not None else "")
            for p in items])


def to_timestamp(value: str | None) -> str | None:
    """docker's ``--since``/``--until``: converted to unix seconds here, as the docker CLI does
    (a zone-less time is local time; see dockyard_cli.timestamps)."""
    from .logs import to_unix

    return to_unix(value)
