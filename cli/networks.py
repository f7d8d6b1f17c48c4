"""``dockyard network ls/inspect/create/rm/connect/disconnect/prune``, and ``--ip`` of
``run``/``create`` (``--network`` is in containers.py, ``--network-alias`` in aliases.py)."""

from __future__ import annotations

import json
from typing import Any

import click

from .client import APIError, Client, q
from .options import filter_dict, key_values
from .output import emit_json

IP_OPTIONS = [
    click.option("--ip", help="IPv4 address (e.g., 172.30.100.104) on the container's user-defined network"),
]


def apply_ip(body: dict[str, Any], opts: dict[str, Any]) -> None:
    """``--ip`` becomes ``NetworkingConfig.EndpointsConfig[<network>].IPAMConfig.IPv4Address``."""
    if not opts.get("ip"):
        return
    network = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
    endpoints = body.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
    endpoints.setdefault(network, {}).setdefault("IPAMConfig", {})["IPv4Address"] = opts["ip"]


def register(cli: click.Group) -> None:
    cli.add_command(network)


@click.group("network")
def network() -> None:
    """Manage networks."""


@network.command("ls")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (driver=, name=, label=, ...)")
@click.option("--format", "fmt", help="Output: table (default), json, or a template")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.pass_obj
def ls(client: Client, filters: tuple[str, ...], fmt: str | None, quiet: bool, no_trunc: bool) -> None:
    """List networks."""
    params = {"filters": json.dumps(filter_dict(filters))} if filters else {}
    nets = client.get("/networks", params=params)
    ids = [n["Id"] if no_trunc else n["Id"][:12] for n in nets]
    if quiet:
        for i in ids:
            click.echo(i)
        return
    from .templates import go_time, labels_text, print_rows, row

    def b(v: Any) -> str:
        return "true" if v else "false"

    rows = [row("*network.networkContext", {
        "CreatedAt": go_time(n.get("Created")), "Driver": n.get("Driver") or "", "ID": i,
        "IPv4": b(n.get("EnableIPv4")), "IPv6": b(n.get("EnableIPv6")), "Internal": b(n.get("Internal")),
        "Labels": labels_text(n.get("Labels")), "Name": n.get("Name") or "", "Scope": n.get("Scope") or "",
    }, n.get("Labels") or {}) for i, n in zip(ids, nets)]
    print_rows(fmt, rows, NETWORK_HEADERS, "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}")


NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE", "IPv4": "IPV4",
                   "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT"}


@network.command("inspect")
@click.argument("networks", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a template")
@click.pass_obj
def inspect(client: Client, networks: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more networks."""
    found, failed = [], False
    for ref in networks:
        try:
            found.append(client.get(f"/networks/{q(ref)}"))
        except APIError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            failed = True
    from .templates import print_inspect

    print_inspect(fmt, found)
    if failed:
        raise SystemExit(1)


@network.command("create")
@click.argument("name")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the network")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format (e.g. 10.20.0.0/16; one IPv4 and one IPv6)")
@click.option("--gateway", multiple=True, help="Gateway for the subnet it belongs to")
@click.option("--ip-range", multiple=True, help="Allocate container IPs from a sub-range")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.option("--label", multiple=True, help="Set metadata on a network (key=value)")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options (key=value)")
@click.option("--ipv6", is_flag=True, help="Enable IPv6 networking")
@click.pass_obj
def create(client: Client, name: str, driver: str, subnet: tuple[str, ...], gateway: tuple[str, ...],
           ip_range: tuple[str, ...], internal: bool, attachable: bool, label: tuple[str, ...], opt: tuple[str, ...],
           ipv6: bool) -> None:
    """Create a network."""
    body = {"Name": name, "Driver": driver, "CheckDuplicate": True, "Internal": internal, "Attachable": attachable,
            "EnableIPv6": ipv6, "Labels": key_values(label, "--label"), "Options": key_values(opt, "--opt"),
            "IPAM": {"Driver": "default", "Config": ipam_configs(subnet, gateway, ip_range)}}
    result = client.post("/networks/create", body=body)
    if result.get("Warning"):
        click.echo(f"WARNING: {result['Warning']}", err=True)
    click.echo(result["Id"])


def ipam_configs(subnets: tuple[str, ...], gateways: tuple[str, ...], ranges: tuple[str, ...]) -> list[dict[str, str]]:
    """One ``IPAM.Config`` entry per ``--subnet``, with the ``--gateway`` and ``--ip-range``
    inside it (the docker CLI's pairing)."""
    import ipaddress

    if (gateways or ranges) and not subnets:
        raise click.UsageError("--gateway and --ip-range need --subnet")
    configs = []
    for text in subnets:
        entry = {"Subnet": text}
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            configs.append(entry)  # the daemon names the bad value
            continue
        for key, values in (("Gateway", gateways), ("IPRange", ranges)):
            for v in values:
                try:
                    inside = ipaddress.ip_network(v, strict=False).subnet_of(net)  # type: ignore[arg-type]
                except (ValueError, TypeError):
                    inside = False
                if inside:
                    if key in entry:
                        raise click.UsageError(f"cannot configure multiple {key.lower()}s for the same subnet")
                    entry[key] = v
        configs.append(entry)
    used = {v for c in configs for k, v in c.items() if k != "Subnet"}
    for v in (*gateways, *ranges):
        if v not in used:
            raise click.UsageError(f"no matching subnet for {v}")
    return configs


@network.command("rm")
@click.argument("networks", nargs=-1, required=True)
@click.pass_obj
def rm(client: Client, networks: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    failed = False
    for ref in networks:
        try:
            client.delete(f"/networks/{q(ref)}")
            click.echo(ref)
        except APIError as exc:
            click.echo(str(exc), err=True)
            failed = True
    if failed:
        raise SystemExit(1)


network.add_command(rm, "remove")
network.add_command(ls, "list")


@network.command("connect")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
@click.option("--ip", help="IPv4 address (e.g., 172.30.100.104)")
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.pass_obj
def connect(client: Client, network_ref: str, container: str, ip: str | None, alias: tuple[str, ...]) -> None:
    """Connect a container to a network."""
    cfg: dict[str, Any] = {}
    if ip:
        cfg["IPAMConfig"] = {"IPv4Address": ip}
    if alias:
        cfg["Aliases"] = list(alias)
    client.post(f"/networks/{q(network_ref)}/connect", body={"Container": container, "EndpointConfig": cfg})


@network.command("disconnect")
@click.argument("network_ref", metavar="NETWORK")
@click.argument("container")
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.pass_obj
def disconnect(client: Client, network_ref: str, container: str, force: bool) -> None:
    """Disconnect a container from a network."""
    client.post(f"/networks/{q(network_ref)}/disconnect", body={"Container": container, "Force": force})


@network.command("prune")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')")
@click.pass_obj
def prune(client: Client, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    if not force and not click.confirm("WARNING! This will remove all custom networks not used by at least one "
                                       "container.\nAre you sure you want to continue?"):
        return
    params = {"filters": json.dumps(filter_dict(filters))} if filters else {}
    result = client.post("/networks/prune", params=params)
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:")
        for name in deleted:
            click.echo(name)
