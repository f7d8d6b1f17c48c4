"""Commands docker has under these names: ``system info/events/prune``, ``history``,
``container port``, ``search``, and ``completion bash|zsh|fish`` (click's shell completion, with
container and image names completed from the daemon)."""

from __future__ import annotations

from typing import Any

import click

from .client import Client, ClientError, q
from .options import filter_dict
from .output import human_size

# -- system prune -----------------------------------------------------------------------------------


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones")
@click.option("--volumes", is_flag=True, help="Prune anonymous volumes")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "label=<key>=<value>")')
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def system_prune(client: Client, all_: bool, volumes: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused data (docker's order: containers, networks, volumes, images, build cache)."""
    if not force:
        what = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            what.append("all anonymous volumes not used by at least one container")
        what.append("all images without at least one container associated to them" if all_
                    else "all dangling images")
        what.append("unused build cache" if not all_ else "all build cache")
        text = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
        if not click.confirm(text + "\nAre you sure you want to continue?"):
            return
    f = filter_dict(filters)
    params = {"filters": f or None}
    total = 0

    def section(title: str, items: list[str]) -> None:
        if items:
            click.echo(title)
            for item in items:
                click.echo(item)
            click.echo()

    r = client.post("/containers/prune", params=params) or {}
    section("Deleted Containers:", r.get("ContainersDeleted") or [])
    total += r.get("SpaceReclaimed") or 0
    r = client.post("/networks/prune", params=params) or {}
    section("Deleted Networks:", r.get("NetworksDeleted") or [])
    if volumes:
        vf = {k: v for k, v in f.items() if k != "until"}  # volumes have no "until" filter
        r = client.post("/volumes/prune", params={"filters": vf or None}) or {}
        section("Deleted Volumes:", r.get("VolumesDeleted") or [])
        total += r.get("SpaceReclaimed") or 0
    imf = dict(f)
    imf["dangling"] = ["false" if all_ else "true"]
    r = client.post("/images/prune", params={"filters": imf}) or {}
    section("Deleted Images:", [f"{k.lower()}: {d[k]}" for d in r.get("ImagesDeleted") or []
                                for k in ("Untagged", "Deleted") if k in d])
    total += r.get("SpaceReclaimed") or 0
    r = client.post("/build/prune", params={"all": all_ or None, "filters": f or None}) or {}
    section("Deleted build cache objects:", r.get("CachesDeleted") or [])
    total += r.get("SpaceReclaimed") or 0
    click.echo(f"Total reclaimed space: {human_size(total)}")


# -- system dial-stdio (the far side of ssh://) ---------------------------------------------------


@click.command("dial-stdio", hidden=True)
@click.pass_obj
def dial_stdio(client: Client) -> None:
    """Proxy the stdio stream to the daemon connection (what ``ssh://`` hosts run remotely)."""
    import os
    import socket
    import threading

    from .client import _raw_socket

    if client.scheme == "ssh":
        raise ClientError("dial-stdio: the daemon address must be local (unix:// or tcp://), not ssh://")
    sock = _raw_socket(client)
    sock.settimeout(None)

    def upstream() -> None:
        try:
            while data := os.read(0, 65536):
                sock.sendall(data)
        except OSError:
            pass
        try:
            socket.socket.shutdown(sock, socket.SHUT_WR)
        except OSError:
            pass

    threading.Thread(target=upstream, daemon=True).start()
    try:
        while data := sock.recv(65536):
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
    except OSError:
        pass
    finally:
        sock.close()


# -- search ----------------------------------------------------------------------------------------


@click.command("search")
@click.argument("term")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (stars=N, is-official=true)")
@click.option("--limit", type=int, default=None, help="Max number of search results")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--format", "fmt", help="Pretty-print search using a Go template")
@click.pass_obj
def search(client: Client, term: str, filters: tuple[str, ...], limit: int | None, no_trunc: bool,
           fmt: str | None) -> None:
    """Search a registry for images (GET /images/search, through the daemon as docker does)."""
    from .registry import registry_auth_header, registry_of_image

    items = client.get("/images/search", params={"term": term, "limit": limit,
                                                 "filters": filter_dict(filters) or None},
                       headers={"X-Registry-Auth": registry_auth_header(registry_of_image(term))}) or []
    rows = []
    for i in items:
        desc = (i.get("description") or "").replace("\n", " ")
        if not no_trunc and len(desc) > 45:
            desc = desc[:44] + "…"
        rows.append({"Name": i.get("name", ""), "Description": desc, "StarCount": str(i.get("star_count", 0)),
                     "IsOfficial": "[OK]" if i.get("is_official") else "", "IsAutomated": ""})
    if fmt:
        from .output import render_template

        for r in rows:
            click.echo(render_template(fmt, r))
        return
    table = [("NAME", "DESCRIPTION", "STARS", "OFFICIAL")] + [
        (r["Name"], r["Description"], r["StarCount"], r["IsOfficial"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo(("   ".join(c.ljust(w) for c, w in zip(row, widths)) + "   " + row[3]).rstrip())


# -- completion ------------------------------------------------------------------------------------


def _client_for(ctx: click.Context) -> Client | None:
    """A client from the root's --host/--context (completion does not run the group callback)."""
    from .contexts import resolve

    params = ctx.find_root().params or {}
    try:
        host, tls, _ = resolve(params.get("host"), params.get("context"))
        return Client(host, timeout=5, tls=tls)
    except ClientError:
        return None


def _names(ctx: click.Context, path: str, params: dict[str, Any], key: str) -> list[str]:
    client = _client_for(ctx)
    if client is None:
        return []
    try:
        items = client.get(path, params=params) or []
    except ClientError:
        return []
    out: list[str] = []
    for item in items:
        if key == "Names":
            out += [n.lstrip("/") for n in item.get("Names") or []]
        else:
            out += [t for t in item.get("RepoTags") or [] if t != "<none>:<none>"]
    return out


def complete_containers(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in _names(ctx, "/containers/json", {"all": True}, "Names")
            if n.startswith(incomplete)]


def complete_images(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[Any]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in _names(ctx, "/images/json", {}, "RepoTags") if n.startswith(incomplete)]


CONTAINER_ARGS = ("container", "containers")
IMAGE_COMMANDS = {"run": ("image",), "create": ("image",), "rmi": ("names",), "history": ("name",),
                  "push": ("name",), "save": ("names",), "tag": ("source",)}
IMAGE_GROUP = {"rm": ("names",), "inspect": ("names",), "history": ("name",), "push": ("name",),
               "save": ("names",), "tag": ("source",)}


def _attach(command: click.Command, names: tuple[str, ...], completer: Any) -> None:
    for param in command.params:
        if isinstance(param, click.Argument) and param.name in names \
                and getattr(param, "_custom_shell_complete", None) is None:  # click 8: the shell_complete= callback
            param._custom_shell_complete = completer


def add_completers(cli: click.Group) -> None:
    """Container arguments complete container names, image arguments image references."""
    seen: set[int] = set()

    def walk(group: click.Group, image_map: dict[str, tuple[str, ...]]) -> None:
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                continue
            if name in image_map:
                _attach(command, image_map[name], complete_images)
            elif id(command) not in seen:
                _attach(command, CONTAINER_ARGS, complete_containers)
            seen.add(id(command))

    walk(cli, IMAGE_COMMANDS)
    for gname, image_map in (("container", {}), ("image", IMAGE_GROUP)):
        group = cli.commands.get(gname)
        if isinstance(group, click.Group):
            walk(group, image_map)


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Output shell completion code for the specified shell (bash, zsh or fish).

    \b
    bash:  source <(dockyard completion bash)
    zsh:   source <(dockyard completion zsh)
    fish:  dockyard completion fish | source
    """
    from click.shell_completion import get_completion_class

    from .main import cli

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "dockyard", "_DOCKYARD_COMPLETE").source())


# -- registration ----------------------------------------------------------------------------------


def register(cli: click.Group) -> None:
    from .images import history
    from .ports import port
    from .system import events, info

    system = cli.commands.get("system")
    if not isinstance(system, click.Group):
        system = click.Group("system", help="Manage Dockyard.")
        cli.add_command(system)
    system.add_command(info)
    system.add_command(events)
    system.add_command(system_prune)
    system.add_command(dial_stdio)
    cli.add_command(history)
    cli.add_command(search)
    cli.add_command(completion)
    container = cli.commands.get("container")
    if isinstance(container, click.Group):
        container.add_command(port)
    add_completers(cli)
