"""A Distribution API v2 client for one repository on one registry, on aiohttp.

``RegistryClient`` pings ``/v2/`` once, answers the challenge it gets (``Basic``: the
credentials; ``Bearer``: a token from the realm for the scopes the operation needs; none:
anonymous) and then serves manifests and blobs, downloads (verified, retried and resumed
with ``Range``) and uploads (monolithic or chunked, cross-repository mounts).

Which scheme: ``https`` always, except for insecure registries (``insecure-registries``,
``localhost`` and ``127.0.0.0/8`` by default, as dockerd), where an https attempt without
certificate checks falls back to plain http.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
from yarl import URL

from ..errors import DockyardError, Forbidden, InvalidArgument, NotFound, Unauthorized, Unavailable
from ..images.store import DigestMismatch
from .auth import Credentials, parse_challenge

log = logging.getLogger("dockyard.registry")

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
LIST_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((*MANIFEST_TYPES, *LIST_TYPES))
MAX_MANIFEST = 4 << 20  # distribution's own client limit
MAX_CONFIG = 16 << 20
CHUNK = 1 << 20
DOCKER_HUB = "docker.io"
DOCKER_HUB_ENDPOINT = "registry-1.docker.io"


class RegistryUnavailable(Unavailable):
    """The registry could not be reached, or broke off, after every attempt."""


class BadManifest(InvalidArgument):
    pass


@dataclass(frozen=True)
class Settings:
    """What the daemon config says about registries (dockerd's ``daemon.json`` names)."""

    mirrors: tuple[str, ...] = ()  # registry-mirrors: used for docker.io pulls
    insecure: tuple[str, ...] = ()  # insecure-registries: host[:port] or CIDR
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    read_timeout: float = 60.0  # seconds without a byte before a transfer counts as stalled
    chunk_size: int = 16 << 20  # chunked uploads: bytes per PATCH
    monolithic_max: int = 8 << 20  # blobs up to this size go in one PUT

    @classmethod
    def from_config(cls, config: Any) -> "Settings":
        values: dict[str, Any] = {}
        for name in ("mirrors", "insecure", "max_concurrent_downloads", "max_concurrent_uploads",
                     "max_download_attempts", "read_timeout"):
            attr = {"mirrors": "registry_mirrors", "insecure": "insecure_registries",
                    "read_timeout": "registry_read_timeout"}.get(name, name)
            value = getattr(config, attr, None)
            if value is not None:
                values[name] = tuple(value) if isinstance(value, (list, tuple)) else value
        return cls(**values)


def is_insecure(host: str, insecure: tuple[str, ...]) -> bool:
    """dockerd's rule: loopback registries, listed ``host[:port]`` and addresses in listed CIDRs."""
    if host in insecure:
        return True
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    for entry in insecure:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port]
    scheme: str | None = None  # None: https, with the insecure fallback when allowed
    insecure: bool = False
    mirror: bool = False


def endpoints(domain: str, settings: Settings, push: bool = False) -> list[Endpoint]:
    """Where to talk to for a reference's domain: mirrors first (docker.io pulls), then the registry."""
    out = []
    if domain == DOCKER_HUB and not push:
        for m in settings.mirrors:
            url = URL(m if "://" in m else f"https://{m}")
            host = (url.host or "") + (f":{url.explicit_port}" if url.explicit_port else "")
            out.append(Endpoint(host, url.scheme, is_insecure(host, settings.insecure), mirror=True))
    host = DOCKER_HUB_ENDPOINT if domain == DOCKER_HUB else domain
    out.append(Endpoint(host, None, is_insecure(host, settings.insecure)))
    return out


def _error_text(status: int, reason: str, body: bytes) -> str:
    """A registry's ``{"errors": [{"code", "message"}]}`` as Docker prints it."""
    try:
        errors = json.loads(body).get("errors") or []
        parts = [f"{str(e.get('code', '')).lower().replace('_', ' ')}: {e.get('message', '')}" for e in errors]
        if parts:
            return ", ".join(parts)
    except (ValueError, AttributeError):
        pass
    if status == 401:
        return "unauthorized: authentication required"
    if status == 403:
        return "denied: requested access to the resource is denied"
    return f"received unexpected HTTP status: {status} {reason}"


def error_for(status: int, text: str) -> DockyardError:
    if status == 401:
        return Unauthorized(text)
    if status == 403:
        return Forbidden(text)
    if status == 404:
        return NotFound(text)
    if status in (400, 405, 413, 415):
        return InvalidArgument(text)
    return RegistryUnavailable(text)


async def raise_for(resp: aiohttp.ClientResponse, prefix: str = "") -> None:
    body = await resp.content.read(64 << 10)
    text = _error_text(resp.status, resp.reason or "", body)
    raise error_for(resp.status, prefix + text)


