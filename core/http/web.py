"""The ``aiohttp.web`` names the daemon uses, with the same meaning, on our own server.

Handlers change one import line (``from ..http import web``). What is here is the subset
Dockyard uses: :class:`Request` (``match_info``, ``query``, ``headers``, ``content``...),
:class:`StreamResponse`/:class:`Response`/:func:`json_response`, the ``HTTP*`` exceptions,
:class:`Application` (a mapping with :class:`AppKey`), routing (:class:`RouteTableDef`,
:class:`UrlDispatcher`: ``route.resource.canonical`` is the route's template), the
middleware decorator, :class:`AppRunner` and the sites. The connection protocol (parsing,
keep-alive, limits, the fast path) is :mod:`dockyard.http.server`.

Not here: cookies, multipart, compression, static files, sub-apps, a client. A third party's
``aiohttp`` RouteDef is accepted duck-typed (its ``method``, ``path``, ``handler``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Generic, Iterable, Iterator, NamedTuple, TypeVar
from urllib.parse import parse_qsl, unquote

T = TypeVar("T")
Handler = Callable[["Request"], Awaitable["StreamResponse"]]

__all__ = [
    "AbstractRouteDef", "AppKey", "AppRunner", "Application", "BaseSite", "CIMultiDict", "HTTPBadRequest",
    "HTTPException", "HTTPForbidden", "HTTPInternalServerError", "HTTPMethodNotAllowed", "HTTPNotFound",
    "HTTPRequestEntityTooLarge", "HTTPServiceUnavailable", "HttpVersion", "HttpVersion10", "HttpVersion11",
    "MultiDict", "Request", "Response", "RouteDef", "RouteTableDef", "SockSite", "StreamReader",
    "StreamResponse", "TCPSite", "UnixSite", "UrlDispatcher", "UrlMappingMatchInfo",
    "delete", "get", "head", "json_response", "middleware", "patch", "post", "put", "route",
]


class HttpVersion(NamedTuple):
    major: int
    minor: int


HttpVersion10 = HttpVersion(1, 0)
HttpVersion11 = HttpVersion(1, 1)

_REASONS: dict[int, str] = {}


def reason_phrase(status: int) -> str:
    reason = _REASONS.get(status)
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        _REASONS[status] = reason
    return reason


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_date_cache: list[Any] = [-1, ""]


def http_date() -> str:
    """``Date`` as RFC 7231 (IMF-fixdate), made once per second."""
    now = int(time.time())
    if now != _date_cache[0]:
        t = time.gmtime(now)
        _date_cache[:] = [now, f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon]} {t.tm_year} "
                               f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"]
    return _date_cache[1]


# -- multi-valued mappings ----------------------------------------------------------------------


class MultiDict(MutableMapping[str, str]):
    """An ordered multi-valued mapping (``multidict.MultiDict``'s subset): ``d[k]`` and
    ``get`` give the first value, ``getall`` every one; ``add`` appends; ``d[k] = v`` and
    ``update`` replace a key's values."""

    __slots__ = ("_items",)

    @staticmethod
    def _norm(key: str) -> str:
        return key

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._items: list[tuple[str, str, Any]] = []
        if args or kwargs:
            self.extend(*args, **kwargs)

    @staticmethod
    def _pairs(*args: Any, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        for arg in args:
            if arg is None:
                continue
            if isinstance(arg, MultiDict):
                yield from arg.items()
            elif hasattr(arg, "items"):
                yield from arg.items()
            else:
                yield from arg
        yield from kwargs.items()

    def add(self, key: str, value: Any) -> None:
        self._items.append((self._norm(key), key, value))

    def extend(self, *args: Any, **kwargs: Any) -> None:
        norm, items = self._norm, self._items
        for k, v in self._pairs(*args, **kwargs):
            items.append((norm(k), k, v))

    def getall(self, key: str, default: Any = ...) -> list[Any]:
        n = self._norm(key)
        found = [v for k, _, v in self._items if k == n]
        if found:
            return found
        if default is ...:
            raise KeyError(key)
        return default  # type: ignore[no-any-return]

    def getone(self, key: str, default: Any = ...) -> Any:
        n = self._norm(key)
        for k, _, v in self._items:
            if k == n:
                return v
        if default is ...:
            raise KeyError(key)
        return default

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        n = self._norm(key)
        for k, _, v in self._items:
            if k == n:
                return v
        return default

    def __getitem__(self, key: str) -> Any:
        return self.getone(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        n = self._norm(key)
        for k, _, _ in self._items:
            if k == n:
                return True
        return False

    def __setitem__(self, key: str, value: Any) -> None:
        n = self._norm(key)
        items = self._items
        for i, (k, _, _) in enumerate(items):
            if k == n:
                items[i] = (n, key, value)
                items[i + 1:] = [t for t in items[i + 1:] if t[0] != n]
                return
        items.append((n, key, value))

    def __delitem__(self, key: str) -> None:
        n = self._norm(key)
        before = len(self._items)
        self._items = [t for t in self._items if t[0] != n]
        if len(self._items) == before:
            raise KeyError(key)

    def setdefault(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        n = self._norm(key)
        for k, _, v in self._items:
            if k == n:
                return v
        self._items.append((n, key, default))
        return default

    def popone(self, key: str, default: Any = ...) -> Any:
        n = self._norm(key)
        for i, (k, _, v) in enumerate(self._items):
            if k == n:
                del self._items[i]
                return v
        if default is ...:
            raise KeyError(key)
        return default

    def pop(self, key: str, default: Any = ...) -> Any:  # type: ignore[override]
        n = self._norm(key)
        values = [v for k, _, v in self._items if k == n]
        if not values:
            if default is ...:
                raise KeyError(key)
            return default
        self._items = [t for t in self._items if t[0] != n]
        return values[0]

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        new = list(self._pairs(*args, **kwargs))
        if not new:
            return
        norm = self._norm
        keys = {norm(k) for k, _ in new}
        self._items = [t for t in self._items if t[0] not in keys]
        self._items.extend((norm(k), k, v) for k, v in new)

    def __iter__(self) -> Iterator[str]:
        return iter([k for _, k, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:  # type: ignore[override]
        return [k for _, k, _ in self._items]

    def values(self) -> list[Any]:  # type: ignore[override]
        return [v for _, _, v in self._items]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(k, v) for _, k, v in self._items]

    def copy(self) -> "MultiDict":
        new = type(self)()
        new._items = list(self._items)
        return new

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]
        if isinstance(other, dict):
            return dict(self.items()) == other and len(self) == len(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"<{type(self).__name__}({', '.join(f'{k!r}: {v!r}' for k, v in self.items())})>"


class CIMultiDict(MultiDict):
    """:class:`MultiDict` whose keys compare case-insensitively (HTTP headers)."""

    __slots__ = ()

    @staticmethod
    def _norm(key: str) -> str:
        return key.lower()


# -- request body ---------------------------------------------------------------------------------


class StreamReader:
    """A request body as it arrives (aiohttp's ``request.content``), with flow control: the
    connection stops reading the socket while more than ``HIGH_WATER`` bytes wait here."""

    HIGH_WATER = 1 << 18
    LOW_WATER = 1 << 16

    def __init__(self, protocol: Any = None) -> None:
        self._protocol = protocol
        self._buffer: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._exception: BaseException | None = None
        self._paused = False
        self._on_wait: Callable[[], None] | None = None  # Expect: 100-continue: sent at the first wait
        self.total_bytes = 0

    # -- the connection's side --

    def feed_data(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.append(data)
        self._size += len(data)
        self.total_bytes += len(data)
        self._wake()
        if self._size > self.HIGH_WATER and not self._paused and self._protocol is not None:
            self._paused = True
            self._protocol.pause_body()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        self._exception = exc
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(exc)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _consumed(self, n: int) -> None:
        self._size -= n
        if self._paused and self._size < self.LOW_WATER:
            self._paused = False
            if self._protocol is not None:
                self._protocol.resume_body()

    async def _wait(self) -> None:
        if self._exception is not None:
            raise self._exception
        if self._on_wait is not None:
            on_wait, self._on_wait = self._on_wait, None
            on_wait()
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    # -- the handler's side --

    def exception(self) -> BaseException | None:
        return self._exception

    def is_eof(self) -> bool:
        return self._eof

    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    def read_nowait(self, n: int = -1) -> bytes:
        if self._exception is not None:
            raise self._exception
        buf = self._buffer
        if not buf:
            return b""
        if n < 0 or n >= self._size:
            data = buf[0] if len(buf) == 1 else b"".join(buf)
            buf.clear()
        else:
            parts: list[bytes] = []
            need = n
            while need:
                chunk = buf[0]
                if len(chunk) <= need:
                    parts.append(buf.popleft())
                    need -= len(chunk)
                else:
                    parts.append(chunk[:need])
                    buf[0] = chunk[need:]
                    need = 0
            data = b"".join(parts)
        self._consumed(len(data))
        return data

    async def readany(self) -> bytes:
        while not self._buffer and not self._eof:
            await self._wait()
        return self.read_nowait(-1)

    async def read(self, n: int = -1) -> bytes:
        if n == 0:
            return b""
        if n < 0:
            parts: list[bytes] = []
            while True:
                chunk = await self.readany()
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
        while not self._buffer and not self._eof:
            await self._wait()
        return self.read_nowait(n)

    async def readexactly(self, n: int) -> bytes:
        parts: list[bytes] = []
        need = n
        while need > 0:
            chunk = await self.read(need)
            if not chunk:
                partial = b"".join(parts)
                raise asyncio.IncompleteReadError(partial, n)
            parts.append(chunk)
            need -= len(chunk)
        return b"".join(parts)

    async def readline(self) -> bytes:
        parts: list[bytes] = []
        while True:
            while not self._buffer and not self._eof:
                await self._wait()
            if not self._buffer:
                return b"".join(parts)
            chunk = self._buffer[0]
            i = chunk.find(b"\n")
            if i >= 0:
                parts.append(self.read_nowait(i + 1))
                return b"".join(parts)
            parts.append(self.read_nowait(len(chunk)))

    async def iter_chunked(self, n: int) -> Any:
        while True:
            chunk = await self.read(n)
            if not chunk:
                return
            yield chunk

    async def iter_any(self) -> Any:
        while True:
            chunk = await self.readany()
            if not chunk:
                return
            yield chunk

    def __aiter__(self) -> Any:
        return self.iter_any()


class _EmptyStreamReader(StreamReader):
    """The body of a request without one (shared, always at its end)."""

    def __init__(self) -> None:
        super().__init__(None)
        self._eof = True

    def feed_data(self, data: bytes) -> None:  # pragma: no cover - never fed
        raise RuntimeError("a request without a body got body bytes")


EMPTY_PAYLOAD = _EmptyStreamReader()


# -- request ------------------------------------------------------------------------------------


class RelURL:
    """What the code reads of ``request.rel_url`` (yarl's ``URL`` subset): ``path`` (decoded),
    ``raw_path``, ``query_string``, ``query``, ``path_qs``, ``with_path()``."""

    __slots__ = ("path", "raw_path", "query_string", "_query")

    def __init__(self, path: str, raw_path: str, query_string: str) -> None:
        self.path, self.raw_path, self.query_string = path, raw_path, query_string
        self._query: MultiDict | None = None

    @property
    def query(self) -> MultiDict:
        if self._query is None:
            self._query = MultiDict(parse_qsl(self.query_string, keep_blank_values=True))
        return self._query

    @property
    def path_qs(self) -> str:
        return f"{self.raw_path}?{self.query_string}" if self.query_string else self.raw_path

    def with_path(self, path: str) -> "RelURL":
        return RelURL(path, path, "")

    def __str__(self) -> str:
        return self.path_qs

    def __repr__(self) -> str:
        return f"RelURL({self.path_qs!r})"


def parse_target(target: str) -> tuple[str, str, str]:
    """``(decoded path, raw path, query string)`` of a request target."""
    raw, _, qs = target.partition("?")
    raw = raw.partition("#")[0]
    if raw.startswith("http://") or raw.startswith("https://"):  # absolute-form
        rest = raw.split("://", 1)[1]
        raw = "/" + rest.partition("/")[2]
    path = unquote(raw) if "%" in raw else raw
    return path, raw, qs


class StateMapping(MutableMapping[Any, Any]):
    """The mapping of a request's or the app's own state (``request["identity"]``,
    ``app[DAEMON]``), as aiohttp's; always true, even when empty."""

    __slots__ = ()
    _state: dict[Any, Any]

    def __getitem__(self, key: Any) -> Any:
        return self._state[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._state[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._state[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    def __contains__(self, key: object) -> bool:
        return key in self._state

    def get(self, key: Any, default: Any = None) -> Any:
        return self._state.get(key, default)

    def __bool__(self) -> bool:
        return True


class Request(StateMapping):
    """One HTTP request (aiohttp's ``web.Request`` subset); also a mapping for per-request
    state (``request["identity"]``)."""

    __slots__ = ("method", "version", "headers", "keep_alive", "_protocol", "_transport", "_app", "content",
                 "_target", "_path", "_raw_path", "_query_string", "_query", "_rel_url", "_state", "_match_info",
                 "_client_max_size", "_read_bytes", "upgrade", "chunked", "task", "_ct", "__weakref__")

    def __init__(self, method: str, target: str, headers: CIMultiDict, version: HttpVersion, keep_alive: bool,
                 protocol: Any, transport: Any, app: "Application | None", content: StreamReader,
                 upgrade: bool = False, chunked: bool = False) -> None:
        self.method = method
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self._protocol, self._transport, self._app = protocol, transport, app
        self.content = content
        self._target = target
        self._path: str | None = None
        self._raw_path = ""
        self._query_string = ""
        self._query: MultiDict | None = None
        self._rel_url: RelURL | None = None
        self._state: dict[str, Any] = {}
        self._match_info: Any = None
        self._client_max_size = app._client_max_size if app is not None else 1024 ** 2
        self._read_bytes: bytes | None = None
        self.upgrade, self.chunked = upgrade, chunked
        self.task: asyncio.Task[Any] | None = None
        self._ct: tuple[str, dict[str, str]] | None = None

    # -- target --

    def _split(self) -> None:
        self._path, self._raw_path, self._query_string = parse_target(self._target)

    @property
    def path(self) -> str:
        if self._path is None:
            self._split()
        return self._path  # type: ignore[return-value]

    @property
    def raw_path(self) -> str:
        """The target as sent (path and query)."""
        return self._target

    @property
    def query_string(self) -> str:
        if self._path is None:
            self._split()
        return self._query_string

    @property
    def path_qs(self) -> str:
        return self._target

    @property
    def query(self) -> MultiDict:
        if self._query is None:
            self._query = self.rel_url.query
        return self._query

    @property
    def rel_url(self) -> RelURL:
        if self._rel_url is None:
            if self._path is None:
                self._split()
            self._rel_url = RelURL(self._path, self._raw_path, self._query_string)  # type: ignore[arg-type]
        return self._rel_url

    url = rel_url

    @property
    def host(self) -> str:
        return str(self.headers.get("Host", ""))

    # -- connection --

    @property
    def protocol(self) -> Any:
        return self._protocol

    @property
    def transport(self) -> Any:
        return self._transport

    @property
    def app(self) -> "Application":
        return self._app  # type: ignore[return-value]

    @property
    def config_dict(self) -> "Application":
        return self._app  # type: ignore[return-value]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self._transport
        return default if transport is None else transport.get_extra_info(name, default)

    @property
    def remote(self) -> str | None:
        if self._transport is None:
            return None
        peername = self._transport.get_extra_info("peername")
        if isinstance(peername, (list, tuple)):
            return str(peername[0])
        return str(peername) if peername is not None else None

    @property
    def secure(self) -> bool:
        return self._transport is not None and self._transport.get_extra_info("sslcontext") is not None

    @property
    def scheme(self) -> str:
        return "https" if self.secure else "http"

    # -- routing --

    @property
    def match_info(self) -> "UrlMappingMatchInfo":
        return self._match_info  # type: ignore[no-any-return]

    # -- body --

    def _content_type(self) -> tuple[str, dict[str, str]]:
        if self._ct is None:
            raw = self.headers.get("Content-Type")
            if raw is None:
                self._ct = ("application/octet-stream", {})
            else:
                main, *params = raw.split(";")
                parsed = {}
                for p in params:
                    k, _, v = p.partition("=")
                    parsed[k.strip().lower()] = v.strip().strip('"')
                self._ct = (main.strip().lower(), parsed)
        return self._ct

    @property
    def content_type(self) -> str:
        return self._content_type()[0]

    @property
    def charset(self) -> str | None:
        return self._content_type()[1].get("charset")

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            return None

    @property
    def body_exists(self) -> bool:
        return self.content is not EMPTY_PAYLOAD

    has_body = body_exists

    @property
    def can_read_body(self) -> bool:
        return not self.content.at_eof()

    @property
    def client_max_size(self) -> int:
        return self._client_max_size

    async def read(self) -> bytes:
        """The whole body; past ``client_max_size`` (0: no limit) HTTPRequestEntityTooLarge."""
        if self._read_bytes is None:
            body = bytearray()
            limit = self._client_max_size
            while True:
                chunk = await self.content.readany()
                body.extend(chunk)
                if limit and len(body) >= limit:
                    raise HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
                if not chunk:
                    break
            self._read_bytes = bytes(body)
        return self._read_bytes

    async def text(self) -> str:
        body = await self.read()
        return body.decode(self.charset or "utf-8")

    async def json(self, *, loads: Callable[[str], Any] = json.loads) -> Any:
        return loads(await self.text())


    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self._target}>"


# -- responses ----------------------------------------------------------------------------------


class StreamResponse:
    """A response whose body is written piece by piece after :meth:`prepare` (aiohttp's)."""

    _length_check = True  # False: no Content-Length nor chunking (a hijacked or WebSocket stream)

    def __init__(self, *, status: int = 200, reason: str | None = None,
                 headers: Any = None) -> None:
        self._status = status
        self._reason = reason or reason_phrase(status)
        self._headers = CIMultiDict(headers) if headers is not None else CIMultiDict()
        self._chunked = False
        self._keep_alive: bool | None = None
        self._req: Request | None = None
        self._conn: Any = None  # the connection (dockyard.http.server.HttpProtocol) once prepared
        self._eof_sent = False
        self._must_be_empty = False
        self._body_length = 0
        self._state: dict[str, Any] = {}

    # -- status and headers --

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason

    def set_status(self, status: int, reason: str | None = None) -> None:
        if self.prepared:
            raise RuntimeError("Cannot change the response status code after the headers have been sent")
        self._status = status
        self._reason = reason or reason_phrase(status)

    @property
    def headers(self) -> CIMultiDict:
        return self._headers

    @property
    def content_type(self) -> str:
        raw = self._headers.get("Content-Type")
        return raw.split(";")[0].strip() if raw else "application/octet-stream"

    @content_type.setter
    def content_type(self, value: str) -> None:
        charset = self.charset
        self._headers["Content-Type"] = f"{value}; charset={charset}" if charset else str(value)

    @property
    def charset(self) -> str | None:
        raw = self._headers.get("Content-Type")
        if not raw:
            return None
        for p in raw.split(";")[1:]:
            k, _, v = p.partition("=")
            if k.strip().lower() == "charset":
                return v.strip().strip('"')
        return None

    @charset.setter
    def charset(self, value: str | None) -> None:
        ctype = self.content_type
        self._headers["Content-Type"] = f"{ctype}; charset={value}" if value else ctype

    @property
    def content_length(self) -> int | None:
        value = self._headers.get("Content-Length")
        return int(value) if value is not None else None

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        if value is None:
            self._headers.pop("Content-Length", None)
        else:
            self._headers["Content-Length"] = str(int(value))

    @property
    def chunked(self) -> bool:
        return self._chunked

    def enable_chunked_encoding(self, chunk_size: int | None = None) -> None:
        if "Content-Length" in self._headers:
            raise RuntimeError("You can't enable chunked encoding when a content length is set")
        self._chunked = True

    def enable_compression(self, *args: Any, **kwargs: Any) -> None:
        """Accepted and ignored: responses are not compressed."""

    @property
    def keep_alive(self) -> bool | None:
        return self._keep_alive

    def force_close(self) -> None:
        self._keep_alive = False

    @property
    def body_length(self) -> int:
        return self._body_length

    @property
    def prepared(self) -> bool:
        return self._eof_sent or self._conn is not None

    @property
    def task(self) -> "asyncio.Task[Any] | None":
        return self._req.task if self._req is not None else None

    # -- per-response state (aiohttp's responses are mappings too) --

    def __getitem__(self, key: str) -> Any:
        return self._state[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._state[key] = value

    def get(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)

    def __bool__(self) -> bool:
        return True

    # -- writing --

    def _head(self, request: Request) -> bytes:
        """The status line and headers, with aiohttp's rules for the body's framing,
        ``Connection``, ``Date``, ``Server`` and the default ``Content-Type``."""
        headers = self._headers
        version = request.version
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = request.keep_alive
        status = self._status
        empty = self._must_be_empty = (request.method == "HEAD" or status < 200 or status == 204
                                       or status == 304)
        if self._chunked:
            if version != HttpVersion11:
                raise RuntimeError(f"Using chunked encoding is forbidden for HTTP/{version.major}.{version.minor}")
            if not empty:
                headers["Transfer-Encoding"] = "chunked"
            headers.pop("Content-Length", None)
        elif self._length_check and "Content-Length" not in headers:
            if version >= HttpVersion11:
                if not empty:
                    self._chunked = True
                    headers["Transfer-Encoding"] = "chunked"
            else:
                keep_alive = False
        if empty:
            if status < 200 or status == 204:
                headers.pop("Content-Length", None)
            headers.pop("Transfer-Encoding", None)
            self._chunked = False
        self._keep_alive = keep_alive
        headers.setdefault("Content-Type", "application/octet-stream")
        headers.setdefault("Date", http_date())
        headers.setdefault("Server", "Dockyard")
        if "Connection" not in headers:
            if keep_alive:
                if version == HttpVersion10:
                    headers["Connection"] = "keep-alive"
            elif version == HttpVersion11:
                headers["Connection"] = "close"
        lines = [f"HTTP/{version.major}.{version.minor} {status} {self._reason}\r\n"]
        for _, k, v in headers._items:
            lines.append(f"{k}: {v}\r\n")
        lines.append("\r\n")
        head = "".join(lines)
        if head.count("\n") != len(lines) or head.count("\r") != len(lines):
            # a CR or LF inside a name, value or the reason would split the response (aiohttp refuses too)
            raise ValueError("Newline or carriage return character detected in HTTP status message or header")
        try:
            return head.encode("latin-1")
        except UnicodeEncodeError:
            return head.encode("utf-8")

    async def prepare(self, request: Request) -> Any:
        """Send the status line and headers (once)."""
        if self._eof_sent:
            return None
        if self._conn is not None:
            return self._conn
        conn = request._protocol
        head = self._head(request)  # first: a header it refuses leaves the response unsent
        self._req, self._conn = request, conn
        conn.start_response(self, request)
        conn.send(head)
        return conn

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        conn = self._conn
        if conn is None:
            raise RuntimeError("Cannot call write() before prepare()")
        if not data or self._must_be_empty:
            return
        size = len(data)
        self._body_length += size
        if self._chunked:
            conn.send_chunk(data)
        else:
            conn.send(data)
        if conn.writing_paused:
            await conn.drain()

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        if self._conn is None:
            raise RuntimeError("Response has not been started")
        if data:
            await self.write(data)
        if self._chunked and not self._must_be_empty:
            self._conn.send(b"0\r\n\r\n")
        self._eof_sent = True
        if self._conn.writing_paused:
            await self._conn.drain()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._status} {self._reason}>"


class Response(StreamResponse):
    """A response with its whole body (``body`` bytes or ``text``)."""

    def __init__(self, *, body: Any = None, status: int = 200, reason: str | None = None, text: str | None = None,
                 headers: Any = None, content_type: str | None = None, charset: str | None = None) -> None:
        super().__init__(status=status, reason=reason, headers=headers)
        if body is not None and text is not None:
            raise ValueError("body and text are not allowed together")
        if text is not None:
            if not isinstance(text, str):
                raise TypeError(f"text argument must be str ({type(text)!r})")
            if "Content-Type" not in self._headers:
                ctype = content_type or "text/plain"
                self._headers["Content-Type"] = f"{ctype}; charset={charset or 'utf-8'}"
            body = text.encode(charset or "utf-8")
        elif content_type is not None and "Content-Type" not in self._headers:
            self._headers["Content-Type"] = f"{content_type}; charset={charset}" if charset else content_type
        self._body: bytes | None = None
        self.body = body

    @property
    def body(self) -> bytes | None:
        return self._body

    @body.setter
    def body(self, value: Any) -> None:
        if value is None:
            self._body = None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            self._body = bytes(value) if not isinstance(value, bytes) else value
        elif isinstance(value, str):
            raise TypeError("body must be bytes: use text= for a str")
        else:
            raise TypeError(f"unsupported body type {type(value)!r}")

    @property
    def text(self) -> str | None:
        if self._body is None:
            return None
        return self._body.decode(self.charset or "utf-8")

    @text.setter
    def text(self, value: str) -> None:
        if "Content-Type" not in self._headers:
            self._headers["Content-Type"] = "text/plain; charset=utf-8"
        self._body = value.encode(self.charset or "utf-8")

    @property
    def content_length(self) -> int | None:  # type: ignore[override]
        if self._chunked:
            return None
        if "Content-Length" in self._headers:
            return super().content_length
        return len(self._body) if self._body is not None else 0

    @content_length.setter
    def content_length(self, value: int | None) -> None:
        raise RuntimeError("Content length is set automatically")

    def _set_length(self) -> None:
        if not self._chunked and "Content-Length" not in self._headers:
            self._headers["Content-Length"] = str(len(self._body) if self._body is not None else 0)

    async def prepare(self, request: Request) -> Any:
        if self._conn is None and not self._eof_sent:
            self._set_length()
        return await super().prepare(request)

    async def write_eof(self, data: bytes = b"") -> None:
        if self._eof_sent:
            return
        body = self._body
        if body and not self._must_be_empty:
            await super().write_eof(body)
        else:
            await super().write_eof()

    def _send_whole(self, request: Request, conn: Any) -> None:
        """Head and body in one write (the server's path for an unprepared Response)."""
        self._set_length()
        head = self._head(request)  # first: a header it refuses leaves the response unsent
        self._req, self._conn = request, conn
        conn.start_response(self, request)
        body = self._body
        if body and not self._must_be_empty:
            if self._chunked:
                body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            conn.send(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.send(body)
            self._body_length = len(self._body)  # type: ignore[arg-type]
        else:
            conn.send(head + b"0\r\n\r\n" if self._chunked and not self._must_be_empty else head)
        self._eof_sent = True


def json_response(data: Any = ..., *, text: str | None = None, body: bytes | None = None, status: int = 200,
                  reason: str | None = None, headers: Any = None, content_type: str = "application/json",
                  dumps: Callable[[Any], str] = json.dumps) -> Response:
    if data is not ...:
        if text or body:
            raise ValueError("only one of data, text, or body should be specified")
        text = dumps(data)
    return Response(text=text, body=body, status=status, reason=reason, headers=headers,
                    content_type=content_type)


# -- HTTP exceptions (a response one can raise) -------------------------------------------------


class HTTPException(Response, Exception):
    status_code = -1

    def __init__(self, *, headers: Any = None, reason: str | None = None, body: Any = None,
                 text: str | None = None, content_type: str | None = None) -> None:
        if body is None and text is None:
            text = f"{self.status_code}: {reason or reason_phrase(self.status_code)}"
        Response.__init__(self, status=self.status_code, headers=headers, reason=reason, body=body, text=text,
                          content_type=content_type)
        Exception.__init__(self, self.reason)

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.reason}>"

    __hash__ = object.__hash__


class HTTPError(HTTPException):
    pass


class HTTPClientError(HTTPError):
    pass


class HTTPServerError(HTTPError):
    pass


class HTTPBadRequest(HTTPClientError):
    status_code = 400


class HTTPUnauthorized(HTTPClientError):
    status_code = 401


class HTTPForbidden(HTTPClientError):
    status_code = 403


class HTTPNotFound(HTTPClientError):
    status_code = 404


class HTTPMethodNotAllowed(HTTPClientError):
    status_code = 405

    def __init__(self, method: str, allowed_methods: Iterable[str], **kwargs: Any) -> None:
        allow = ",".join(sorted(allowed_methods))
        super().__init__(**kwargs)
        self.headers["Allow"] = allow
        self.allowed_methods = set(allowed_methods)
        self.method = method.upper()


class HTTPRequestTimeout(HTTPClientError):
    status_code = 408


class HTTPConflict(HTTPClientError):
    status_code = 409


class HTTPRequestEntityTooLarge(HTTPClientError):
    status_code = 413

    def __init__(self, max_size: float, actual_size: float, **kwargs: Any) -> None:
        kwargs.setdefault("text", f"Maximum request body size {max_size} exceeded, actual body size {actual_size}")
        super().__init__(**kwargs)


class HTTPRequestURITooLong(HTTPClientError):
    status_code = 414


class HTTPTooManyRequests(HTTPClientError):
    status_code = 429


class HTTPRequestHeaderFieldsTooLarge(HTTPClientError):
    status_code = 431


class HTTPInternalServerError(HTTPServerError):
    status_code = 500


class HTTPNotImplemented(HTTPServerError):
    status_code = 501


class HTTPServiceUnavailable(HTTPServerError):
    status_code = 503


# -- application --------------------------------------------------------------------------------


class AppKey(Generic[T]):
    """A typed key of :class:`Application`'s mapping."""

    __slots__ = ("_name", "_t")

    def __init__(self, name: str, t: Any = None) -> None:
        self._name, self._t = name, t

    def __repr__(self) -> str:
        return f"<AppKey({self._name})>"


def middleware(f: T) -> T:
    """Marks a new-style middleware ``async def m(request, handler)`` (aiohttp's decorator)."""
    f.__middleware_version__ = 1  # type: ignore[attr-defined]
    return f


class Application(StateMapping):
    """The app: a mapping (``app[AppKey]``), a router, middlewares and signals."""

    def __init__(self, *, router: "UrlDispatcher | None" = None, middlewares: Iterable[Any] = (),
                 client_max_size: int = 1024 ** 2, handler_args: Any = None, **kwargs: Any) -> None:
        self.router = router if router is not None else UrlDispatcher()
        self._middlewares = list(middlewares)
        self._client_max_size = client_max_size
        self._state: dict[Any, Any] = {}
        self.on_startup: list[Callable[["Application"], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[["Application"], Awaitable[None]]] = []
        self.on_cleanup: list[Callable[["Application"], Awaitable[None]]] = []
        self.on_response_prepare: list[Any] = []
        self._subapps: list[Any] = []
        self.frozen = False

    @property
    def middlewares(self) -> list[Any]:
        return self._middlewares

    def add_routes(self, routes: Iterable[Any]) -> list[Any]:
        return self.router.add_routes(routes)

    def freeze(self) -> None:
        self.frozen = True

    def handler_for(self, request: Request) -> Handler:
        """The route's handler wrapped in the middlewares (aiohttp's order)."""
        handler = request._match_info.handler
        for m in reversed(self._middlewares):
            handler = _bind(m, handler)
        return handler  # type: ignore[no-any-return]

    async def startup(self) -> None:
        for cb in self.on_startup:
            await cb(self)

    async def shutdown(self) -> None:
        for cb in self.on_shutdown:
            await cb(self)

    async def cleanup(self) -> None:
        for cb in reversed(self.on_cleanup):
            await cb(self)


    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"<Application 0x{id(self):x}>"


def _bind(m: Any, handler: Any) -> Handler:
    async def bound(request: Request) -> StreamResponse:
        return await m(request, handler)  # type: ignore[no-any-return]

    return bound


# -- routing ------------------------------------------------------------------------------------

METH_ANY = "*"
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_VAR = re.compile(r"\{(?P<var>[_a-zA-Z][_a-zA-Z0-9]*)(?::(?P<re>(?:\{[^{}]*\}|[^{}])+))?\}")


class Resource:
    """One path template (``/containers/{id}/json``); ``canonical`` is the template with
    the variables' patterns dropped."""

    __slots__ = ("canonical", "pattern", "routes", "name", "index_key", "_template")

    def __init__(self, path: str, name: str | None = None) -> None:
        self._template, self.name = path, name
        self.routes: list[ResourceRoute] = []
        if "{" not in path:
            self.canonical, self.pattern = path, None
            self.index_key = path
            return
        regex, canonical, pos = "", "", 0
        for m in _VAR.finditer(path):
            regex += re.escape(path[pos:m.start()])
            canonical += path[pos:m.start()]
            regex += f"(?P<{m.group('var')}>{m.group('re') or '[^{}/]+'})"
            canonical += "{" + m.group("var") + "}"
            pos = m.end()
        if "{" in path[pos:] or "}" in path[pos:]:
            raise ValueError(f"Invalid path '{path}'['{path[pos:]}']")
        regex += re.escape(path[pos:])
        canonical += path[pos:]
        self.canonical, self.pattern = canonical, re.compile(regex)
        key = canonical.partition("{")[0].rpartition("/")[0]
        self.index_key = key.rstrip("/") or "/"

    def match(self, path: str) -> dict[str, str] | None:
        if self.pattern is None:
            return {} if path == self.canonical else None
        m = self.pattern.fullmatch(path)
        return m.groupdict() if m is not None else None

    def add_route(self, method: str, handler: Any, expect_handler: Any = None) -> "ResourceRoute":
        for r in self.routes:
            if r.method == method or r.method == METH_ANY:
                raise RuntimeError(f"Added route will never be executed, method {method} is already registered")
        route = ResourceRoute(method, handler, self, expect_handler)
        self.routes.append(route)
        return route

    def __iter__(self) -> Iterator["ResourceRoute"]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)

    def __repr__(self) -> str:
        return f"<Resource {self.canonical}>"


class ResourceRoute:
    __slots__ = ("method", "handler", "resource", "expect_handler")

    def __init__(self, method: str, handler: Any, resource: Resource | None, expect_handler: Any = None) -> None:
        self.method, self.handler, self.resource, self.expect_handler = method, handler, resource, expect_handler

    @property
    def name(self) -> str | None:
        return self.resource.name if self.resource is not None else None

    def __repr__(self) -> str:
        return f"<ResourceRoute [{self.method}] {self.resource!r} -> {self.handler!r}>"


class UrlMappingMatchInfo(dict):  # type: ignore[type-arg]
    """The route a request resolved to and the path's variables (aiohttp's)."""

    __slots__ = ("_route", "_apps", "_frozen")

    def __init__(self, match_dict: dict[str, str], route: Any) -> None:
        super().__init__(match_dict)
        self._route = route
        self._apps: list[Application] = []
        self._frozen = False

    @property
    def route(self) -> Any:
        return self._route

    @property
    def handler(self) -> Any:
        return self._route.handler

    @property
    def expect_handler(self) -> Any:
        return getattr(self._route, "expect_handler", None)

    @property
    def http_exception(self) -> HTTPException | None:
        return None

    @property
    def apps(self) -> tuple[Application, ...]:
        return tuple(self._apps)

    @property
    def current_app(self) -> Application | None:
        return self._apps[-1] if self._apps else None

    def add_app(self, app: Application) -> None:
        if self._frozen:
            raise RuntimeError("Cannot change apps stack after .freeze() call")
        self._apps.insert(0, app)

    def freeze(self) -> None:
        self._frozen = True

    def get_info(self) -> dict[str, Any]:
        resource = self._route.resource
        return {"path": resource.canonical} if resource is not None else {}

    def __repr__(self) -> str:
        return f"<MatchInfo {super().__repr__()}: {self._route}>"


class MatchInfoError(UrlMappingMatchInfo):
    """No route: its handler raises the exception (404, 405); ``route.resource`` is None."""

    __slots__ = ("_exception",)

    def __init__(self, exception: HTTPException) -> None:
        self._exception = exception

        async def raise_it(request: Request) -> StreamResponse:
            raise exception

        super().__init__({}, ResourceRoute("*", raise_it, None))

    @property
    def http_exception(self) -> HTTPException:
        return self._exception


class UrlDispatcher:
    """Routes by method and path template, resolved as aiohttp does (a path's deepest
    static prefix first, then registration order; plain paths before templates)."""

    def __init__(self) -> None:
        self._resources: list[Resource] = []
        self._index: dict[str, list[Resource]] = {}
        self._named: dict[str, Resource] = {}

    def resources(self) -> list[Resource]:
        return list(self._resources)

    def routes(self) -> list[ResourceRoute]:
        return [r for res in self._resources for r in res.routes]

    def __iter__(self) -> Iterator[str]:
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)

    def __getitem__(self, name: str) -> Resource:
        return self._named[name]

    def add_resource(self, path: str, *, name: str | None = None) -> Resource:
        if path and not path.startswith("/"):
            raise ValueError("path should be started with / or be empty")
        if self._resources:
            last = self._resources[-1]
            if last.name == name and last._template == path:
                return last
        resource = Resource(path, name)
        self._resources.append(resource)
        self._index.setdefault(resource.index_key, []).append(resource)
        if name:
            self._named[name] = resource
        return resource

    def add_route(self, method: str, path: str, handler: Any, *, name: str | None = None,
                  expect_handler: Any = None, **kwargs: Any) -> ResourceRoute:
        return self.add_resource(path, name=name).add_route(method.upper(), handler, expect_handler)

    def add_get(self, path: str, handler: Any, *, name: str | None = None, allow_head: bool = True,
                **kwargs: Any) -> ResourceRoute:
        resource = self.add_resource(path, name=name)
        if allow_head:
            resource.add_route("HEAD", handler, kwargs.get("expect_handler"))
        return resource.add_route("GET", handler, kwargs.get("expect_handler"))

    def add_head(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("HEAD", path, handler, **kwargs)

    def add_post(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("POST", path, handler, **kwargs)

    def add_put(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("PUT", path, handler, **kwargs)

    def add_patch(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("PATCH", path, handler, **kwargs)

    def add_delete(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("DELETE", path, handler, **kwargs)

    def add_options(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("OPTIONS", path, handler, **kwargs)

    def add_routes(self, routes: Iterable[Any]) -> list[Any]:
        """Our RouteDefs, or anything with ``method``, ``path`` and ``handler`` (a third
        party's aiohttp RouteDef: its handler gets our Request)."""
        registered: list[Any] = []
        for r in routes:
            if isinstance(r, AbstractRouteDef):
                registered.extend(r.register(self))
                continue
            method, path, handler = getattr(r, "method", None), getattr(r, "path", None), getattr(r, "handler", None)
            if not isinstance(method, str) or not isinstance(path, str) or not callable(handler):
                raise TypeError(f"not a route definition: {r!r} (want method, path and handler)")
            registered.extend(RouteDef(method, path, _foreign_handler(handler),
                                       dict(getattr(r, "kwargs", None) or {})).register(self))
        return registered

    def lookup(self, method: str, path: str) -> UrlMappingMatchInfo:
        """The match for ``method`` on the (decoded) ``path``: a route, or a 404/405 error."""
        allowed: set[str] = set()
        index = self._index
        part = path
        while part:
            for resource in index.get(part, ()):
                values = resource.match(path)
                if values is None:
                    continue
                for route in resource.routes:
                    if route.method == method or route.method == METH_ANY:
                        return UrlMappingMatchInfo(values, route)
                    allowed.add(route.method)
            if part == "/":
                break
            part = part.rpartition("/")[0] or "/"
        if allowed:
            return MatchInfoError(HTTPMethodNotAllowed(method, allowed))
        return MatchInfoError(HTTPNotFound())

    def match_request(self, request: Request) -> UrlMappingMatchInfo:
        """What the server calls for each request (override to rewrite the path first)."""
        return self.lookup(request.method, request.path)

    async def resolve(self, request: Any) -> UrlMappingMatchInfo:
        """aiohttp's signature: ``request`` needs ``method`` and ``rel_url.path``."""
        return self.lookup(request.method, request.rel_url.path)

    def freeze(self) -> None:
        pass


_FOREIGN_DROP = frozenset(("content-length", "transfer-encoding", "connection"))


def _foreign_response(obj: Any) -> bool:
    """An aiohttp Response or HTTPException (not ours): a status, headers and a body."""
    return (not isinstance(obj, StreamResponse) and isinstance(getattr(obj, "status", None), int)
            and hasattr(obj, "headers") and hasattr(obj, "body"))


class _ForeignHTTPError(HTTPException):
    def __init__(self, status: int, **kwargs: Any) -> None:
        self.status_code = status
        super().__init__(**kwargs)


def _adopt(r: Any, error: bool = False) -> Response:
    """Our Response (or HTTPException) with what an aiohttp one says; a streamed aiohttp body
    cannot be taken over (such a handler must be ported to this module)."""
    body = r.body
    if body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"{type(r).__name__} with a streamed body: port the handler to dockyard.http.web")
    headers = [(k, v) for k, v in r.headers.items() if k.lower() not in _FOREIGN_DROP]
    if error:
        return _ForeignHTTPError(r.status, headers=headers, reason=r.reason, body=bytes(body or b""))
    return Response(status=r.status, reason=r.reason, headers=headers, body=body)


def _foreign_handler(handler: Any) -> Handler:
    """A third party's aiohttp route handler: it gets our Request; an aiohttp response it
    returns, or HTTP exception it raises, is answered as ours."""
    async def adapted(request: Request) -> StreamResponse:
        try:
            response = await handler(request)
        except HTTPException:
            raise
        except Exception as exc:
            if _foreign_response(exc):
                raise _adopt(exc, error=True) from None  # type: ignore[misc]  # an HTTPException
            raise
        return _adopt(response) if _foreign_response(response) else response  # type: ignore[no-any-return]

    adapted.__name__ = getattr(handler, "__name__", "handler")
    adapted.__doc__ = getattr(handler, "__doc__", None)
    return adapted


class AbstractRouteDef:
    def register(self, router: UrlDispatcher) -> list[Any]:
        raise NotImplementedError


class RouteDef(AbstractRouteDef):
    __slots__ = ("method", "path", "handler", "kwargs")

    def __init__(self, method: str, path: str, handler: Any, kwargs: dict[str, Any] | None = None) -> None:
        self.method, self.path, self.handler, self.kwargs = method, path, handler, kwargs or {}

    def register(self, router: UrlDispatcher) -> list[Any]:
        method = self.method.upper()
        if method == "GET":
            return [router.add_get(self.path, self.handler, **self.kwargs)]
        return [router.add_route(method, self.path, self.handler, **self.kwargs)]

    def __repr__(self) -> str:
        return f"<RouteDef {self.method} {self.path} -> {getattr(self.handler, '__name__', self.handler)!r}>"


class RouteTableDef:
    """``routes = RouteTableDef()`` then ``@routes.get("/path")`` (aiohttp's)."""

    def __init__(self) -> None:
        self._items: list[AbstractRouteDef] = []

    def route(self, method: str, path: str, **kwargs: Any) -> Callable[[T], T]:
        def inner(handler: T) -> T:
            self._items.append(RouteDef(method, path, handler, kwargs))
            return handler

        return inner

    def head(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("HEAD", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Callable[[T], T]:
        return self.route("OPTIONS", path, **kwargs)

    def __iter__(self) -> Iterator[AbstractRouteDef]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> AbstractRouteDef:
        return self._items[index]


def route(method: str, path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return RouteDef(method, path, handler, kwargs)


def head(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("HEAD", path, handler, **kwargs)


def get(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("GET", path, handler, **kwargs)


def post(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("POST", path, handler, **kwargs)


def put(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("PUT", path, handler, **kwargs)


def patch(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("PATCH", path, handler, **kwargs)


def delete(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("DELETE", path, handler, **kwargs)


# -- running ------------------------------------------------------------------------------------


class AppRunner:
    """Serves an app on sites (aiohttp's). ``limits`` (:class:`dockyard.api.limits.Limits`)
    and ``fast_path`` (a callable making :class:`dockyard.api.fastpath.FastPath`, or None)
    go to every connection; ``access_log`` is a logger for one line per request, or None."""

    def __init__(self, app: Application, *, handle_signals: bool = False, access_log: Any = None,
                 shutdown_timeout: float = 60.0, keepalive_timeout: float = 75.0, limits: Any = None,
                 fast_path: Any = None, **kwargs: Any) -> None:
        self._app = app
        self._kwargs = kwargs
        self.access_log = access_log
        self.shutdown_timeout = shutdown_timeout
        self.keepalive_timeout = keepalive_timeout
        self.limits = limits
        self.fast_path_factory = fast_path
        self._server: Any = None
        self._sites: list[BaseSite] = []

    @property
    def app(self) -> Application:
        return self._app

    @property
    def server(self) -> Any:
        return self._server

    @property
    def sites(self) -> set["BaseSite"]:
        return set(self._sites)

    @property
    def addresses(self) -> list[Any]:
        return [s.address for s in self._sites if s.address is not None]

    async def setup(self) -> None:
        self._app.freeze()
        await self._app.startup()
        self._server = self._make_server()

    def _make_server(self) -> Any:
        from .server import Server

        fast = self.fast_path_factory() if self.fast_path_factory is not None and self.access_log is None else None
        return Server(self._app, limits=self.limits, fast=fast, access_log=self.access_log,
                      keepalive_timeout=self.keepalive_timeout)

    async def shutdown(self) -> None:
        await self._app.shutdown()

    async def cleanup(self) -> None:
        for site in list(self._sites):
            await site.stop()
        await self.shutdown()
        if self._server is not None:
            await self._server.shutdown(self.shutdown_timeout)
        await self._app.cleanup()
        self._server = None


class BaseSite:
    """A listening socket for a runner (aiohttp's)."""

    def __init__(self, runner: AppRunner, *, shutdown_timeout: float = 60.0, ssl_context: Any = None,
                 backlog: int = 128) -> None:
        if runner.server is None:
            raise RuntimeError("Call runner.setup() before making a site")
        self._runner = runner
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._server: asyncio.base_events.Server | None = None  # type: ignore[name-defined]
        self.address: Any = None

    @property
    def name(self) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        self._runner._sites.append(self)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self in self._runner._sites:
            self._runner._sites.remove(self)


class TCPSite(BaseSite):
    def __init__(self, runner: AppRunner, host: str | None = None, port: int | None = None, *,
                 shutdown_timeout: float = 60.0, ssl_context: Any = None, backlog: int = 128,
                 reuse_address: bool | None = None, reuse_port: bool | None = None) -> None:
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port if port is not None else (8443 if ssl_context else 8080)
        self._reuse_address, self._reuse_port = reuse_address, reuse_port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = "0.0.0.0" if not self._host else self._host
        return f"{scheme}://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._runner.server, self._host, self._port, ssl=self._ssl_context,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)
        if self._server.sockets:
            self.address = self._server.sockets[0].getsockname()


class UnixSite(BaseSite):
    def __init__(self, runner: AppRunner, path: str, *, shutdown_timeout: float = 60.0, ssl_context: Any = None,
                 backlog: int = 128) -> None:
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context, backlog=backlog)
        self._path = path

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://unix:{self._path}:"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._runner.server, self._path, ssl=self._ssl_context,
                                                     backlog=self._backlog)
        self.address = self._path


class SockSite(BaseSite):
    def __init__(self, runner: AppRunner, sock: Any, *, shutdown_timeout: float = 60.0, ssl_context: Any = None,
                 backlog: int = 128) -> None:
        super().__init__(runner, shutdown_timeout=shutdown_timeout, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock
        scheme = "https" if ssl_context else "http"
        try:
            addr = sock.getsockname()
        except OSError:
            addr = None
        if isinstance(addr, tuple):
            self._name = f"{scheme}://{addr[0]}:{addr[1]}"
        else:
            self._name = f"{scheme}://unix:{addr}:"

    @property
    def name(self) -> str:
        return self._name

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._runner.server, sock=self._sock, ssl=self._ssl_context,
                                                backlog=self._backlog)
        self.address = self._sock.getsockname()


def __getattr__(name: str) -> Any:
    if name == "WebSocketResponse":  # loaded on first use: an idle daemon has no WebSocket
        from .websocket import WebSocketResponse

        return WebSocketResponse
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
