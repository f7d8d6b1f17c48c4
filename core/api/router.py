"""Serve every route with and without Docker's ``/vX.Y`` prefix.

The router strips the prefix before matching, so each route is registered once and the
version lookup costs one regex on versioned paths only. The middleware reads the version.
"""

from __future__ import annotations

import re

from aiohttp import web

VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(?=/)")


def split_version(path: str) -> tuple[str | None, str]:
    m = VERSION_PREFIX.match(path)
    if m is None:
        return None, path
    return m.group(1), path[m.end():]


class VersionedRouter(web.UrlDispatcher):
    async def resolve(self, request: web.Request) -> web.UrlMappingMatchInfo:  # type: ignore[override]
        version, path = split_version(request.rel_url.path)
        if version is not None:
            request = request.clone(rel_url=request.rel_url.with_path(path))
        return await super().resolve(request)
