"""The only module of the CLI that speaks HTTP: a small synchronous Docker API client.

Unix sockets and plain TCP use ``http.client``; it is fast to import, which keeps every
command snappy.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any, Iterator
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_HOST = "unix:///run/dockyard.sock"
API_PREFIX = "/v1.44"


class ClientError(Exception):
    """A problem the user can act on; the CLI prints it and exits non-zero."""

    exit_code = 1


class ConnectionFailed(ClientError):
    pass


class APIError(ClientError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error response from daemon: {message}")
        self.status, self.message = status, message


def resolve_host(flag: str | None) -> str:
    return flag or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


class Response:
    def __init__(self, raw: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> None:
        self.raw, self.conn, self.status = raw, conn, raw.status
        self.headers = raw.headers
        self._body: bytes | None = None

    def read(self) -> bytes:
        if self._body is None:
            self._body = self.raw.read()
        return self._body

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data else None

    def iter_json(self) -> Iterator[Any]:
        """Newline-delimited JSON objects, as events, load and pull send them."""
        buf = b""
        while True:
            chunk = self.raw.read1(65536) if hasattr(self.raw, "read1") else self.raw.read(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)
        if buf.strip():
            yield json.loads(buf)

    def iter_chunks(self, size: int = 65536) -> Iterator[bytes]:
        while True:
            chunk = self.raw.read1(size) if hasattr(self.raw, "read1") else self.raw.read(size)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self.conn.close()


class Client:
    def __init__(self, host: str | None = None, timeout: float | None = None) -> None:
        self.host = resolve_host(host)
        self.timeout = timeout
        parts = urlsplit(self.host if "://" in self.host else f"tcp://{self.host}")
        self.scheme = parts.scheme
        if self.scheme == "unix":
            self.path = parts.path
        elif self.scheme in ("tcp", "http"):
            self.addr = (parts.hostname or "127.0.0.1", parts.port or 2375)
        else:
            raise ClientError(f"unsupported host {self.host!r}: use unix:///path or tcp://host:port")

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return UnixHTTPConnection(self.path, timeout=self.timeout)
        return http.client.HTTPConnection(*self.addr, timeout=self.timeout)

    def _explain(self, exc: OSError) -> ConnectionFailed:
        if self.scheme == "unix":
            if isinstance(exc, FileNotFoundError):
                why = f"socket {self.path} not found"
            elif isinstance(exc, PermissionError):
                why = f"permission denied on {self.path} (are you in the socket's group, or root?)"
            else:
                why = str(exc)
        else:
            why = str(exc)
        return ConnectionFailed(f"Cannot connect to dockyardd at {self.host}: {why}. Is dockyardd running?")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        data: bytes | Iterator[bytes] | Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> Response:
        url = API_PREFIX + path
        if params:
            clean = {k: _qs(v) for k, v in params.items() if v is not None}
            if clean:
                url += "?" + urlencode(clean)
        hdrs = dict(headers or {})
        payload: Any = data
        if body is not None:
            payload = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._connection()
        try:
            if payload is not None and not isinstance(payload, (bytes, bytearray)):
                hdrs["Transfer-Encoding"] = "chunked"
                conn.request(method, url, body=payload, headers=hdrs, encode_chunked=True)
            else:
                conn.request(method, url, body=payload, headers=hdrs)
            raw = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise self._explain(exc) from None
        response = Response(raw, conn)
        if raw.status >= 400:
            try:
                message = (response.json() or {}).get("message", raw.reason)
            except ValueError:
                message = raw.reason
            conn.close()
            raise APIError(raw.status, message)
        if not stream:
            response.read()
            conn.close()
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw).json()

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw).json()


def _qs(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def q(name: str) -> str:
    """Quote an object name for use in a path segment."""
    return quote(name, safe="")