class ShortRead(Exception):
    pass


@dataclass
class RegistryClient:
    """One repository on one endpoint, for one operation. Use as ``async with``."""

    endpoint: Endpoint
    repository: str  # path inside the registry: library/busybox
    credentials: Credentials = field(default_factory=Credentials)
    actions: tuple[str, ...] = ("pull",)
    settings: Settings = field(default_factory=Settings)
    extra_scopes: tuple[str, ...] = ()  # e.g. repository:other:pull for cross-repository mounts
    base: URL | None = None
    authorization: str | None = None
    session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "RegistryClient":
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=self.settings.read_timeout)
        self.session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        try:
            await self._ping()
        except BaseException:
            await self.session.close()
            raise
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def display(self) -> str:
        return f"{self.base or self.endpoint.host}"

    # -- connection and authentication ----------------------------------------------------------

    async def _ping(self) -> None:
        assert self.session is not None
        schemes = [self.endpoint.scheme] if self.endpoint.scheme else (
            ["https", "http"] if self.endpoint.insecure else ["https"])
        last: Exception | None = None
        for scheme in schemes:
            base = URL(f"{scheme}://{self.endpoint.host}")
            try:
                async with self.session.get(base / "v2/", ssl=False if self.endpoint.insecure else True,
                                            allow_redirects=False) as resp:
                    await resp.read()
                    self.base = base
                    if resp.status == 401:
                        await self._authenticate(resp.headers.get("WWW-Authenticate", ""))
                    elif resp.status >= 400 and resp.status != 404:
                        raise RegistryUnavailable(f"{base / 'v2/'}: received unexpected HTTP status: "
                                                  f"{resp.status} {resp.reason}")
                    return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last = exc
        raise RegistryUnavailable(f"Get \"{URL(f'{schemes[-1]}://{self.endpoint.host}') / 'v2/'}\": "
                                  f"{last or 'unreachable'}")

    def scopes(self) -> list[str]:
        if not self.repository or not self.actions:  # docker login: no scope
            return list(self.extra_scopes)
        return [f"repository:{self.repository}:{','.join(self.actions)}", *self.extra_scopes]

    async def _authenticate(self, challenge: str) -> None:
        scheme, params = parse_challenge(challenge)
        creds = self.credentials
        if scheme == "basic":
            self.authorization = None if creds.anonymous else creds.basic()
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryUnavailable(f"unsupported authentication challenge from {self.endpoint.host}: {challenge!r}")
        if creds.registry_token:
            self.authorization = f"Bearer {creds.registry_token}"
            return
        self.authorization = f"Bearer {await self._token(params)}"

    async def _token(self, params: dict[str, str]) -> str:
        assert self.session is not None
        realm = URL(params["realm"])
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        creds = self.credentials
        if creds.identity_token:  # OAuth2 refresh token, as docker login stores for Hub
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                    "service": params.get("service", ""), "client_id": "dockyard", "scope": " ".join(self.scopes())}
            req = self.session.post(realm, data=form, ssl=False if self.endpoint.insecure else True)
        else:
            query.extend(("scope", s) for s in self.scopes())
            if creds.username:
                query.append(("account", creds.username))
            headers = {} if creds.anonymous else {"Authorization": creds.basic()}
            req = self.session.get(realm.with_query(query), headers=headers,
                                   ssl=False if self.endpoint.insecure else True)
        try:
            async with req as resp:
                if resp.status != 200:
                    await raise_for(resp, f"failed to authorize at {realm}: ")
                data = json.loads(await resp.content.read(1 << 20))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RegistryUnavailable(f"failed to fetch a token from {realm}: {exc}") from None
        except ValueError:
            raise RegistryUnavailable(f"the token server {realm} answered something else than JSON") from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryUnavailable(f"the token server {realm} answered no token")
        return str(token)

    def request(self, method: str, url: URL | str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        assert self.session is not None and self.base is not None
        h = dict(headers or {})
        if self.authorization:
            h["Authorization"] = self.authorization
        target = url if isinstance(url, URL) else self.base.join(URL(url))
        return self.session.request(method, target, headers=h, ssl=False if self.endpoint.insecure else True, **kw)

    def repo_url(self, *parts: str, repository: str | None = None) -> URL:
        assert self.base is not None
        return self.base.with_path("/v2/" + (repository or self.repository) + "/" + "/".join(parts), encoded=False)

    # -- manifests ---------------------------------------------------------------------------------

    async def get_manifest(self, reference: str, what: str) -> tuple[bytes, str, str]:
        """(body, media type, digest) of a manifest by tag or digest; ``what`` names it in errors."""
        try:
            async with self.request("GET", self.repo_url("manifests", reference), {"Accept": ACCEPT}) as resp:
                if resp.status == 404:
                    body = await resp.content.read(64 << 10)
                    raise NotFound(f"manifest for {what} not found: {_error_text(404, resp.reason or '', body)}")
                if resp.status != 200:
                    await raise_for(resp)
                if resp.content_length is not None and resp.content_length > MAX_MANIFEST:
                    raise BadManifest(f"manifest for {what} is too large: {resp.content_length} bytes "
                                      f"(limit {MAX_MANIFEST})")
                body = await read_limited(resp, MAX_MANIFEST,
                                          f"manifest for {what} is too large (limit {MAX_MANIFEST} bytes)")
                media = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RegistryUnavailable(f"fetching the manifest for {what} failed: {exc or type(exc).__name__}") from None
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise DigestMismatch(f"manifest verification failed for digest {reference}: the registry sent {digest}")
        try:
            declared = json.loads(body).get("mediaType")
        except (ValueError, AttributeError):
            raise BadManifest(f"manifest for {what} is not valid JSON") from None
        return body, declared or media, digest

    async def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        async with self.request("PUT", self.repo_url("manifests", reference), {"Content-Type": media_type},
                                data=body) as resp:
            if resp.status not in (200, 201, 202):
                await raise_for(resp)
            await resp.read()
            return resp.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    # -- blobs: download -------------------------------------------------------------------------------

    async def get_small_blob(self, digest: str, limit: int, what: str) -> bytes:
        try:
            async with self.request("GET", self.repo_url("blobs", digest)) as resp:
                if resp.status != 200:
                    await raise_for(resp, f"fetching {what} {digest}: ")
                data = await read_limited(resp, limit, f"{what} {digest} is too large (limit {limit} bytes)")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RegistryUnavailable(f"fetching {what} {digest} failed: {exc or type(exc).__name__}") from None
        got = "sha256:" + hashlib.sha256(data).hexdigest()
        if got != digest:
            raise DigestMismatch(f"{what} verification failed for digest {digest}: the registry sent {got}")
        return data

    async def download_blob(self, digest: str, size: int | None, dest: Path,
                            on_progress: Callable[[int], None]) -> None:
        """Stream a blob into ``dest`` (see :meth:`stream_blob`)."""
        with open(dest, "wb") as f:
            async def sink(chunk: bytes) -> None:
                f.write(chunk)

            await self.stream_blob(digest, size, sink, on_progress)

    async def stream_blob(self, digest: str, size: int | None, sink: Callable[[bytes], Awaitable[None]],
                          on_progress: Callable[[int], None]) -> None:
        """Hand a blob to ``sink`` chunk by chunk, hashing as it comes; raises DigestMismatch
        at the end if the content is not ``digest`` (the sink must not commit before this
        returns). On a broken or stalled transfer retry, resuming with ``Range``; a registry
        that ignores ``Range`` sends it all again and the part already handed on is skipped
        (the blob is content-addressed: the same bytes, checked by the final digest)."""
        h = hashlib.sha256()
        written = 0
        attempts = max(1, self.settings.max_download_attempts)
        for attempt in range(attempts):
            try:
                headers = {"Range": f"bytes={written}-"} if written else {}
                async with self.request("GET", self.repo_url("blobs", digest), headers) as resp:
                    skip = 0
                    if resp.status == 200 and written:  # no ranges: skip what the sink already has
                        skip = written
                    elif resp.status not in (200, 206):
                        if resp.status >= 500:
                            raise ShortRead(f"received unexpected HTTP status: {resp.status} {resp.reason}")
                        await raise_for(resp, f"fetching blob {digest}: ")
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        h.update(chunk)
                        written += len(chunk)
                        if size is not None and written > size:
                            raise DigestMismatch(f"filesystem layer verification failed for digest {digest}: "
                                                 f"more than the {size} bytes the manifest declares")
                        await sink(chunk)
                        on_progress(written)
                if size is not None and written < size:
                    raise ShortRead(f"unexpected EOF after {written} of {size} bytes")
                break
            except (aiohttp.ClientError, asyncio.TimeoutError, ShortRead, OSError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, asyncio.TimeoutError):
                    reason = f"no data for {self.settings.read_timeout:g}s"
                if attempt + 1 >= attempts:
                    raise RegistryUnavailable(f"failed to download blob {digest} from {self.display} after "
                                              f"{attempts} attempt(s): {reason}") from None
                log.info("blob %s: attempt %d failed (%s); retrying", digest, attempt + 1, reason)
                await asyncio.sleep(min(0.2 * 2 ** attempt, 5.0))
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise DigestMismatch(f"filesystem layer verification failed for digest {digest}: the content is {got}")

    # -- blobs: upload ------------------------------------------------------------------------------

    async def blob_size(self, digest: str) -> int | None:
        """``HEAD``: the blob's size if the repository has it, else None."""
        async with self.request("HEAD", self.repo_url("blobs", digest)) as resp:
            if resp.status == 200:
                return int(resp.headers.get("Content-Length") or 0)
            if resp.status == 404:
                return None
            await raise_for(resp, f"checking blob {digest}: ")
        return None

    async def start_upload(self, mount: tuple[str, str] | None = None) -> tuple[URL | None, bool]:
        """``POST .../blobs/uploads/``; with ``mount=(digest, from repo)`` try a cross-repository
        mount first. Returns (upload location, mounted)."""
        url = self.repo_url("blobs", "uploads", "")
        if mount is not None:
            url = url.with_query({"mount": mount[0], "from": mount[1]})
        async with self.request("POST", url, {"Content-Length": "0"}) as resp:
            await resp.read()
            if resp.status == 201 and mount is not None:
                return None, True
            if resp.status != 202:
                await raise_for(resp, "starting an upload: ")
            return self._location(resp), False

    def _location(self, resp: aiohttp.ClientResponse) -> URL:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryUnavailable("the registry answered an upload without a Location")
        assert self.base is not None
        return self.base.join(URL(loc, encoded=True))

    async def upload_file(self, location: URL, path: Path, digest: str, size: int,
                          on_progress: Callable[[int], None]) -> None:
        """Monolithic (one ``PUT``) for small blobs, chunked (``PATCH`` per chunk, then ``PUT``) for large."""
        try:
            if size <= self.settings.monolithic_max:
                data = path.read_bytes()
                await self._finish(location, digest, data)
                on_progress(size)
                return
            sent = 0
            with open(path, "rb") as f:
                while chunk := f.read(self.settings.chunk_size):
                    headers = {"Content-Type": "application/octet-stream",
                               "Content-Range": f"{sent}-{sent + len(chunk) - 1}"}
                    async with self.request("PATCH", location, headers, data=chunk) as resp:
                        await resp.read()
                        if resp.status != 202:
                            await raise_for(resp, f"uploading blob {digest}: ")
                        location = self._location(resp)
                    sent += len(chunk)
                    on_progress(sent)
            await self._finish(location, digest, b"")
        except BaseException:
            await self.cancel_upload(location)
            raise

    async def upload_stream(self, location: URL, chunks: AsyncIterator[bytes],
                            on_progress: Callable[[int], None]) -> tuple[URL, str, int]:
        """``PATCH`` the bytes of ``chunks`` (regrouped into ``chunk_size`` requests) as they
        come, hashing them. Returns (location, digest, size); the caller checks what it sent,
        then ends the upload with :meth:`finish_upload` (or :meth:`cancel_upload`)."""
        h = hashlib.sha256()
        sent = 0
        buf = bytearray()

        async def patch(data: bytes) -> None:
            nonlocal location, sent
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Range": f"{sent}-{sent + len(data) - 1}"}
            async with self.request("PATCH", location, headers, data=data) as resp:
                await resp.read()
                if resp.status != 202:
                    await raise_for(resp, "uploading a blob: ")
                location = self._location(resp)
            sent += len(data)
            on_progress(sent)

        async for chunk in chunks:
            h.update(chunk)
            buf += chunk
            if len(buf) >= self.settings.chunk_size:
                data, buf = bytes(buf), bytearray()
                await patch(data)
        if buf:
            await patch(bytes(buf))
        return location, "sha256:" + h.hexdigest(), sent

    async def finish_upload(self, location: URL, digest: str) -> None:
        try:
            await self._finish(location, digest, b"")
        except BaseException:
            await self.cancel_upload(location)
            raise

    async def upload_bytes(self, location: URL, data: bytes, digest: str) -> None:
        try:
            await self._finish(location, digest, data)
        except BaseException:
            await self.cancel_upload(location)
            raise

    async def _finish(self, location: URL, digest: str, data: bytes) -> None:
        url = location.update_query({"digest": digest})
        async with self.request("PUT", url, {"Content-Type": "application/octet-stream"}, data=data) as resp:
            await resp.read()
            if resp.status not in (201, 204):
                await raise_for(resp, f"uploading blob {digest}: ")

    async def cancel_upload(self, location: URL) -> None:
        try:
            async with self.request("DELETE", location) as resp:
                await resp.read()
        except Exception:  # best effort: the registry expires abandoned uploads anyway
            pass


async def read_limited(resp: aiohttp.ClientResponse, limit: int, message: str) -> bytes:
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise BadManifest(message)
    return bytes(buf)
