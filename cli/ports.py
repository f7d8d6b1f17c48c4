"""``-p/--publish``, ``-P``, ``--expose`` for run/create, and ``dockyard port``.

:func:`parse_publish` follows docker's ``nat.ParsePortSpec``: ``80``, ``8080:80``,
``127.0.0.1:8080:80``, ``127.0.0.1::80``, ``53/udp``, ranges ``8000-8001:80-81`` (one host port
per container port) and ``8000-8010:80`` (the daemon picks one of the range).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

import click

from .client import Client, q


def _range(text: str, what: str, spec: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first = int(low)
        last = int(high) if sep else first
    except ValueError:
        raise click.BadParameter(f"invalid {what} in {spec!r}", param_hint="--publish") from None
    if not (0 < first <= last < 65536):
        raise click.BadParameter(f"invalid {what} in {spec!r}", param_hint="--publish")
    return first, last


def _split(spec: str) -> tuple[str, str, str]:
    """(ip, host port, container port[/proto]) from a -p value; an IPv6 ip is bracketed."""
    if spec.startswith("["):
        ip, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise click.BadParameter(f"invalid IP address in {spec!r}", param_hint="--publish")
        host, _, container = rest[1:].rpartition(":")
        return ip, host, container
    parts = spec.split(":")
    if len(parts) == 1:
        return "", "", parts[0]
    if len(parts) == 2:
        return "", parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    raise click.BadParameter(f"invalid format {spec!r}: use [ip:][hostPort:]containerPort[/proto]",
                             param_hint="--publish")


def parse_publish(specs: Iterable[str]) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """(ExposedPorts, PortBindings) for the ``-p`` values."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        ip, host, container = _split(spec)
        if ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise click.BadParameter(f"invalid IP address {ip!r} in {spec!r}", param_hint="--publish") from None
        port, _, proto = container.partition("/")
        proto = proto or "tcp"
        if not port:
            raise click.BadParameter(f"no port specified: {spec!r}", param_hint="--publish")
        first, last = _range(port, "containerPort", spec)
        hosts: list[str]
        if not host:
            hosts = [""] * (last - first + 1)
        else:
            hfirst, hlast = _range(host, "hostPort", spec)
            if last - first == hlast - hfirst:
                hosts = [str(h) for h in range(hfirst, hlast + 1)]
            elif first == last:
                hosts = [f"{hfirst}-{hlast}"]
            else:
                raise click.BadParameter(f"invalid ranges specified for container and host Ports: {spec!r}",
                                         param_hint="--publish")
        for cport, hport in zip(range(first, last + 1), hosts):
            key = f"{cport}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": hport})
    return exposed, bindings


def parse_expose(specs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``--expose 80``, ``80/udp``, ``8000-8010``."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        port, _, proto = spec.partition("/")
        first, last = _range(port, "port", spec)
        for p in range(first, last + 1):
            out[f"{p}/{proto or 'tcp'}"] = {}
    return out


def apply(body: dict[str, Any], opts: dict[str, Any]) -> None:
    """Add the port flags of ``run``/``create`` to a create body."""
    exposed, bindings = parse_publish(opts.get("publish") or ())
    exposed.update(parse_expose(opts.get("expose") or ()))
    if exposed:
        body["ExposedPorts"] = {**(body.get("ExposedPorts") or {}), **exposed}
    hc = body.setdefault("HostConfig", {})
    if bindings:
        hc["PortBindings"] = bindings
    if opts.get("publish_all"):
        hc["PublishAllPorts"] = True


OPTIONS = [
    click.option("-p", "--publish", multiple=True,
                 help="Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])"),
    click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports"),
    click.option("--expose", multiple=True, help="Expose a port or a range of ports"),
]


def port_lines(ports: dict[str, Any], wanted: str | None) -> list[str]:
    """What ``docker port`` prints: ``80/tcp -> 0.0.0.0:8080`` per binding, or only the host
    addresses when one port is asked for."""
    if wanted:
        key = wanted if "/" in wanted else f"{wanted}/tcp"
        if key not in ports or not ports[key]:
            raise click.ClickException(f"No public port '{key}' published for this container")
        return [f"{b['HostIp']}:{b['HostPort']}" for b in ports[key]]
    return [f"{key} -> {b['HostIp']}:{b['HostPort']}" for key, entries in sorted(ports.items())
            for b in entries or []]


@click.command("port")
@click.argument("container")
@click.argument("port", required=False)
@click.pass_obj
def port(client: Client, container: str, port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    data = client.get(f"/containers/{q(container)}/json")
    for line in port_lines((data.get("NetworkSettings") or {}).get("Ports") or {}, port):
        click.echo(line)


def register(cli: click.Group) -> None:
    cli.add_command(port)
