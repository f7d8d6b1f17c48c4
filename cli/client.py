"""The only module of the CLI that speaks HTTP: a small synchronous Docker API client.

Unix sockets, plain TCP and TLS use ``http.client``; it is fast to import, which keeps every
command snappy. TLS follows the docker CLI: ``--tls`` encrypts, ``--tlsverify`` (or
``DOCKER_TLS_VERIFY``) also verifies the daemon against ``--tlscacert``; the client certificate
and key are presented when given; files default to ``$DOCKER_CERT_PATH`` (else ``~/.docker``)
``/ca.pem``, ``cert.pem``, ``key.pem``. ``DOCKYARD_TLS_VERIFY`` / ``DOCKYARD_CERT_PATH`` win over
the ``DOCKER_`` ones, as ``DOCKYARD_HOST`` does over ``DOCKER_HOST``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class TLSConfig:
    """TLS towards the daemon, as the docker CLI does it."""

    verify: bool = False
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None

    @classmethod
    def resolve(cls, tls: bool = False, tlsverify: bool = False, cacert: str | None = None,
                cert: str | None = None, key: str | None = None) -> "TLSConfig | None":
        """Flags first, then the environment; None when TLS is off."""
        env_verify = os.environ.get("DOCKYARD_TLS_VERIFY", os.environ.get("DOCKER_TLS_VERIFY", ""))
        verify = tlsverify or env_verify != ""
        if not (tls or verify or cacert or cert or key):
            return None
        base = Path(os.environ.get("DOCKYARD_CERT_PATH") or os.environ.get("DOCKER_CERT_PATH")
                    or Path.home() / ".docker")

        def pick(given: str | None, name: str) -> str | None:
            default = base / name
            return given or (str(default) if default.exists() else None)

        return cls(verify, pick(cacert, "ca.pem"), pick(cert, "cert.pem"), pick(key, "key.pem"))

    def context(self) -> ssl.SSLContext:
        """The client's SSL context; a missing or bad file is a :class:`ClientError`."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.verify:
            if self.cacert is None:
                raise ClientError("TLS: --tlsverify needs the daemon's CA certificate: --tlscacert, "
                                  "or ca.pem in $DOCKER_CERT_PATH or ~/.docker")
            try:
                ctx.load_verify_locations(cafile=self.cacert)
            except (OSError, ssl.SSLError) as exc:
                raise ClientError(f"TLS: cannot load CA certificate {self.cacert}: {exc}") from None
        else:  # docker --tls: encrypted, the daemon's certificate is not checked
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if (self.cert is None) != (self.key is None):
            raise ClientError("TLS: a client certificate needs its key (--tlscert and --tlskey)")
        if self.cert and self.key:
            try:
                ctx.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise ClientError(f"TLS: cannot load client certificate {self.cert} / {self.key}: {exc}") from None
        return ctx


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


