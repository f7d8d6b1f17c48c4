"""Dockyard's own HTTP/1.1 server (issue 18: idle memory).

:mod:`.web` has the subset of ``aiohttp.web`` names the daemon uses, with the same meaning;
:mod:`.server` is the connection protocol (httptools' llhttp parser on asyncio/uvloop) with
the request limits and the fast path; :mod:`.websocket` the server end of RFC 6455.
"""
