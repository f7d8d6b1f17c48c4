"""The privileges a container really gets, for authorization.

A request names options (``--privileged``, ``-v``, ``--mount``, ``--network container:X``,
``--security-opt``...); many roads lead to the same privilege: a ``local`` volume with
``o=bind,device=/`` is a bind of ``/``, ``--network container:X`` is the host's network when X
has it, empty ``MaskedPaths`` are ``systempaths=unconfined``. :class:`Privileges` names the
privilege, whatever the road, and is computed after every default and reference is resolved:

* :func:`of_container`: a container about to be created or started (its mount plan, named
  volumes' driver options, ``container:X`` namespaces followed to what X really has: its
  record, transitively, and the kernel's namespace of X when it runs).
* :func:`of_exec`: an exec gets its container's privileges, and all of them with ``Privileged``.
* :func:`of_volume`: what mounting a volume with these driver options reaches on the host.
* :func:`of_build`: the build's RUN containers (``networkmode``); each RUN container is also
  checked as a container when it is created and started.
* :func:`requested`: what a request body asks for, read alone (no daemon state: ``container:X``
  and named volumes are not resolved). For an early answer before the handler runs; the
  effective check comes later and decides.

:func:`authorize` hands the effective privileges to the ``authorize_container`` hooks, with
the request being served (``REQUEST``, set by the API middleware). Actions the daemon takes on
its own (restart policies, live-restore) have no request and are not authorized again.
"""

from __future__ import annotations

import contextvars
import logging
import os
import posixpath
from dataclasses import dataclass
from typing import Any, Iterable

from ..drivers.runtime import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from ..runtime import capabilities as caps

log = logging.getLogger("dockyard.authz")

#: The request being served (set by the API middleware around each handler).
REQUEST: contextvars.ContextVar[Any] = contextvars.ContextVar("dockyard_request", default=None)

#: Namespace kinds and the HostConfig field that chooses each.
NAMESPACE_FIELDS = {"net": "NetworkMode", "pid": "PidMode", "ipc": "IpcMode", "uts": "UTSMode",
                    "user": "UsernsMode", "cgroup": "CgroupnsMode"}
#: Kinds a container may take from another one with ``container:X``.
JOINABLE = ("net", "pid", "ipc")
UNCONFINED = ("seccomp", "apparmor", "label", "systempaths")
MS_BIND = 4096


@dataclass(frozen=True)
class Privileges:
    """What a container gets beyond a default container of this daemon.

    * ``privileged``: ``--privileged`` (which also fills every other field: all capabilities,
      every device under ``/dev``, every confinement off).
    * ``host_namespaces``: kinds shared with the host: ``net``, ``pid``, ``ipc``, ``uts``,
      ``user`` (``--userns host``), ``cgroup`` (only where the default is a private one).
    * ``host_paths``: real host paths reachable from the container (binds, ``--mount
      type=bind``, volumes whose driver mounts a host path or device, ``--volumes-from``
      sources), each resolved with ``realpath`` on the host: no ``..``, ``//`` or symlink left.
      ``/`` stands for "anything": a volume mounting a filesystem whose reach is unknown.
    * ``capabilities``: capabilities beyond Docker's default set (``CAP_`` names).
    * ``devices``: host device paths (realpath) and ``rule:<device cgroup rule>`` entries.
    * ``unconfined``: confinement turned off: ``seccomp`` (unconfined or a custom profile),
      ``apparmor`` (unconfined or another profile), ``label`` (any SELinux label option),
      ``systempaths`` (``/proc``/``/sys`` paths not masked or not read-only).
    """

    privileged: bool = False
    host_namespaces: frozenset[str] = frozenset()
    host_paths: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    devices: tuple[str, ...] = ()
    unconfined: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.privileged or self.host_namespaces or self.host_paths or self.capabilities
                    or self.devices or self.unconfined)

    def __or__(self, other: "Privileges") -> "Privileges":
        return Privileges(
            privileged=self.privileged or other.privileged,
            host_namespaces=self.host_namespaces | other.host_namespaces,
            host_paths=tuple(dict.fromkeys([*self.host_paths, *other.host_paths])),
            capabilities=self.capabilities | other.capabilities,
            devices=tuple(dict.fromkeys([*self.devices, *other.devices])),
            unconfined=self.unconfined | other.unconfined,
        )

    def to_json(self) -> dict[str, Any]:
        return {"privileged": self.privileged, "host_namespaces": sorted(self.host_namespaces),
                "host_paths": list(self.host_paths), "capabilities": sorted(self.capabilities),
                "devices": list(self.devices), "unconfined": sorted(self.unconfined)}


