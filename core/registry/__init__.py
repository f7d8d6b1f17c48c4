"""Registries: pull, push and login over the Distribution API v2 (``client.py``), with the
daemon's ``registry-mirrors`` and ``insecure-registries``."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from ..errors import Unauthorized
from .auth import Credentials, decode_registry_auth
from .metadata import DistributionMetadata

if TYPE_CHECKING:
    from ..images.service import ImageService
    from .client import Settings
    from .pull import Platform

__all__ = ["Credentials", "RegistryService", "Settings", "decode_registry_auth", "parse_platform", "pull_reference"]

# The HTTP client, pull and push code (and isal for push) are imported by the first pull, push,
# login or inspect: an idle daemon does not hold them (issue 18).
_LAZY = {"Settings": "client", "RegistryClient": "client", "endpoints": "client", "Platform": "pull",
         "Puller": "pull", "parse_platform": "pull", "pull_reference": "pull", "Pusher": "push"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

LEGACY_HUB_ADDRESSES = ("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io")


class RegistryService:
    def __init__(self, images: ImageService, config: Any) -> None:
        self.images = images
        self.config = config
        self.metadata = DistributionMetadata(images.root)

    @functools.cached_property
    def settings(self) -> Settings:
        from .client import Settings

        return Settings.from_config(self.config)

    async def pull(self, from_image: str, tag: str | None, platform: str | None, creds: Credentials,
                   progress: Callable[[dict[str, Any]], None]) -> str:
        from .pull import Puller, parse_platform, pull_reference

        ref = pull_reference(from_image, tag)
        want: Platform | None = parse_platform(platform)
        return await Puller(self.images, self.settings, self.metadata, progress).pull(ref, creds, want)

    async def push(self, name: str, tag: str | None, creds: Credentials,
                   progress: Callable[[dict[str, Any]], None]) -> None:
        from .push import Pusher

        await Pusher(self.images, self.settings, self.metadata, progress).push(name, tag, creds)

    async def inspect(self, name: str, creds: Credentials) -> dict[str, Any]:
        """``GET /distribution/{name}/json``: the manifest's descriptor and platforms."""
        from .inspect import inspect
        from .pull import pull_reference

        return await inspect(pull_reference(name, None), creds, self.settings)

    async def login(self, creds: Credentials, server: str) -> dict[str, str]:
        """``docker login``: the registry must accept the credentials at ``/v2/``."""
        from .client import RegistryClient, endpoints

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
