"""The drivers of Docker's predefined ``host`` and ``none`` networks.

``host``: the container shares the daemon's network namespace; nothing to wire.
``null`` (network ``none``): the container's own namespace with ``lo`` only (the service
brings ``lo`` up when it makes the namespace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..drivers.network import Endpoint, Network


class _NothingToWire:
    name = ""
    scope = "local"
    #: optional contracts (dockyard.drivers.network)
    capabilities = frozenset({"validate"})

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        pass

    def validate(self, net: Network) -> None:
        pass

    def create(self, net: Network) -> None:
        pass

    def delete(self, net: Network) -> None:
        pass

    def join(self, net: Network, ep: Endpoint) -> None:
        pass

    def leave(self, net: Network, ep: Endpoint) -> None:
        pass

    def reconcile(self, nets: list[Network], endpoints: list[Endpoint]) -> None:
        pass

    def close(self, nets: list[Network], in_use: bool) -> None:
        pass


class HostDriver(_NothingToWire):
    name = "host"


class NullDriver(_NothingToWire):
    name = "null"