NONE = Privileges()


def _privileged() -> Privileges:
    extra = frozenset(caps.all_caps()) - frozenset(caps.DOCKER_DEFAULT)
    return Privileges(privileged=True, capabilities=extra, devices=("/dev",), unconfined=frozenset(UNCONFINED))


def host_path(path: str) -> str:
    """``path`` as the host resolves it: absolute, symlinks followed, no ``.``/``..``/``//``
    or trailing slash. A relative path is resolved against ``/`` (the daemon's view), never
    against the caller's directory: the caller cannot choose where it points."""
    text = str(path)
    if not text.startswith("/"):
        text = "/" + text
    return os.path.realpath(text)


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a list of strings")
    return value


# -- the pieces ---------------------------------------------------------------------------------


def _capabilities(hc: dict[str, Any]) -> frozenset[str]:
    add = _strings(hc.get("CapAdd"), "CapAdd")
    drop = _strings(hc.get("CapDrop"), "CapDrop")
    try:
        got = caps.resolve(add, drop)
    except Exception:  # an unknown name: the daemon refuses it (400); count what is asked
        got = [("CAP_" + c.upper()) if not c.upper().startswith("CAP_") else c.upper() for c in add]
    return frozenset(got) - frozenset(caps.DOCKER_DEFAULT)


