"""Registries: pull, push and login over the Distribution API v2 (``client.py``), with the
daemon's ``registry-mirrors`` and ``insecure-registries``."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import Unauthorized
from ..images.service import ImageService
from .auth import Credentials, decode_registry_auth
from .client import RegistryClient, Settings, endpoints
from .metadata import DistributionMetadata
from .pull import Platform, Puller, parse_platform, pull_reference
from .push import Pusher

__all__ = ["Credentials", "RegistryService", "Settings", "decode_registry_auth", "parse_platform", "pull_reference"]

LEGACY_HUB_ADDRESSES = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io")


class RegistryService:
    def __init__(self, images: ImageService, config: Any) -> None:
        self.images = images
        self.settings = Settings.from_config(config)
        self.metadata = DistributionMetadata(images.root)

    async def pull(self, from_image: str, tag: str | None, platform: str | None, creds: Credentials,
                   progress: Callable[[dict[str, Any]], None]) -> str:
        ref = pull_reference(from_image, tag)
        want: Platform | None = parse_platform(platform)
        return await Puller(self.images, self.settings, self.metadata, progress).pull(ref, creds, want)

    async def push(self, name: str, tag: str | None, creds: Credentials,
                   progress: Callable[[dict[str, Any]], None]) -> None:
        await Pusher(self.images, self.settings, self.metadata, progress).push(name, tag, creds)

    async def inspect(self, name: str, creds: Credentials) -> dict[str, Any]:
        """``GET /distribution/{name}/json``: the manifest's descriptor and platforms."""
        from .inspect import inspect

        return await inspect(pull_reference(name, None), creds, self.settings)

    async def login(self, creds: Credentials, server: str) -> dict[str, str]:
        """``docker login``: the registry must accept the credentials at ``/v2/``."""
        domain = registry_domain(server)
        ep = endpoints(domain, self.settings, push=True)[0]
        async with RegistryClient(ep, "", creds, (), self.settings) as client:
            async with client.request("GET", "/v2/") as resp:
                await resp.read()
                if resp.status == 401:
                    raise Unauthorized(f"login attempt to {client.base}/v2/ failed with status: "
                                       f"{resp.status} {resp.reason}")
        return {"Status": "Login Succeeded", "IdentityToken": ""}


def registry_domain(server: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://localhost:5000`` -> ``localhost:5000``."""
    text = (server or "").strip()
    if not text or text in LEGACY_HUB_ADDRESSES:
        return "docker.io"
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    return "docker.io" if text in LEGACY_HUB_ADDRESSES else text
