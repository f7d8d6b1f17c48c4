"""``ps``: the container list, with docker's columns and ``--format``."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Mapping

import click

from .client import Client
from .docker_command import command
from .options import filter_dict
from .output import human_duration, human_size
from .templates import ellipsis, print_rows, row


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM"}


PS_DEFAULT = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def format_ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports or []:
        proto = p.get("Type") or "tcp"
        if p.get("PublicPort"):
            out.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p.get('PrivatePort')}/{proto}")
        else:
            out.append(f"{p.get('PrivatePort')}/{proto}")
    return ", ".join(out)


def ps_row(c: Mapping[str, Any], no_trunc: bool = False, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    command = c.get("Command") or ""
    created = c.get("Created") or 0
    names = [n.lstrip("/") for n in c.get("Names") or [] if "/" not in n.lstrip("/")]
    size = human_size(c.get("SizeRw") or 0)  # docker: "0B" without --size
    if c.get("SizeRootFs"):
        size += f" (virtual {human_size(c.get('SizeRootFs') or 0)})"
    return {
        "Command": json.dumps(command if no_trunc else ellipsis(command, 20), ensure_ascii=False),
        "CreatedAt": datetime.fromtimestamp(created).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z"),
        "ID": c.get("Id", "") if no_trunc else c.get("Id", "")[:12],
        "Image": c.get("Image") or "",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.get("Labels") or {}).items())),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
        "Mounts": ",".join(m.get("Name") or m.get("Source") or "" for m in c.get("Mounts") or []),
        "Names": ",".join(names),
        "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        "Ports": format_ports(c.get("Ports") or []),
        "RunningFor": human_duration(now - created) + " ago",
        "Size": size,
        "State": c.get("State") or "",
        "Status": c.get("Status") or "",
    }


@command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions (key=value)")
@click.option("--format", "fmt", help="table (default), table TEMPLATE, json, or a template like '{{.ID}}'")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.pass_obj
def ps(client: Client, all_: bool, filters: tuple[str, ...], fmt: str | None, last: int, latest: bool,
       no_trunc: bool, quiet: bool, size: bool) -> None:
    """List containers."""
    if latest and last == -1:
        last = 1
    if fmt and not size:
        from .templates import ps_preprocess

        empty = {k: "" for k in PS_HEADERS}
        empty.update(ps_row({}, no_trunc, 0), ID="", Names="", Platform=None)
        size = ps_preprocess(fmt, row("*formatter.ContainerContext", empty, {}))
    f = filter_dict(filters)
    params = {"all": (all_ or last > 0) or None, "limit": last if last > 0 else None,
              "filters": f or None, "size": size or None}
    items: list[dict[str, Any]] = client.get("/containers/json", params=params)
    now = time.time()
    rows = [ps_row(c, no_trunc, now) for c in items]
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    structs = [row("*formatter.ContainerContext", dict(r, Platform=None), c.get("Labels") or {})
               for r, c in zip(rows, items)]
    default = PS_DEFAULT + ("\t{{.Size}}" if size else "")
    print_rows(fmt, structs, PS_HEADERS, default, ("failed to parse template: ", "failed to execute template: "))
