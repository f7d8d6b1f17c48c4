"""Networks: records, IPAM, container network namespaces; drivers wire them on the host."""

from .service import NetworkService

__all__ = ["NetworkService"]