def _devices(hc: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    devices = hc.get("Devices") or []
    if not isinstance(devices, list):
        raise ValueError("Devices must be a list")
    for d in devices:
        if isinstance(d, dict):
            out.append(host_path(str(d.get("PathOnHost") or "/")))
        elif isinstance(d, str):  # "HOST[:CONTAINER[:PERMS]]"
            out.append(host_path(d.split(":", 1)[0] or "/"))
        else:
            raise ValueError("Devices entries must be objects")
    for rule in _strings(hc.get("DeviceCgroupRules"), "DeviceCgroupRules"):
        out.append(f"rule:{rule}")
    return tuple(dict.fromkeys(out))


def _unconfined(hc: dict[str, Any]) -> frozenset[str]:
    out: set[str] = set()
    for opt in _strings(hc.get("SecurityOpt"), "SecurityOpt"):
        sep = "=" if "=" in opt else ":" if ":" in opt else None
        key, value = (opt.split(sep, 1) if sep else (opt, ""))
        key = key.strip().lower()
        if key == "seccomp" and value.strip() not in ("", "builtin", "default"):
            out.add("seccomp")  # unconfined, or a profile whose reach the policy cannot judge
        elif key == "apparmor" and value.strip() not in ("", "docker-default"):
            out.add("apparmor")
        elif key == "label":
            out.add("label")  # disable, or a type/user/role/level of the caller's choosing
        elif key == "systempaths" and value.strip() == "unconfined":
            out.add("systempaths")
        elif key not in ("no-new-privileges", "seccomp", "apparmor", "systempaths"):
            out.add(key or opt)  # unknown to the policy: the daemon refuses it; count it
    for what, default in (("MaskedPaths", DEFAULT_MASKED_PATHS), ("ReadonlyPaths", DEFAULT_READONLY_PATHS)):
        paths = hc.get(what)
        if paths is None:
            continue
        given = {posixpath.normpath(p) for p in _strings(paths, what)}
        if not set(default) <= given:  # the docker CLI sends [] for systempaths=unconfined
            out.add("systempaths")
    return frozenset(out)


def _mode(hc: dict[str, Any], kind: str) -> str:
    value = hc.get(NAMESPACE_FIELDS[kind])
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{NAMESPACE_FIELDS[kind]} must be a string")
    return value or ""


def _static_namespaces(hc: dict[str, Any]) -> frozenset[str]:
    """Kinds the request itself names as ``host`` (``container:X`` is resolved later)."""
    return frozenset(k for k in NAMESPACE_FIELDS if _mode(hc, k).strip().lower() == "host")


def of_volume(driver: str | None, options: dict[str, Any] | None) -> Privileges:
    """What a volume of ``driver`` with these driver options reaches on the host.

    ``local`` without options: a directory of the daemon's, nothing. ``type=tmpfs``: nothing.
    A bind (``o=bind``/``rbind``, or ``type=none|bind``): the device's real path. Another
    filesystem with an absolute device (a block device, a directory): that path, plus every
    absolute path in its data (overlay's ``lowerdir=``...). Anything else (nfs, an unknown
    driver with options): ``/``, as the policy cannot know what it reaches.
    """
    if not options:
        return NONE
    if not isinstance(options, dict):
        raise ValueError("DriverOpts must be an object")
    opts = {str(k): str(v) for k, v in options.items()}
    if (driver or "local") != "local":
        return Privileges(host_paths=("/",))
    from ..volumes.local import parse_mount_options

    kind = opts.get("type", "").strip()
    device = opts.get("device", "").strip()
    flags, data = parse_mount_options(opts.get("o", ""))
    if flags & MS_BIND or kind in ("none", "bind", "rbind"):
        return Privileges(host_paths=(host_path(device) if device.startswith("/") else "/",))
    if kind == "tmpfs" or (not kind and not device):
        return NONE
    paths = [device] if device.startswith("/") else []
    for word in data.split(","):
        _, _, value = word.partition("=")
        paths.extend(p for p in value.split(":") if p.startswith("/"))
    if not paths:
        return Privileges(host_paths=("/",))
    return Privileges(host_paths=tuple(dict.fromkeys(host_path(p) for p in paths)))


def _base(hc: dict[str, Any]) -> Privileges:
    """Everything but namespaces and paths, from a HostConfig."""
    if not isinstance(hc, dict):
        raise ValueError("HostConfig must be an object")
    privileged = hc.get("Privileged")
    if privileged not in (None, False, 0, ""):  # the daemon takes "Privileged": 1 as privileged
        return _privileged()
    return Privileges(capabilities=_capabilities(hc), devices=_devices(hc), unconfined=_unconfined(hc))


def _static_paths(hc: dict[str, Any]) -> list[str]:
    paths: list[str] = []
    for spec in _strings(hc.get("Binds"), "Binds"):
        source = spec.split(":", 1)[0] if ":" in spec else ""
        if source.startswith("/"):
            paths.append(host_path(source))
    mounts = hc.get("Mounts") or []
    if not isinstance(mounts, list):
        raise ValueError("Mounts must be a list")
    for m in mounts:
        if not isinstance(m, dict):
            raise ValueError("Mounts entries must be objects")
        kind = m.get("Type")
        if kind == "bind":
            paths.append(host_path(str(m.get("Source") or "/")))
        elif kind == "volume":
            dc = (m.get("VolumeOptions") or {}).get("DriverConfig") or {}
            paths.extend(of_volume(dc.get("Name"), dc.get("Options")).host_paths)
        elif kind not in ("tmpfs", None):
            paths.append("/")  # a type the policy does not know
    return paths


def requested(route: str, body: Any, query: Any = None) -> Privileges:
    """What the request asks for by itself, before the daemon resolves anything. Raises
    ValueError for a body not shaped as the daemon takes it (callers fail closed)."""
    query = query or {}
    if route == "/build":
        mode = str(query.get("networkmode") or "")
        return Privileges(host_namespaces=frozenset({"net"}) if mode.lower() == "host" else frozenset())
    if body is None:
        return NONE
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    if route == "/containers/create":
        hc = body.get("HostConfig")
        hc = {} if hc is None else hc
        base = _base(hc)
        return base | Privileges(host_namespaces=_static_namespaces(hc),
                                 host_paths=tuple(dict.fromkeys(_static_paths(hc))))
    if route == "/containers/{id}/exec":
        return _privileged() if body.get("Privileged") not in (None, False, 0, "") else NONE
    if route == "/volumes/create":
        return of_volume(body.get("Driver"), body.get("DriverOpts"))
    return NONE


# -- resolved against the daemon's state -----------------------------------------------------------


def _same_as_host(pid: int, kind: str) -> bool:
    """Whether process ``pid`` is in the daemon's (the host's) namespace of ``kind``."""
    try:
        theirs = os.stat(f"/proc/{pid}/ns/{kind}")
        ours = os.stat(f"/proc/self/ns/{kind}")
    except OSError:
        return False
    return (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino)


def namespace_is_host(containers: Any, hc: dict[str, Any], kind: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a container with HostConfig ``hc`` gets the host's namespace of ``kind``:
    ``host``, or ``container:X`` where X has it (X's record, followed transitively, and the
    kernel's view of X's namespace when X runs). An X that does not exist yet is not the
    host (starting then fails, or is checked again)."""
    mode = _mode(hc, kind).strip()
    if mode.lower() == "host":
        return True
    if not mode.startswith("container:") or kind not in JOINABLE:
        return False
    from ..errors import DockyardError

    try:
        other = containers.get(mode.split(":", 1)[1])
    except DockyardError:
        return False
    if other.id in seen:
        return False
    if other.pid and _same_as_host(other.pid, kind):
        return True
    return namespace_is_host(containers, other.host_config or {}, kind, seen | {other.id})


def _volume_paths(volumes: Any, point: dict[str, Any]) -> Privileges:
    name = point.get("Name") or ""
    record = getattr(volumes, "records", {}).get(name) if name else None
    if record is not None:
        return of_volume(record.get("Driver"), record.get("Options"))
    return of_volume(point.get("Driver"), point.get("driver_opts"))  # created with the container


def of_container(containers: Any, host_config: dict[str, Any], mount_points: Iterable[dict[str, Any]]) -> Privileges:
    """The effective privileges of a container with ``host_config`` and these mount records
    (``mounts.plan``'s at create, ``Container.mounts`` at start)."""
    hc = host_config
    base = _base(hc)
    kinds = {k for k in ("net", "pid", "ipc") if namespace_is_host(containers, hc, k)}
    kinds |= {k for k in ("uts", "user") if _mode(hc, k).strip().lower() == "host"}
    if _mode(hc, "cgroup") == "host":
        from .cgroupview import default_mode

        version = getattr(getattr(containers, "cgroups", None), "version", 1)
        if default_mode(version) != "host":  # the host's is this daemon's default on cgroup v1
            kinds.add("cgroup")
    paths: list[str] = []
    extra = NONE
    volumes = getattr(getattr(containers, "daemon", None), "volumes", None)
    for point in mount_points:
        if point.get("Type") == "bind":
            paths.append(host_path(point.get("Source") or "/"))
        elif point.get("Type") == "volume":
            extra = extra | _volume_paths(volumes, point)
    return base | extra | Privileges(host_namespaces=frozenset(kinds), host_paths=tuple(dict.fromkeys(paths)))


def of_record(containers: Any, c: Any) -> Privileges:
    """The effective privileges of an existing container (at start, restart, exec)."""
    return of_container(containers, c.host_config or {}, c.mounts or [])


def of_exec(containers: Any, c: Any, privileged: Any) -> Privileges:
    got = of_record(containers, c)
    return got | _privileged() if privileged not in (None, False, 0, "") else got


def of_build(containers: Any, networkmode: str) -> Privileges:
    """A build's RUN containers: the build's network mode resolved like a container's."""
    hc = {"NetworkMode": networkmode or "default"}
    host = namespace_is_host(containers, hc, "net")
    return Privileges(host_namespaces=frozenset({"net"}) if host else frozenset())


# -- asking the hooks --------------------------------------------------------------------------------


def wanted(daemon: Any) -> bool:
    """Whether any hook module authorizes containers (else nothing is computed)."""
    plugins = getattr(daemon, "plugins", None)
    if plugins is None or REQUEST.get() is None:
        return False
    return bool(plugins.active("authorize_container").get_hookimpls())


async def authorize(daemon: Any, action: str, privileges: Privileges | Any, **target: Any) -> None:
    """Ask the ``authorize_container`` hooks; any denial (or a hook that raises, or answers
    something that is not a Decision) is a 403 before anything is created or started.
    ``privileges`` may be a callable computing them (only called when a hook listens)."""
    if not wanted(daemon):
        return
    from ..errors import DockyardError, Forbidden
    from ..identity import ANONYMOUS, Decision
    from ..plugins import call_hook

    request = REQUEST.get()
    if callable(privileges):
        try:
            privileges = privileges()
        except Exception:  # a shape the daemon refuses anyway, or a bug: hooks get None (fail closed)
            log.warning("cannot work out the privileges for %s: the hooks decide without them", action,
                        exc_info=True)
            privileges = None
    identity = request.get("identity", ANONYMOUS)
    try:
        answers = await call_hook(daemon.plugins.active("authorize_container"), request=request, identity=identity,
                                  action=action, privileges=privileges, target=dict(target))
    except DockyardError:
        raise
    except Exception:
        log.exception("authorize_container failed for %s: denying", action)
        answers = [Decision.deny("authorization failed: the request was denied", "error")]
    for decision in answers:
        if not isinstance(decision, Decision):
            decision = Decision.deny("authorization failed: the request was denied", "error")
        if not decision.allow:
            try:
                request["denied_by"] = decision
            except Exception:
                pass
            raise Forbidden(decision.message or "authorization denied by policy")


async def authorize_exec(request: Any, containers: Any, ref: str, exec_id: str | None = None) -> None:
    """``POST /containers/{ref}/exec`` (``exec_id`` None: the privilege asked is the body's
    ``Privileged``) and ``POST /exec/{id}/start`` (the exec instance's own flag)."""
    daemon = getattr(containers, "daemon", None)
    if not wanted(daemon):
        return
    c = containers.get(ref)
    if exec_id is None:
        body = await _json_body(request)
        privileged = body.get("Privileged") if isinstance(body, dict) else None
    else:
        privileged = containers.execs.get(exec_id).privileged
    await authorize(daemon, "exec", lambda: of_exec(containers, c, privileged), container=c.id,
                    **({"exec": exec_id} if exec_id else {}))


async def _json_body(request: Any) -> Any:
    import json

    from ..errors import InvalidArgument

    try:
        return json.loads(await request.read() or b"null")
    except ValueError:
        raise InvalidArgument("invalid JSON body") from None


async def authorize_volume(request: Any, volumes: Any) -> None:
    """``POST /volumes/create``: a volume whose driver options mount a host path is that
    host path, at creation as at every use."""
    daemon = getattr(volumes, "daemon", None)
    if not wanted(daemon):
        return
    body = await _json_body(request)
    body = body if isinstance(body, dict) else {}
    await authorize(daemon, "volume", lambda: of_volume(body.get("Driver"), body.get("DriverOpts")),
                    volume=body.get("Name"))


async def authorize_use(containers: Any, c: Any, action: str) -> None:
    """Using an existing container another principal may have made: ``attach`` gives its
    process (all its privileges), ``archive`` (``docker cp``) its files, and through its
    mounts the host paths it binds."""
    daemon = getattr(containers, "daemon", None)
    if not wanted(daemon):
        return

    def compute() -> Privileges:
        got = of_record(containers, c)
        return Privileges(host_paths=got.host_paths) if action == "archive" else got

    await authorize(daemon, action, compute, container=c.id)
