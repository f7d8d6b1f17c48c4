"""Images: content store, references, layers and the :class:`ImageService` the daemon runs."""

from .reference import Reference, chain_ids, parse, parse_tagged
from .model import Image, Layer, PendingImage, Txn
from .service import ImageService

__all__ = ["Image", "ImageService", "Layer", "PendingImage", "Reference", "Txn", "chain_ids", "parse", "parse_tagged"]
