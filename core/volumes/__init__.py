"""Volumes: the service (records, users, prune) and the built-in ``local`` driver."""

from .service import VolumeService

__all__ = ["VolumeService"]
