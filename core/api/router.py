"""Serve every route with and without Docker's ``/vX.Y`` prefix.

The router strips the prefix before matching, so each route is registered once; the
version it found is left in ``request["api_version_raw"]`` for the middleware.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..versions import split_version


class _Unversioned:
    """What route resolution reads from a request, with the prefix gone (cheaper than a clone)."""

    __slots__ = ("rel_url", "method")

    def __init__(self, rel_url: Any, method: str) -> None:
        self.rel_url, self.method = rel_url, method


class VersionedRouter(web.UrlDispatcher):
    async def resolve(self, request: web.Request) -> web.UrlMappingMatchInfo:  # type: ignore[override]
        version, path = split_version(request.rel_url.path)
        request["api_version_raw"] = version
        if version is not None:
            return await super().resolve(_Unversioned(request.rel_url.with_path(path), request.method))  # type: ignore[arg-type]
        return await super().resolve(request)
