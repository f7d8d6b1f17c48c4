"""Serve every route with and without Docker's ``/vX.Y`` prefix.

The router strips the prefix before matching, so each route is registered once; the
version it found is left in ``request["api_version_raw"]`` for the middleware.
"""

from __future__ import annotations

from ..http import web
from ..versions import split_version


class VersionedRouter(web.UrlDispatcher):
    def match_request(self, request: web.Request) -> web.UrlMappingMatchInfo:
        version, path = split_version(request.path)
        request["api_version_raw"] = version
        return self.lookup(request.method, path)

    async def resolve(self, request: web.Request) -> web.UrlMappingMatchInfo:  # type: ignore[override]
        return self.match_request(request)