class SSHHTTPConnection(http.client.HTTPConnection):
    """HTTP over ``ssh [-l user] [-p port] -- host dockyard system dial-stdio`` (docker's ssh://)."""

    def __init__(self, client: "Client", timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.client = client

    def connect(self) -> None:
        self.sock = self.client._ssh_socket()


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
                if getattr(self.raw, "length", None):  # a Content-Length body cut short (read1 says nothing)
                    raise ClientError(f"the daemon's answer was cut short ({self.raw.length} bytes missing)")
                return
            yield chunk

    def close(self) -> None:
        self.conn.close()


class Client:
    def __init__(self, host: str | None = None, timeout: float | None = None,
                 tls: TLSConfig | None = None) -> None:
        self.host = resolve_host(host)
        self.timeout = timeout
        parts = urlsplit(self.host if "://" in self.host else f"tcp://{self.host}")
        self.scheme = parts.scheme
        self.tls = tls if tls is not None else TLSConfig.resolve()
        if self.scheme in ("https", "tls") and self.tls is None:
            self.tls = TLSConfig()
        self.ssl_context: ssl.SSLContext | None = None
        if self.scheme == "unix":
            self.path = parts.path
            self.tls = None
        elif self.scheme in ("tcp", "http", "https", "tls"):
            self.addr = (parts.hostname or "127.0.0.1", parts.port or (2376 if self.tls else 2375))
        elif self.scheme == "ssh":
            if not parts.hostname:
                raise ClientError(f"invalid ssh URL {self.host!r}: no host")
            self.tls = None
            self.ssh_argv = ["ssh", "-o", "ConnectTimeout=30"]
            if parts.username:
                self.ssh_argv += ["-l", parts.username]
            if parts.port:
                self.ssh_argv += ["-p", str(parts.port)]
            self.ssh_argv += ["--", parts.hostname, "dockyard", "system", "dial-stdio"]
            self.ssh_procs: list[Any] = []
        else:
            raise ClientError(f"unsupported host {self.host!r}: use unix:///path, tcp://host:port or ssh://[user@]host[:port]")

    def _ssh_socket(self) -> socket.socket:
        """One end of a socket pair whose other end is the stdin/stdout of ``ssh ... dial-stdio``."""
        import subprocess
        import tempfile

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        errors = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(self.ssh_argv, stdin=theirs, stdout=theirs, stderr=errors, start_new_session=True)
        except OSError as exc:
            ours.close()
            raise ClientError(f"Cannot connect to {self.host}: {' '.join(self.ssh_argv[:1])}: {exc}") from None
        finally:
            theirs.close()
        proc.errors = errors  # type: ignore[attr-defined]
        self.ssh_procs.append(proc)
        if self.timeout is not None:
            ours.settimeout(self.timeout)
        return ours

    def _ssh_stderr(self) -> str:
        for proc in reversed(getattr(self, "ssh_procs", [])):
            try:
                proc.wait(timeout=5)
            except Exception:
                continue
            proc.errors.seek(0)
            text = proc.errors.read().decode(errors="replace").strip()
            if text:
                return text
        return ""

    def _ssl(self) -> ssl.SSLContext:
        if self.ssl_context is None:
            assert self.tls is not None
            self.ssl_context = self.tls.context()
        return self.ssl_context

    def _connection(self) -> http.client.HTTPConnection:
        if self.scheme == "ssh":
            return SSHHTTPConnection(self, timeout=self.timeout)
        if self.scheme == "unix":
            return UnixHTTPConnection(self.path, timeout=self.timeout)
        if self.tls is not None:
            return http.client.HTTPSConnection(*self.addr, timeout=self.timeout, context=self._ssl())
        return http.client.HTTPConnection(*self.addr, timeout=self.timeout)

    def _explain(self, exc: OSError) -> ConnectionFailed:
        if self.scheme == "ssh":
            why = self._ssh_stderr() or str(exc) or type(exc).__name__
            return ConnectionFailed(f"Cannot connect to dockyardd at {self.host}: ssh: {why}")
        if self.scheme == "unix":
            if isinstance(exc, FileNotFoundError):
                why = f"socket {self.path} not found"
            elif isinstance(exc, PermissionError):
                why = f"permission denied on {self.path} (are you in the socket's group, or root?)"
            else:
                why = str(exc)
        elif isinstance(exc, ssl.SSLError):
            why = f"TLS: {exc.reason or exc}"
        else:
            why = str(exc)
        if isinstance(exc, ssl.SSLError):  # it is running, and the TLS setup is wrong
            return ConnectionFailed(f"Cannot connect to dockyardd at {self.host}: {why}")
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

    def hijack(self, path: str, **kw: Any) -> "Hijacked":
        """An upgraded (attach) connection; see :func:`hijack`."""
        return hijack(self, path, **kw)


def _qs(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def q(name: str) -> str:
    """Quote an object name for use in a path segment."""
    return quote(name, safe="")


class Hijacked:
    """A connection taken over after ``101 UPGRADED``: raw bytes both ways (attach)."""

    def __init__(self, sock: socket.socket, early: bytes, headers: dict[str, str]) -> None:
        self.sock, self._early, self.headers = sock, early, headers

    def recv(self, size: int = 65536) -> bytes:
        """The next bytes the daemon sent; ``b""`` once it closed the stream."""
        if self._early:
            data, self._early = self._early, b""
            return data
        try:
            return self.sock.recv(size)
        except (ConnectionResetError, ssl.SSLEOFError):  # SSLEOFError: TLS ended without close_notify
            return b""

    def close_write(self) -> None:
        """Tell the daemon there is no stdin to come (docker's CloseWrite). On TLS too this
        half-closes the TCP connection itself, as docker does: ``SSLSocket.shutdown`` would
        drop the TLS session and with it the output still to come."""
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _raw_socket(client: "Client") -> socket.socket:
    if client.scheme == "ssh":
        return client._ssh_socket()
    if client.scheme == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: Any = client.path
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in client.addr[0] else socket.AF_INET, socket.SOCK_STREAM)
        target = client.addr
    if client.timeout is not None:
        sock.settimeout(client.timeout)
    try:
        sock.connect(target)
        if client.tls is not None:
            sock = client._ssl().wrap_socket(sock, server_hostname=client.addr[0])
    except OSError as exc:  # ssl.SSLError is an OSError
        sock.close()
        raise client._explain(exc) from None
    return sock


def hijack(client: "Client", path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Hijacked:
    """``POST path`` with ``Connection: Upgrade``/``Upgrade: tcp``; after the daemon's ``101``
    (or a plain ``200`` from daemons that do not upgrade) the socket carries the raw stream.
    An error status raises :class:`APIError` with the daemon's message."""
    url = API_PREFIX + path
    if params:
        clean = {k: _qs(v) for k, v in params.items() if v is not None}
        if clean:
            url += "?" + urlencode(clean)
    payload = json.dumps(body).encode() if body is not None else b""
    host = "localhost" if client.scheme in ("unix", "ssh") else f"{client.addr[0]}:{client.addr[1]}"
    head = (f"POST {url} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dockyard-cli\r\n"
            f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(payload)}\r\n"
            + ("Content-Type: application/json\r\n" if body is not None else "") + "\r\n")
    sock = _raw_socket(client)
    try:
        sock.sendall(head.encode() + payload)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ClientError("the daemon closed the connection before answering the attach request")
            buf += chunk
            if len(buf) > 1 << 20:
                raise ClientError("the daemon's answer to the attach request has no end of headers")
        head_bytes, rest = buf.split(b"\r\n\r\n", 1)
        lines = head_bytes.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise ClientError(f"malformed answer from the daemon: {lines[0]!r}") from None
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if status >= 400:
            length = int(headers.get("content-length") or -1)
            while length < 0 or len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
            if "chunked" in headers.get("transfer-encoding", "").lower():
                rest = _dechunk(rest)
            try:
                message = (json.loads(rest) or {}).get("message") or (parts[2] if len(parts) > 2 else "")
            except ValueError:
                message = parts[2] if len(parts) > 2 else str(status)
            raise APIError(status, message)
        if status not in (101, 200):
            raise ClientError(f"unexpected answer to the attach request: {lines[0]}")
    except OSError as exc:
        sock.close()
        raise client._explain(exc) from None
    except ClientError:
        sock.close()
        raise
    sock.settimeout(None)
    return Hijacked(sock, rest, headers)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if not size:
            break
        out, data = out + data[:size], data[size + 2:]
    return out
