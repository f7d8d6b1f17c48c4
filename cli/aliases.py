"""``--network-alias`` for run/create: extra DNS names of the container on its (user-defined)
network, sent as ``NetworkingConfig.EndpointsConfig[<network>].Aliases`` as docker does."""

from __future__ import annotations

from typing import Any

import click

OPTIONS = [
    click.option("--network-alias", "--net-alias", "network_alias", multiple=True,
                 help="Add network-scoped alias for the container"),
]


def apply(body: dict[str, Any], opts: dict[str, Any]) -> None:
    aliases = list(opts.get("network_alias") or ())
    if not aliases:
        return
    network = (body.get("HostConfig") or {}).get("NetworkMode") or "default"
    if network in ("default", "bridge", "host", "none") or network.startswith("container:"):
        raise click.UsageError("network-scoped aliases are only supported for user-defined networks")
    endpoints = body.setdefault("NetworkingConfig", {}).setdefault("EndpointsConfig", {})
    endpoints.setdefault(network, {}).setdefault("Aliases", []).extend(aliases)
