"""``dockyard volume create/ls/inspect/rm/prune``, and the mount flags of ``run``/``create``
(``-v``, ``--mount``, ``--tmpfs``, ``--volumes-from``, ``--volume-driver``) as docker parses them."""

from __future__ import annotations

import csv
import json
import sys
from typing import Any, Callable, Mapping

import click

from .client import APIError, Client, q
from .options import filter_dict, key_values
from .output import prune_report

# -- run/create flags ---------------------------------------------------------------------------


def mount_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("-v", "--volume", multiple=True, help="Bind mount a volume ([SRC:]DST[:OPTS])"),
        click.option("--mount", multiple=True, help="Attach a filesystem mount (type=bind|volume|tmpfs,src=,dst=,...)"),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory (/path[:opts])"),
        click.option("--volumes-from", multiple=True, help="Mount volumes from the specified container(s)"),
        click.option("--volume-driver", help="Volume driver for the container's named volumes"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _bool(value: str, key: str) -> bool:
    low = value.lower()
    if low in ("", "1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise click.BadParameter(f"invalid value for {key}: {value}", param_hint="--mount")


def _size(text: str) -> int:
    from .create_flags import parse_size

    return parse_size(text, "--mount tmpfs-size")


def parse_mount_flag(text: str) -> dict[str, Any]:
    """docker's ``--mount`` CSV: ``type=volume,src=data,dst=/data,readonly,volume-opt=k=v``."""
    m: dict[str, Any] = {"Type": "volume"}
    bind: dict[str, Any] = {}
    volume: dict[str, Any] = {}
    tmpfs: dict[str, Any] = {}
    for field in next(csv.reader([text])):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep and key not in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive"):
            raise click.BadParameter(f"invalid field '{field}' must be a key=value pair", param_hint="--mount")
        if key == "type":
            m["Type"] = value
        elif key in ("source", "src"):
            m["Source"] = value
        elif key in ("target", "dst", "destination"):
            m["Target"] = value
        elif key in ("readonly", "ro"):
            m["ReadOnly"] = _bool(value, key)
        elif key == "consistency":
            m["Consistency"] = value
        elif key == "bind-propagation":
            bind["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind["NonRecursive"] = _bool(value, key)
        elif key == "volume-driver":
            volume.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-opt":
            k, _, v = value.partition("=")
            volume.setdefault("DriverConfig", {}).setdefault("Options", {})[k] = v
        elif key == "volume-label":
            k, _, v = value.partition("=")
            volume.setdefault("Labels", {})[k] = v
        elif key == "volume-nocopy":
            volume["NoCopy"] = _bool(value, key)
        elif key == "tmpfs-size":
            tmpfs["SizeBytes"] = _size(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs["Mode"] = int(value, 8)
            except ValueError:
                raise click.BadParameter(f"invalid value for tmpfs-mode: {value}", param_hint="--mount") from None
        else:
            raise click.BadParameter(f"unexpected key '{key}' in '{field}'", param_hint="--mount")
    if bind:
        m["BindOptions"] = bind
    if volume:
        m["VolumeOptions"] = volume
    if tmpfs:
        m["TmpfsOptions"] = tmpfs
    return m


def apply_mount_flags(o: Mapping[str, Any], body: dict[str, Any], hc: dict[str, Any]) -> None:
    """Put the mount flags of ``run``/``create`` into the create body, as the docker CLI does:
    ``-v /path`` (no source) is an image-style anonymous volume in ``Config.Volumes``."""
    binds = []
    for spec in o.get("volume") or ():
        if ":" in spec:
            binds.append(spec)
        else:
            body.setdefault("Volumes", {})[spec] = {}
    if binds:
        hc["Binds"] = binds
    mounts = [parse_mount_flag(m) for m in o.get("mount") or ()]
    if mounts:
        hc["Mounts"] = mounts
    tmpfs = {}
    for spec in o.get("tmpfs") or ():
        path, _, opts = spec.partition(":")
        tmpfs[path] = opts
    if tmpfs:
        hc["Tmpfs"] = tmpfs
    if o.get("volumes_from"):
        hc["VolumesFrom"] = list(o["volumes_from"])
    if o.get("volume_driver"):
        hc["VolumeDriver"] = o["volume_driver"]


# -- dockyard volume ... ------------------------------------------------------------------------


@click.group("volume")
def volume() -> None:
    """Manage volumes."""


@volume.command("create")
@click.option("-d", "--driver", default="local", show_default=True, help="Volume driver name")
@click.option("-o", "--opt", multiple=True, help="Driver specific options (k=v)")
@click.option("--label", multiple=True, help="Set metadata for a volume (k=v)")
@click.argument("name", required=False)
@click.pass_obj
def create(client: Client, driver: str, opt: tuple[str, ...], label: tuple[str, ...], name: str | None) -> None:
    """Create a volume (a generated name when NAME is not given) and print its name."""
    body = {"Name": name or "", "Driver": driver, "DriverOpts": key_values(opt, "--opt"),
            "Labels": key_values(label, "--label")}
    click.echo(client.post("/volumes/create", body=body)["Name"])


@volume.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (name=, label=, dangling=, driver=)")
@click.option("--format", "fmt", help="table (default), json, or a template like '{{.Name}}'")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.pass_obj
def ls(client: Client, filters: tuple[str, ...], fmt: str | None, quiet: bool) -> None:
    """List volumes."""
    params = {"filters": json.dumps(filter_dict(filters))} if filters else None
    volumes = sorted(client.get("/volumes", params=params).get("Volumes") or [], key=lambda v: v["Name"])
    if quiet:
        for v in volumes:
            click.echo(v["Name"])
        return
    from .templates import labels_text, print_rows, row

    def na(v: Any) -> str:
        return "N/A" if v in (None, "") else str(v)

    rows = [row("*formatter.volumeContext", {
        "Availability": "N/A", "Driver": v.get("Driver") or "", "Group": "N/A",
        "Labels": labels_text(v.get("Labels")), "Links": na(((v.get("UsageData") or {}).get("RefCount"))),
        "Mountpoint": v.get("Mountpoint") or "", "Name": v.get("Name") or "", "Scope": v.get("Scope") or "",
        "Size": "N/A", "Status": "N/A",
    }, v.get("Labels") or {}) for v in volumes]
    print_rows(fmt, rows, VOLUME_HEADERS, "{{.Driver}}\t{{.Name}}")


VOLUME_HEADERS = {"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT",
                  "Labels": "LABELS", "Links": "LINKS", "Size": "SIZE", "Availability": "AVAILABILITY",
                  "Group": "GROUP", "Status": "STATUS"}


@volume.command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a template like '{{.Mountpoint}}'")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(client: Client, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    results, failed = [], False
    for name in names:
        try:
            results.append(client.get(f"/volumes/{q(name)}"))
        except APIError as exc:
            click.echo(f"Error: No such volume: {name}" if exc.status == 404 else str(exc), err=True)
            failed = True
    from .templates import print_inspect

    print_inspect(fmt, results, root_type="volume.Volume")
    if failed:
        sys.exit(1)


@volume.command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(client: Client, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes (a volume in use by a container cannot be removed)."""
    failed = False
    for name in names:
        try:
            client.request("DELETE", f"/volumes/{q(name)}", params={"force": force or None})
            click.echo(name)
        except APIError as exc:
            click.echo(str(exc), err=True)
            failed = True
    if failed:
        sys.exit(1)


@volume.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (label=k[=v], label!=...)")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def prune(client: Client, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused volumes (anonymous ones only unless --all)."""
    if not force:
        what = "all local volumes not used by at least one container" if all_ else \
            "all anonymous local volumes not used by at least one container"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return
    f = filter_dict(filters)
    if all_:
        f["all"] = ["true"]
    result = client.post("/volumes/prune", params={"filters": json.dumps(f)} if f else None)
    prune_report("Volumes", result.get("VolumesDeleted") or [], result.get("SpaceReclaimed") or 0)


volume.add_command(ls, "list")
volume.add_command(rm, "remove")


def register(cli: click.Group) -> None:
    cli.add_command(volume)
