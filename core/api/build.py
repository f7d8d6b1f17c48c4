"""Build routes: the classic ``POST /build`` (a tar context in the body, the build stream as
newline-delimited JSON), and a clear refusal of BuildKit (``version=2``, ``POST /session``).

As in moby, an error before the stream has produced anything is an HTTP error (a Dockerfile
syntax error is a 400); after that it is a final ``{"errorDetail": ...}`` line.

Query parameters served: ``dockerfile``, ``t`` (repeatable), ``buildargs``, ``labels``,
``target``, ``nocache``, ``rm``, ``forcerm``, ``pull``, ``q``, ``networkmode``, ``extrahosts``,
``cachefrom``, ``platform`` (the host's only). The ``authorize_container`` hooks see the build's
RUN containers (``networkmode``) before the context is read, and each RUN container as it is
created and started. The RUN containers get ``shmsize``, the resource limits (``memory``,
``memswap``, ``cpu*``), ``cgroupparent`` and ``ulimits``. Accepted and ignored: ``squash``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..http import web

from ..containers import effective
from ..errors import DockyardError, InvalidArgument, NotSupported, Unavailable
from ..images.model import host_arch
from ..images.streams import BodyReader, decompressed
from .middleware import add_common_headers
from .registry import registry_of
from .util import daemon_of, drain_body, query_bool

if TYPE_CHECKING:
    from ..build.builder import Options
    from ..build.cache import BuildCache
    from ..daemon import Daemon

# The builder (dockerfile-parse, the instruction code), the layer extractor and the container
# archive code are imported by the first build: an idle daemon does not hold them (issue 18).

log = logging.getLogger("dockyard.api.build")

routes = web.RouteTableDef()

BUILDKIT = ("BuildKit is not supported by dockyard: use the classic builder "
            "(set DOCKER_BUILDKIT=0 for the docker CLI)")
def _cache(daemon: Daemon) -> BuildCache:
    cache = daemon.build_cache  # built by Daemon.start
    if cache is None:
        raise Unavailable("the build cache is not available on this daemon")
    return cache


def _json_map(request: web.Request, name: str) -> dict[str, Any]:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: not JSON: {raw!r}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid {name}: expected a JSON object")
    return value


def options(request: web.Request) -> Options:
    q = request.query
    if q.get("version") == "2":
        raise NotSupported(BUILDKIT)
    if q.get("remote"):
        raise NotSupported("remote build contexts (git or URL) are not supported: send the context as a tar")
    platform = q.get("platform", "")
    if (platform and platform not in ("linux", f"linux/{host_arch()}")
            and not platform.startswith(f"linux/{host_arch()}/")):
        raise NotSupported(f"platform {platform} is not supported: this daemon builds for linux/{host_arch()} only")
    from ..images import reference as R

    for tag in q.getall("t", []):
        if tag and R.parse(tag).digest is not None:  # a bad name is a 400 before anything is built
            raise InvalidArgument(f"invalid tag {tag!r}: a digest cannot be a tag")
    buildargs = _json_map(request, "buildargs")
    labels = _json_map(request, "labels")
    from ..build.builder import Options

    return Options(
        dockerfile=q.get("dockerfile") or "Dockerfile",
        tags=[t for t in q.getall("t", []) if t],
        buildargs={str(k): (None if v is None else str(v)) for k, v in buildargs.items()},
        labels={str(k): str(v) for k, v in labels.items()},
        target=q.get("target", ""),
        nocache=query_bool(request, "nocache"),
        rm=query_bool(request, "rm", True),
        forcerm=query_bool(request, "forcerm"),
        pull=query_bool(request, "pull"),
        quiet=query_bool(request, "q"),
        networkmode=q.get("networkmode", "") if q.get("networkmode") != "default" else "",
        extrahosts=_extra_hosts(request),
        resources=_resources(request),
        cachefrom=_cache_from(request),
        platform=platform,
        registry_config=_registry_config(request.headers.get("X-Registry-Config")),
    )


def _extra_hosts(request: web.Request) -> list[str]:
    """``extrahosts``: repeated ``name:ip`` (the docker CLI, docker-py); ``name=ip`` too."""
    out = []
    for item in request.query.getall("extrahosts", []):
        item = item.strip()
        if not item:
            continue
        name, sep, ip = item.partition("=") if "=" in item else item.partition(":")
        if not sep or not name or not ip:
            raise InvalidArgument(f"invalid extrahosts {item!r}: expected name:ip")
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip.strip("[]"))
            except ValueError:
                raise InvalidArgument(f"invalid IP address in add-host: {ip!r}") from None
        out.append(f"{name}:{ip.strip('[]')}")
    return out


def _resources(request: web.Request) -> dict[str, Any]:
    """The RUN containers' limits, as the classic builder gives them (``HostConfig`` keys):
    ``shmsize``, ``memory``, ``memswap``, ``cpushares``, ``cpuperiod``, ``cpuquota``,
    ``cpusetcpus``, ``cpusetmems``, ``cgroupparent``, ``ulimits`` (the docker CLI sends the
    numbers as 0 when unset)."""
    from .util import query_int

    out: dict[str, Any] = {}
    for name, key in (("shmsize", "ShmSize"), ("memory", "Memory"), ("memswap", "MemorySwap"),
                      ("cpushares", "CpuShares"), ("cpuperiod", "CpuPeriod"), ("cpuquota", "CpuQuota")):
        value = query_int(request, name, 0)
        if value:
            out[key] = value
    for name, key in (("cpusetcpus", "CpusetCpus"), ("cpusetmems", "CpusetMems"), ("cgroupparent", "CgroupParent")):
        if request.query.get(name):
            out[key] = request.query[name]
    raw = request.query.get("ulimits")
    if raw:
        try:
            ulimits = json.loads(raw)
        except ValueError:
            raise InvalidArgument(f"invalid ulimits: not JSON: {raw!r}") from None
        if ulimits:
            if not isinstance(ulimits, list) or not all(isinstance(u, dict) for u in ulimits):
                raise InvalidArgument("invalid ulimits: expected a JSON list of {Name, Soft, Hard}")
            out["Ulimits"] = ulimits
    return out


def _cache_from(request: web.Request) -> list[str]:
    """``cachefrom``: a JSON list of image references (the docker CLI, docker-py)."""
    raw = request.query.get("cachefrom")
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid cachefrom: not JSON: {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument("invalid cachefrom: expected a JSON list of image names")
    return [v for v in value if v]


def _registry_config(header: str | None) -> dict[str, dict[str, Any]]:
    """``X-Registry-Config``: base64url JSON, registry address -> auth config (used by pull=1)."""
    if not header:
        return {}
    import base64

    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except ValueError:
        raise InvalidArgument("invalid X-Registry-Config header") from None
    out: dict[str, dict[str, Any]] = {}
    for server, auth in (data.items() if isinstance(data, dict) else []):
        if isinstance(auth, dict):
            from ..registry import registry_domain

            out[registry_domain(server)] = auth
    return out


def _receive_context(body: Any, directory: Path) -> None:
    """Unpack the context tar (plain or compressed) with the same checks as image layers."""
    src = decompressed(body)
    with tempfile.TemporaryFile(dir=directory.parent) as spool:
        try:
            while chunk := src.read(1 << 20):
                spool.write(chunk)
        except (EOFError, OSError, ValueError) as exc:
            raise InvalidArgument(f"invalid build context: {exc or type(exc).__name__}") from None
        if spool.tell() == 0:
            return
        # the docker CLI, adding a Dockerfile from outside the context, ends the tar without
        # padding its last member or the end-of-archive blocks (Go's reader accepts that)
        spool.write(b"\0" * (-spool.tell() % 512) + b"\0" * 1024)
        spool.seek(0)
        from .. import layers as L
        from ..containers.archive import _RefuseWhiteouts

        L.extract(spool, directory, _RefuseWhiteouts())  # type: ignore[arg-type]


def error_message(exc: BaseException) -> dict[str, Any]:
    """The stream's last line, as moby's ``streamformatter.FormatError``: a failed RUN's exit
    status is the ``code`` (the docker CLI exits with it), other errors have none."""
    message = str(exc.message if isinstance(exc, DockyardError) else exc)
    detail: dict[str, Any] = {"message": message}
    code = getattr(exc, "code", 0)
    if isinstance(code, int) and code:
        detail = {"code": code, "message": message}
    return {"errorDetail": detail, "error": message}


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    if daemon.images is None or daemon.containers is None:
        raise Unavailable("building needs the image and container services")
    try:
        opts = options(request)
        # the RUN containers' privileges (networkmode host, or container:X that has the host's):
        # a 403 before the context is read; each RUN container is checked again as it is made
        await effective.authorize(daemon, "build", lambda: effective.of_build(daemon.containers, opts.networkmode))
    except DockyardError:
        await drain_body(request)
        raise
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=daemon.images.tmp_dir))
    context = tmp / "context"
    context.mkdir()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    add_common_headers(response)

    async def out(msg: dict[str, Any]) -> None:
        if not response.prepared:
            await response.prepare(request)
        await response.write(json.dumps(msg).encode() + b"\r\n")

    try:
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(_receive_context, BodyReader(request.content, loop), context)
        from ..build.builder import Builder

        await Builder(daemon.images, daemon.containers, registry_of(request), context, opts, out, _cache(daemon)).run()
    except Exception as exc:
        if not response.prepared:
            await drain_body(request)
            raise
        if not isinstance(exc, DockyardError):
            log.exception("build failed")
        await response.write(json.dumps(error_message(exc)).encode() + b"\r\n")
    finally:
        # removed even if the handler is cancelled meanwhile (a client that hangs up on the
        # error line): a cancelled to_thread whose thread had not started would never run it
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, tmp, True))
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


@routes.post("/session")
async def session(request: web.Request) -> web.Response:
    raise NotSupported(BUILDKIT)


@routes.post("/build/prune")
async def prune(request: web.Request) -> web.Response:
    """The classic builder keeps no separate cache storage: its cache is the images."""
    from .util import json_response

    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})
