"""The default ``handle_exception``: Docker's ``{"message": ...}`` body with the error's status.

Registered as the ``builtin_errors`` entry point in ``dockyard.hooks`` and marked
``trylast``, so any plugin's renderer answers first.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..errors import DockyardError
from ..hookspecs import hookimpl

if TYPE_CHECKING:  # hook modules are imported by the CLI too: keep the server out of it
    from ..http import web

log = logging.getLogger("dockyard.api")


@hookimpl(trylast=True)
def handle_exception(request: "web.Request", exception: BaseException) -> "web.Response":
    from ..http import web

    from ..api.util import json_response

    if isinstance(exception, DockyardError):
        status, message = exception.status, exception.message
        if status >= 500:
            log.error("%s %s: %s", request.method, request.path, message)
    else:
        status, message = 500, f"{type(exception).__name__}: {exception}"
        log.error("%s %s failed", request.method, request.path, exc_info=exception)
    if status == 304:
        return web.Response(status=304)
    return json_response({"message": message}, status=status)
