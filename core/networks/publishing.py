"""Published ports, between the networks service and the network driver.

At start (:func:`publish`, after the container's endpoints exist) the container's requested
bindings (:func:`dockyard.containers.ports.requested`) go to the driver of its first network
that publishes ports (the ``ports`` capability, :class:`~dockyard.drivers.network.PortPublisher`),
with the container's address on
that network; what the driver made is shown as ``NetworkSettings.Ports``. Before an endpoint
goes (:func:`unpublish`) the driver removes them again. ``host`` and ``none`` containers
publish nothing, as in Docker. A network's ``com.docker.network.bridge.host_binding_ipv4``
option is the host address of bindings that name none (e.g. ``127.0.0.1`` for a network whose
ports should stay on the host).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..containers import ports
from ..drivers.network import Endpoint
from ..errors import Conflict
from .record import NetRecord

HOST_BINDING_OPT = "com.docker.network.bridge.host_binding_ipv4"


async def publish(service: Any, c: Any) -> None:
    bindings = ports.requested(c.config, c.host_config)
    published: list[Any] = []
    if bindings:
        for rec, ep in _endpoints_in_order(service, c):
            if not service.capable(rec.net.driver, "ports") or not ep.address:
                continue
            default_ip = rec.net.options.get(HOST_BINDING_OPT, "")
            if default_ip not in ("", "0.0.0.0"):  # the network's default for "every address"
                bindings = [dataclasses.replace(b, host_ip=b.host_ip or default_ip) for b in bindings]
            try:
                published = await service._call(service.driver(rec.net.driver).publish, rec.net, ep, bindings)
            except Conflict as exc:  # Docker's wording, which scripts grep for
                raise Conflict(f"driver failed programming external connectivity on endpoint {c.name} "
                               f"({ep.id}): {exc.message}") from None
            break
    c.network_settings["Ports"] = ports.inspect_ports(c.config, c.host_config, published)


async def unpublish(service: Any, c: Any, rec: NetRecord, ep: Endpoint) -> None:
    """Idempotent: a driver without ports, or an endpoint without any, is fine. A container
    whose ``Ports`` show no binding published nothing: no driver call (a worker-thread hop)."""
    shown = c.network_settings.get("Ports")
    if isinstance(shown, dict) and not any(shown.values()):
        c.network_settings.pop("Ports", None)
        return
    if service.capable(rec.net.driver, "ports"):
        await service._call(service.driver(rec.net.driver).unpublish, rec.net, ep)
    c.network_settings.pop("Ports", None)


def _endpoints_in_order(service: Any, c: Any) -> list[tuple[NetRecord, Endpoint]]:
    """The container's endpoints, its primary network (``c.networks`` order) first."""
    order = {s.get("NetworkID"): i for i, s in enumerate(c.networks.values())}
    return sorted(service.endpoints_of(c.id), key=lambda re: order.get(re[0].id, len(order)))
