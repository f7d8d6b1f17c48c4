"""Images: content store, references, layers and the :class:`ImageService` the daemon runs."""

from .reference import Reference, chain_ids, parse, parse_tagged
from .service import Image, ImageService, Layer

__all__ = ["Image", "ImageService", "Layer", "Reference", "chain_ids", "parse", "parse_tagged"]
