"""The containers service: one method per verb, each a sequence of steps with one rollback.

Drivers do the work: storage (rootfs), cgroups (limits, stats, freeze), runtime (process,
logs, exit record). Every transition is saved to the container's record before it is
announced as an event. A monitor task per running container records its end; after a
daemon restart :meth:`reconcile` re-attaches monitors to containers that kept running
(live-restore) and records what ended while the daemon was down.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import shutil
import socket
import signal as signals
import time
from pathlib import Path
from typing import Any, Callable

from .. import filters as F
from ..config import parse_size
from ..drivers.cgroups import Resources
from . import cgparent
from ..drivers.runtime import ExitStatus
from ..errors import (
    ConfigError, Conflict, DockyardError, InvalidArgument, InvalidState, NameInUse, NoSuchContainer,
    NotModified, Unavailable,
)
from ..crashpoints import crashpoint
from ..lifecycle import State, require
from ..runtime import capabilities
from ..runtime.logfile import JsonLogReader
from ..tasks import spawn
from ..timestamps import parse_timestamp
from . import configure, etcfiles, health, mounts, options, ports, startopts
from . import devices, runtime_opts
from .. import userns
from .record import Container
from .spec import build_spec
from . import effective
from . import syslog

log = logging.getLogger("dockyard.containers")

LIST_FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since", "network",
                "volume", "health", "is-task", "expose", "publish")
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
DEFAULT_STOP_TIMEOUT = 10
KILL_EXIT_WAIT = 10  # seconds a SIGKILL waits for the exit (moby's Kill)


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """``9``, ``KILL``, ``SIGKILL`` -> 9; anything else is Docker's 400."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        num = int(text)
        if 0 < num < signals.NSIG:
            return num
    else:
        name = text if text.startswith("SIG") else "SIG" + text
        sig = getattr(signals.Signals, name, None) if name in signals.Signals.__members__ else None
        if sig is not None:
            return int(sig)
    raise InvalidArgument(f"Invalid signal: {value}")


def log_limits(opts: dict[str, str], defaults: dict[str, str], driver: str = "json-file") -> tuple[int, int]:
    """(max size in bytes, max files) from Docker's log options; bad values are a 400."""
    if driver == "syslog":  # its own options; the binary records are a small buffer for attach
        syslog.validate(opts)
        return log_limits({}, {"max-size": "1m", "max-file": "1"})
    unknown = set(opts) - {"max-size", "max-file", "compress"}
    if unknown:
        raise InvalidArgument(f"unknown log opt '{sorted(unknown)[0]}' for {driver} log driver")
    compress = log_compress(opts)
    if compress and driver != "json-file":
        raise InvalidArgument(f"log opt compress=true is not supported by the {driver} log driver of this engine")
    merged = {**defaults, **opts}
    try:
        size, files = parse_size(merged["max-size"]), int(merged["max-file"])
    except (ValueError, ConfigError):
        raise InvalidArgument(f"invalid log options: {opts}") from None
    if size < 0 or files < 1:
        raise InvalidArgument("max-size must be >= 0 and max-file >= 1")
    if compress and (files < 2 or size <= 0):  # Docker's check and text
        raise InvalidArgument("compress cannot be true when max-file is less than 2 or max-size is not set")
    return size, files


def log_compress(opts: dict[str, str]) -> bool:
    """``--log-opt compress`` (Go's strconv.ParseBool spellings, as Docker)."""
    value = str(opts.get("compress", "false"))
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f'error parsing compress log option: strconv.ParseBool: parsing "{value}": invalid syntax')


#: ``POST /containers/{id}/update``: the resource fields moby's UpdateContainer applies
#: (besides RestartPolicy).
UPDATE_FIELDS = frozenset({
    "CpuShares", "Memory", "NanoCpus", "BlkioWeight", "CpuPeriod", "CpuQuota", "CpuRealtimePeriod",
    "CpuRealtimeRuntime", "CpusetCpus", "CpusetMems", "MemoryReservation", "MemorySwap", "KernelMemory",
    "KernelMemoryTCP", "PidsLimit",
})


class ContainerService:
    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.root: Path = daemon.config.data_root / "containers"
        self.root.mkdir(parents=True, exist_ok=True)
        self.events = daemon.events
        self.images = getattr(daemon, "images", None)
        self.storage = daemon.drivers.get("storage")
        self.cgroups = daemon.drivers.get("cgroups")
        self.runtime = daemon.drivers.get("runtime")
        self.networks = getattr(daemon, "networks", None)  # dockyard.networks.NetworkService
        self.daemon_userns = getattr(daemon, "userns", None)  # IdMapping with --userns-remap
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}  # name -> id
        # names taken by a create or rename still under way (name -> id): reserved before the
        # first await, so two requests can never both pass the check (released when done)
        self.reserved: dict[str, str] = {}
        self.unsaved: set[str] = set()  # records a full disk kept from being written (retried)
        self._resaver: asyncio.Future[None] | None = None
        self.locks: dict[str, asyncio.Lock] = {}
        self.monitors: dict[str, asyncio.Task[None]] = {}
        self.exit_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self.removed_waiters: dict[str, list[asyncio.Future[Container]]] = {}
        self.start_waiters: dict[str, list[asyncio.Future[bool]]] = {}
        self.attached: dict[str, int] = {}  # open attach streams per container
        self.fs_users: dict[str, int] = {}  # open uses of a rootfs (archive, export, commit)
        self.detached = asyncio.Condition()
        try:
            self.log_defaults = log_limits(daemon.config.log_opts, {"max-size": "10m", "max-file": "3"},
                                           getattr(daemon.config, "log_driver", "json-file"))
            if getattr(daemon.config, "log_driver", "json-file") == "syslog":  # its opts are no file limits
                self.log_defaults = log_limits({}, {"max-size": "10m", "max-file": "3"})
        except InvalidArgument as exc:
            raise ConfigError(f"log-opts: {exc}") from None
        self.daemon_stopping = False
        from .execs import ExecService
        from .health import HealthMonitor

        self.execs = ExecService(self)  # docker exec instances (in memory, like Docker)
        self.health = HealthMonitor(self)  # healthcheck probes of running containers (health.py)
        if self.images is not None:
            self.images.in_use = self._image_users

    # -- lookup ---------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        """By full id, unique id prefix, or name (with or without the leading ``/``)."""
        if ref in self.containers:
            return self.containers[ref]
        name = ref.lstrip("/")
        if name in self.names:
            return self.containers[self.names[name]]
        if ref and all(c in "0123456789abcdef" for c in ref):
            found = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise NoSuchContainer(ref)

    def dir(self, c: Container) -> Path:
        return self.root / c.id

    def lock(self, cid: str) -> asyncio.Lock:
        return self.locks.setdefault(cid, asyncio.Lock())

    def _save(self, c: Container, durable: bool = False) -> None:
        """Atomic always; fsynced only for what cannot be re-derived (``durable``): after a
        crash, reconcile rebuilds running/exited state from the runtime's own records.
        A failed write (a full disk) is a clear error naming the cause."""
        try:
            c.save(self.dir(c), sync=durable)
        except OSError as exc:
            raise DockyardError(f"cannot write the record of container {c.id[:12]}: {_os_reason(exc)}") from exc
        self.unsaved.discard(c.id)

    def _save_soft(self, c: Container, durable: bool = False) -> bool:
        """For transitions that must happen even when nothing can be written (stop, kill, rm,
        an exit): the state changes in memory, the record is written when space returns (a
        retry every second) or rebuilt at the next start. False if it was not written."""
        try:
            self._save(c, durable)
            return True
        except DockyardError as exc:
            if c.id not in self.containers:
                return False
            log.warning("%s; kept in memory, written when possible", exc)
            self.unsaved.add(c.id)
            if self._resaver is None or self._resaver.done():
                self._resaver = spawn(self._resave(), "writing records kept back by a full disk")
            return False

    async def _resave(self) -> None:
        while self.unsaved and not self.daemon_stopping:
            await asyncio.sleep(1)
            for cid in list(self.unsaved):
                c = self.containers.get(cid)
                if c is None or not self.dir(c).is_dir():
                    self.unsaved.discard(cid)
                    continue
                try:
                    self._save(c, durable=True)
                except DockyardError:
                    break  # still full: try again later
                log.info("record of container %s written", cid[:12])

    def _require_drivers(self) -> None:
        missing = [k for k in ("storage", "runtime") if getattr(self, k) is None] + (
            ["images"] if self.images is None else [])
        if missing:
            raise Unavailable(f"containers need a {' and a '.join(missing)} driver; none is loaded on this daemon")

    def _image_users(self, image_id: str) -> list[tuple[str, bool]]:
        return [(c.id, c.running) for c in self.containers.values() if c.image_id == image_id]

    @staticmethod
    def _wake(waiters: dict[str, list[asyncio.Future[Any]]], cid: str, value: Any) -> None:
        for fut in waiters.pop(cid, []):
            if not fut.done():
                fut.set_result(value)

    def _emit(self, action: str, c: Container, **extra: Any) -> None:
        attrs = {"name": c.name, "image": c.image, **c.labels, **{k: str(v) for k, v in extra.items()}}
        self.events.emit("container", action, c.id, **attrs)

    # -- create ---------------------------------------------------------------------------

    async def create(self, body: dict[str, Any], name: str | None, warnings: list[str] | None = None) -> Container:
        """``warnings`` (if given) receives what dockerd answers in the create's Warnings."""
        self._require_drivers()
        if not isinstance(body, dict):
            raise InvalidArgument("container config must be a JSON object")
        cid = secrets.token_hex(32)
        if name:
            self._reserve(configure.check_name(name), cid)  # before the first await
        try:
            return await self._create(body, name.lstrip("/") if name else None, cid, warnings)
        except (OSError, DockyardError) as exc:  # a full disk: say so (the steps were undone)
            _raise_if_disk_full(exc, "cannot create container")
            raise
        finally:
            self._release(cid)

    async def _create(self, body: dict[str, Any], name: str | None, cid: str,
                      warnings: list[str] | None = None) -> Container:
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise InvalidArgument("Config.Image is required")
        image = self.images.resolve(image_ref)
        host_config = configure.normalize_host_config(body.get("HostConfig"))
        if not ((body.get("HostConfig") or {}).get("LogConfig") or {}).get("Type"):  # dockerd's log-driver
            host_config["LogConfig"]["Type"] = getattr(self.daemon.config, "log_driver", "json-file")
        if host_config["LogConfig"]["Type"] == getattr(self.daemon.config, "log_driver", "json-file"):
            # and its log-opts for the keys the container leaves out (as dockerd; inspect shows them)
            host_config["LogConfig"]["Config"] = {**self.daemon.config.log_opts, **host_config["LogConfig"]["Config"]}
        request_config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        from ..plugins import call_hook

        await call_hook(self.daemon.plugins.hook.container_spec, config=request_config,
                        host_config=host_config, name=name)
        config = configure.merge_config(request_config, (image.config or {}).get("config") or {})
        health.validate(config)
        config["Image"] = image_ref
        ports.validate(config, host_config)  # bad port specs -> 400 now
        capabilities.resolve(host_config.get("CapAdd"), host_config.get("CapDrop"))  # unknown names -> 400
        Resources.from_host_config(host_config)  # limits the kernel would refuse -> 400 now
        runtime_opts.validate(host_config, getattr(self.cgroups, "version", 1))  # devices, cgroupns, oom score
        log_limits((host_config.get("LogConfig") or {}).get("Config") or {},
                   {"max-size": str(self.log_defaults[0]), "max-file": str(self.log_defaults[1])},
                   options.log_driver(host_config))
        mount_points = mounts.plan(config, host_config, self)  # bad mounts -> 400 before anything exists
        networks = (self.networks.container_networks(host_config, body.get("NetworkingConfig"))
                    if self.networks is not None else {})
        options.check(config, host_config, runtime=self.runtime, storage=self.storage,
                      networking=body.get("NetworkingConfig"))  # refused options -> 400
        userns.check_container(self.daemon_userns, host_config)  # what Docker refuses under --userns-remap
        found = options.settle_swappiness(host_config, self.cgroups)  # cgroup v2: dropped, warned
        if warnings is not None:
            warnings.extend(found)
        startopts.check_links(self, host_config, networks)
        options.settle_mac(config, host_config, networks)
        await effective.authorize(self.daemon, "create", lambda: effective.of_container(self, host_config, mount_points),
                                  image=image_ref, name=name)  # the effective container: 403 before anything exists
        if name is None:
            name = self._generate_name()
            self._reserve(name, cid)
        c = Container(id=cid, name=name, image=image_ref, image_id=image.id, config=config,
                      host_config=host_config, storage_driver=getattr(self.storage, "name", ""),
                      top_layer=self.images.top_layer(image.id), networks=networks)
        if not config.get("Hostname"):  # as Docker: a host-network container has the host's name
            config["Hostname"] = socket.gethostname() if host_config.get("NetworkMode") == "host" else cid[:12]
        directory = self.dir(c)
        async with contextlib.AsyncExitStack() as undo:
            directory.mkdir(mode=0o710)
            undo.callback(shutil.rmtree, directory, True)
            await asyncio.to_thread(self.storage.create_rw, cid, c.top_layer)
            undo.callback(self.storage.remove_rw, cid)
            await mounts.create_volumes(self.daemon.volumes, mount_points, undo)
            c.mounts = mount_points
            etcfiles.write(directory, config, host_config)
            self._save(c, durable=True)
            undo.pop_all()
        self.containers[cid] = c
        self.names[name] = cid
        self._emit("create", c)
        return c

    def _check_name_free(self, name: str) -> None:
        owner = self.names.get(name) or self.reserved.get(name)
        if owner:
            raise NameInUse(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{owner}". You have to remove (or rename) that container to be able to reuse that name.'
            )

    def _reserve(self, name: str, cid: str) -> None:
        """Take ``name`` for ``cid`` now (synchronously: no other request can slip in between
        the check and the reservation), or raise NameInUse (409)."""
        self._check_name_free(name)
        self.reserved[name] = cid

    def _release(self, cid: str) -> None:
        for name in [n for n, owner in self.reserved.items() if owner == cid]:
            del self.reserved[name]

    def _generate_name(self) -> str:
        for _ in range(100):
            name = configure.random_name()
            if name not in self.names and name not in self.reserved:
                return name
        return f"{configure.random_name()}_{secrets.token_hex(3)}"

    # -- start ----------------------------------------------------------------------------

    async def start(self, ref: str) -> None:
        c = self.get(ref)
        # before the AutoRemove clean-up below: a denied start changes nothing
        await effective.authorize(self.daemon, "start", lambda: effective.of_record(self, c), container=c.id)
        try:
            async with self.lock(c.id):
                require(c.state, "start", c.id)
                try:
                    await self._start(c)
                except (OSError, DockyardError) as exc:  # a full disk: say so (the steps were undone)
                    _raise_if_disk_full(exc, f"cannot start container {c.id[:12]}")
                    raise
        except DockyardError as exc:
            if c.host_config.get("AutoRemove") and not isinstance(exc, NotModified):
                await self.remove(c.id, force=True, volumes=True)  # as Docker does: `run --rm` waits for removal
            raise

    async def _start(self, c: Container) -> None:
        self._require_drivers()
        directory = self.dir(c)
        cg = self.cgroups
        async with contextlib.AsyncExitStack() as undo:
            rootfs = Path(await asyncio.to_thread(self.storage.mount, c.id))
            undo.callback(self.storage.unmount, c.id)
            procs: list[str] = []
            device_plan = devices.plan(c.host_config)
            if cg is not None:
                if cg.exists(c.id):
                    cg.remove(c.id)
                c.cgroup_parent = cgparent.effective(self.daemon.config, c.host_config)
                cg.create(c.id, dataclasses.replace(Resources.from_host_config(c.host_config), devices=device_plan.rules),
                          **({"parent": c.cgroup_parent} if c.cgroup_parent is not None else {}))
                undo.callback(cg.remove, c.id)
                procs = cg.procs_files(c.id)
            log_max_size, log_max_files = self._log_limits(c)
            extra_mounts = await mounts.setup(self, c, rootfs, undo)
            namespaces = self._namespaces(c)
            if self.networks is not None:
                undo.push_async_callback(self.networks.teardown, c)
                sandbox = await self.networks.setup(c, directory)
                if sandbox:
                    namespaces["net"] = sandbox
            files = self._etc_files(c, directory)
            if userns.remapped(self.daemon_userns, c.host_config):  # writable by its root, as without remapping
                userns.give_to_root(self.daemon_userns, files.values())
            config = await startopts.prepare(self, c, directory, namespaces)  # links, sysctls
            spec = build_spec(
                cid=c.id, config=config, host_config=c.host_config, rootfs=rootfs,
                files=files, mounts=[*extra_mounts, *startopts.shm_mounts(c)], cgroup_procs=procs,
                log_path=self._channel_path(c), log_max_size=log_max_size, log_max_files=log_max_files,
                json_log=self._json_log(c),
                syslog=syslog.spec_fields(c.host_config["LogConfig"].get("Config") or {}, c)
                if options.log_driver(c.host_config) == "syslog" else None,
                namespaces=namespaces, devices=device_plan.nodes,
            )
            if userns.remapped(self.daemon_userns, c.host_config):  # root in the container: a host nobody
                spec.uid_map, spec.gid_map = self.daemon_userns.uid_map(), self.daemon_userns.gid_map()
            # the intent: a daemon killed from here on leaves a process the record does not
            # name yet; reconcile adopts it (or kills it) because the record says "starting"
            c.starting = True
            try:
                self._save(c)
                crashpoint("container.start.after_intent")
                pid = await self.runtime.start(spec)
            except DockyardError as exc:
                c.starting = False
                code = getattr(exc, "exit_code", 128)
                c.exit_code, c.error = code, exc.message
                self._save_soft(c)
                self._wake(self.start_waiters, c.id, False)
                raise
            except BaseException:
                c.starting = False
                raise
            crashpoint("container.start.after_launch")
            undo.pop_all()
        c.status, c.pid, c.error, c.starting = State.RUNNING.value, pid, "", False
        c.started_ns, c.has_been_started, c.manually_stopped, c.oom_killed = time.time_ns(), True, False, False
        c.exit_code = 0
        self._save_soft(c)  # it runs and is watched whatever the disk says
        self._emit("start", c)
        self._monitor(c)
        self._wake(self.start_waiters, c.id, True)

    def _etc_files(self, c: Container, directory: Path) -> dict[str, Path]:
        """The /etc/hostname, hosts and resolv.conf bound into the container: its own, or with
        ``--network container:X`` X's files and names, as Docker (they share X's network
        namespace, so X's resolver at 127.0.0.11 answers for both)."""
        mode = c.host_config.get("NetworkMode") or ""
        if not mode.startswith("container:"):
            return etcfiles.paths(directory)
        other = self.get(mode.split(":", 1)[1])
        for key in ("Hostname", "Domainname"):
            c.config[key] = other.config.get(key) or ""
        return etcfiles.paths(self.dir(other))

    def _namespaces(self, c: Container) -> dict[str, str | None]:
        ns: dict[str, str | None] = {"net": None, "ipc": None, "uts": None, "pid": None}
        mode = c.host_config.get("NetworkMode") or "default"
        if mode == "host":
            ns["net"] = "host"  # as Docker: its own UTS namespace, named after the host unless -h
        elif mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if other.state != State.RUNNING or not other.pid:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            ns["net"] = f"/proc/{other.pid}/ns/net"
        for kind, key in (("pid", "PidMode"), ("ipc", "IpcMode")):
            join = c.host_config.get(key) or ""
            if join == "host":
                ns[kind] = "host"
            elif join.startswith("container:"):
                ns[kind] = startopts.joined_namespace(self, join, kind)
        if c.host_config.get("UTSMode") == "host":
            ns["uts"] = "host"
        return ns

    def _log_limits(self, c: Container) -> tuple[int, int]:
        """``--log-opt max-size/max-file`` of the container, else the daemon's ``log-opts``: the
        binary records (the local driver's store, and attach's stream for json-file too, so a
        client attached to a fast writer reads as before)."""
        opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
        driver = options.log_driver(c.host_config)
        if driver == "none":  # nothing kept for docker logs: a small buffer that attach reads
            return log_limits(opts, {"max-size": "1m", "max-file": "1"}, driver)
        size, files = self.log_defaults
        return log_limits(opts, {"max-size": str(size), "max-file": str(files)}, driver)

    def _json_log(self, c: Container) -> tuple[Path, int, int, bool] | None:
        """json-file: (path, max size, max files) of the file the shim writes in Docker's format."""
        if options.log_driver(c.host_config) != "json-file":
            return None
        opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
        size, files = self.log_defaults
        size, files = log_limits(opts, {"max-size": str(size), "max-file": str(files)})
        return self.json_log_path(c), size, files, log_compress(opts)

    def json_log_path(self, c: Container) -> Path:
        return self.dir(c) / f"{c.id}-json.log"

    def _channel_path(self, c: Container) -> Path:
        """The binary records of the container's output (the local driver's store; attach's stream)."""
        return self.dir(c) / "container.log"

    def log_path(self, c: Container) -> Path | None:
        """Inspect's LogPath: Docker's <id>-json.log for json-file; none for other drivers (Docker
        keeps the local driver's file out of the API)."""
        if options.log_driver(c.host_config) == "json-file":
            return self.json_log_path(c)
        return None

    # -- monitoring -----------------------------------------------------------------------

    def _monitor(self, c: Container) -> None:
        task = spawn(self._watch(c), f"monitor of container {c.id[:12]}")
        self.health.start(c)
        self.monitors[c.id] = task
        task.add_done_callback(lambda t, cid=c.id: self.monitors.pop(cid, None) if self.monitors.get(cid) is t else None)

    async def _watch(self, c: Container) -> None:
        try:
            status = await self.runtime.wait(c.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("waiting for %s failed", c.id[:12])
            status = ExitStatus(exit_code=255, error=str(exc))
        async with self.lock(c.id):
            await self._record_exit(c, status)
        await self._after_exit(c)

    async def _record_exit(self, c: Container, status: ExitStatus) -> None:
        """Save how the container ended and release its cgroup and mount. The state changes
        and waiters are woken whatever fails here (a release step, a full disk)."""
        oom = False
        try:
            if self.cgroups is not None and self.cgroups.exists(c.id):
                with contextlib.suppress(Exception):
                    oom = self.cgroups.oom_kills(c.id) > 0
                with contextlib.suppress(Exception):
                    self.cgroups.remove(c.id)
            with contextlib.suppress(Exception):
                self.storage.unmount(c.id)
            if self.networks is not None:
                try:
                    await self.networks.teardown(c)
                except Exception:
                    log.exception("releasing the network of %s failed", c.id[:12])
            mounts.release(self, c)
            self.health.stop(c.id)
        except Exception:
            log.exception("releasing what container %s held failed", c.id[:12])
        c.status = State.EXITED.value
        c.exit_code, c.pid, c.oom_killed = status.exit_code, 0, oom or status.oom_killed
        c.error = status.error or ""
        c.finished_ns = status.finished_at_ns or time.time_ns()
        self._save_soft(c)
        if c.oom_killed:
            self._emit("oom", c)
        self._emit("die", c, exitCode=c.exit_code)
        self._wake(self.exit_waiters, c.id, c)

    async def _after_exit(self, c: Container) -> None:
        """AutoRemove and restart policies, after the exit is recorded."""
        if c.id not in self.containers:
            return
        if c.host_config.get("AutoRemove"):
            # the output must reach attached clients before the log goes with the container
            async with self.detached:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.detached.wait_for(lambda: not self.attached.get(c.id)), 30)
            with contextlib.suppress(DockyardError):
                await self.remove(c.id, force=True, volumes=True)
            return
        if self._should_restart(c):
            delay = min(0.1 * (2 ** min(c.restart_count, 10)), 60.0)
            if c.finished_ns - c.started_ns > 10 * 10**9:
                delay = 0.1  # Docker resets the back-off after 10 s of running
            c.status = State.RESTARTING.value
            self._save_soft(c)
            # stop, kill, rm and restart end this wait through _cancel_restart (under the lock)
            await asyncio.sleep(delay)
            async with self.lock(c.id):
                if c.id not in self.containers or c.state != State.RESTARTING or c.manually_stopped:
                    return
                c.restart_count += 1
                try:
                    await self._start(c)
                    self._emit("restart", c)
                except Exception as exc:
                    log.warning("restarting %s failed: %s", c.name, exc)
                    self._cancel_restart(c)

    def _cancel_restart(self, c: Container) -> None:
        """A restarting container (between an exit and its restart, no process) becomes
        exited; whoever waits for it to stop is answered. Called with the lock held."""
        c.status = State.EXITED.value
        c.pid = 0
        self._save_soft(c)
        self._wake(self.exit_waiters, c.id, c)

    def _should_restart(self, c: Container) -> bool:
        if c.manually_stopped or self.daemon_stopping:
            return False
        policy = c.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and c.exit_code != 0:
            limit = int(policy.get("MaximumRetryCount") or 0)
            return not limit or c.restart_count < limit
        return False

    # -- stop, kill, restart --------------------------------------------------------------

    async def stop(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        async with self.lock(c.id):
            if c.state == State.RESTARTING:
                c.manually_stopped = True
                self._cancel_restart(c)
                self._emit("stop", c)
                return
            require(c.state, "stop", c.id)
            c.manually_stopped = True
            self._save_soft(c)
        await self._stop(c, timeout, sig)
        self._emit("stop", c)

    async def _stop(self, c: Container, timeout: int | None, sig: str | None = None) -> None:
        """Stop signal, wait up to ``timeout`` seconds, then SIGKILL every process. A
        restarting container has no process: its pending restart is cancelled. Never called
        with the container's lock held."""
        if c.state == State.RESTARTING:
            async with self.lock(c.id):
                if c.state == State.RESTARTING:
                    c.manually_stopped = True
                    self._cancel_restart(c)
                    return
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = DEFAULT_STOP_TIMEOUT if timeout is None else int(timeout)
        stop_signal = parse_signal(sig or c.config.get("StopSignal"), signals.SIGTERM)
        waiter = self._exit_future(c)
        if c.state == State.PAUSED and self.cgroups is not None:
            self.cgroups.thaw(c.id)
            c.status = State.RUNNING.value
        with contextlib.suppress(InvalidState, NoSuchContainer):
            await self.runtime.kill(c.id, stop_signal)
            self._emit("kill", c, signal=stop_signal)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout if timeout >= 0 else None)
            return
        except asyncio.TimeoutError:
            log.info("container %s did not stop after %ss, killing it", c.id[:12], timeout)
        self._emit("kill", c, signal=int(signals.SIGKILL))
        if self.cgroups is not None and self.cgroups.exists(c.id):
            with contextlib.suppress(Exception):
                self.cgroups.kill_all(c.id, signals.SIGKILL)
        with contextlib.suppress(InvalidState, NoSuchContainer):
            await self.runtime.kill(c.id, signals.SIGKILL)
        while not waiter.done():
            await asyncio.wait({waiter}, timeout=5)
            if not waiter.done() and c.running and c.id not in self.monitors:
                log.warning("container %s has no monitor: watching it again", c.id[:12])
                self._monitor(c)  # its exit is recorded (and the waiter answered) by the monitor

    def _exit_future(self, c: Container) -> asyncio.Future[Container]:
        fut = asyncio.get_running_loop().create_future()
        if not c.running:
            fut.set_result(c)
        else:
            self.exit_waiters.setdefault(c.id, []).append(fut)
        return fut

    async def kill(self, ref: str, sig: str | None) -> None:
        c = self.get(ref)
        num = parse_signal(sig)
        waiter: asyncio.Future[Container] | None = None
        async with self.lock(c.id):
            require(c.state, "kill", c.id)
            if num in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
                c.manually_stopped = True  # docker kill does not trigger restart "unless-stopped"
                if c.state == State.RESTARTING:  # no process: the pending restart is what goes
                    self._cancel_restart(c)
                    self._emit("kill", c, signal=num)
                    return
                self._save_soft(c)
            if num == signals.SIGKILL:
                waiter = self._exit_future(c)
            try:
                await self.runtime.kill(c.id, num)
            except BaseException:
                if waiter is not None and not waiter.done():
                    waiter.cancel()
                raise
        self._emit("kill", c, signal=num)
        if waiter is not None:
            # As moby's Kill: a SIGKILL waits (briefly) for the exit to be recorded, so the
            # client's next request sees the container exited (137), not still running.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), KILL_EXIT_WAIT)

    async def restart(self, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
        c = self.get(ref)
        await effective.authorize(self.daemon, "start", lambda: effective.of_record(self, c), container=c.id)
        if c.running:
            c.manually_stopped = True
            await self._stop(c, timeout, sig)
        async with self.lock(c.id):
            if c.running:  # a restart policy got there first
                return
            await self._start(c)
        self._emit("restart", c)

    # -- wait -----------------------------------------------------------------------------

    async def wait(self, ref: str, condition: str = "not-running") -> Container:
        c = self.get(ref)
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(f"invalid condition: {condition!r}")
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut = loop.create_future()
            self.removed_waiters.setdefault(c.id, []).append(fut)
            return await fut
        if condition == "not-running" and not c.running:
            return c
        fut = loop.create_future()
        self.exit_waiters.setdefault(c.id, []).append(fut)
        return await fut

    # -- remove ---------------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.running:
            if not force:
                require(c.state, "remove", c.id)
            c.manually_stopped = True
            await self._stop(c, timeout=0)
        async with self.lock(c.id):
            if c.id not in self.containers:
                return
            # the intent first: a daemon killed during the removal finishes it at its next
            # start (reconcile); a container in "removing" is removed by any later rm too
            c.status = State.REMOVING.value
            c.remove_volumes = c.remove_volumes or volumes
            self._save_soft(c, durable=True)  # a full disk still removes (and frees space)
            crashpoint("container.rm.after_intent")
            await self._destroy(c)
        if c.remove_volumes:
            await mounts.remove_anonymous(self, c)
        self._emit("destroy", c)
        self._wake(self.removed_waiters, c.id, c)
        self._wake(self.start_waiters, c.id, False)

    async def _destroy(self, c: Container) -> None:
        """Remove everything a container owns; each step tolerates what is already gone (also
        what a removal interrupted by a crash left half done)."""
        task = self.monitors.pop(c.id, None)
        if task is not None and task is not asyncio.current_task():  # AutoRemove runs in the monitor
            task.cancel()
        self.execs.forget(c.id)
        self.health.forget(c.id)
        await self.runtime.delete(c.id)
        crashpoint("container.rm.after_runtime")
        if self.networks is not None:
            with contextlib.suppress(Exception):
                await self.networks.teardown(c)
        if self.cgroups is not None:
            with contextlib.suppress(Exception):
                self.cgroups.remove(c.id)  # kills anything left in it first
        await asyncio.to_thread(self.storage.remove_rw, c.id)
        crashpoint("container.rm.after_layer")
        await asyncio.to_thread(shutil.rmtree, self.dir(c), True)
        self.containers.pop(c.id, None)
        if self.names.get(c.name) == c.id:
            del self.names[c.name]
        self.locks.pop(c.id, None)

    # -- rename, pause, update ------------------------------------------------------------

    async def rename(self, ref: str, new: str) -> None:
        c = self.get(ref)
        if not new:
            raise InvalidArgument("Neither old nor new names may be empty")
        new = configure.check_name(new)
        if new == c.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self._reserve(new, c.id)  # as create does: before the first await
        try:
            async with self.lock(c.id):
                if c.id not in self.containers:
                    raise NoSuchContainer(ref)
                old = c.name
                c.name = new
                try:
                    self._save(c, durable=True)
                except DockyardError:
                    c.name = old
                    raise
                if self.names.get(old) == c.id:
                    del self.names[old]
                self.names[new] = c.id
        finally:
            if self.reserved.get(new) == c.id:
                del self.reserved[new]
        self._emit("rename", c, oldName="/" + old)

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.lock(c.id):
            require(c.state, "pause", c.id)
            self._need_cgroups().freeze(c.id)
            c.status = State.PAUSED.value
            self._save(c)
        self._emit("pause", c)

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with self.lock(c.id):
            require(c.state, "unpause", c.id)
            self._need_cgroups().thaw(c.id)
            c.status = State.RUNNING.value
            self._save(c)
        self._emit("unpause", c)

    @contextlib.asynccontextmanager
    async def mounted(self, c: Container) -> Any:
        """The container's root filesystem for the duration: a stopped container's is mounted
        here and unmounted when its last user is done (unless the container runs by then)."""
        self._require_drivers()
        async with self.lock(c.id):
            if c.id not in self.containers:
                raise NoSuchContainer(c.id)
            path = await asyncio.to_thread(self.storage.mount, c.id)
            self.fs_users[c.id] = self.fs_users.get(c.id, 0) + 1
        try:
            yield Path(path)
        finally:
            async with self.lock(c.id):
                left = self.fs_users.pop(c.id, 1) - 1
                if left:
                    self.fs_users[c.id] = left
                elif c.id in self.containers and c.state not in (State.RUNNING, State.PAUSED):
                    with contextlib.suppress(Exception):
                        await asyncio.to_thread(self.storage.unmount, c.id)

    def _need_cgroups(self) -> Any:
        if self.cgroups is None:
            raise Unavailable("no cgroups driver is loaded on this daemon")
        return self.cgroups

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        c = self.get(ref)
        async with self.lock(c.id):
            require(c.state, "update", c.id)
            # only what moby's update changes: other HostConfig fields in the body are ignored,
            # never stored (Privileged, CapAdd, Mounts... are fixed at create)
            merged = {**c.host_config, **{k: v for k, v in body.items() if k in UPDATE_FIELDS}}
            options.check_resources(merged)
            resources = Resources.from_host_config(merged, update=True)
            if "RestartPolicy" in body:
                merged["RestartPolicy"] = configure.normalize_host_config(
                    {"RestartPolicy": body["RestartPolicy"], "AutoRemove": c.host_config.get("AutoRemove")}
                )["RestartPolicy"]
            if c.running and self.cgroups is not None:
                self.cgroups.update(c.id, resources)
            c.host_config = merged
            self._save(c, durable=True)
        self._emit("update", c)
        return []

    # -- queries --------------------------------------------------------------------------

    def list(self, all_: bool = False, limit: int = -1, filters: str | None = None,
             size: bool = False) -> list[dict[str, Any]]:
        f = F.parse(filters, LIST_FILTERS)
        for s in f.get("status", []):
            if s not in STATUSES:
                raise InvalidArgument(f"invalid filter 'status={s}'")
        if "status" in f or "exited" in f:
            all_ = True
        items = list(reversed(self.containers.values()))  # dicts keep creation order: newest first
        if "before" in f:
            ref = self.get(f["before"][0])
            items = [c for c in items if c.created_ns < ref.created_ns]
        if "since" in f:
            ref = self.get(f["since"][0])
            items = [c for c in items if c.created_ns > ref.created_ns]
        out = []
        for c in items:
            if not all_ and not c.running:
                continue
            if not self._matches(c, f):
                continue
            sizes = None
            if size:
                sizes = {"SizeRw": self._rw_size(c), "SizeRootFs": 0}
            out.append(c.list_json(c.image, sizes))
            out[-1]["Status"] += self.health.status_suffix(c)
            if 0 < limit <= len(out):
                break
        return out

    def _rw_size(self, c: Container) -> int:
        try:
            return int(self.storage.rw_size(c.id))
        except Exception:
            return 0

    def _matches(self, c: Container, f: F.Filters) -> bool:
        def any_of(key: str, pred: Callable[[str], bool]) -> bool:
            return key not in f or any(pred(v) for v in f[key])

        image_ids: dict[str, str] = {}

        def ancestor(v: str) -> bool:
            if v not in image_ids:
                try:
                    image_ids[v] = self.images.resolve(v).id
                except DockyardError:
                    image_ids[v] = ""
            return c.image_id == image_ids[v] or c.image == v

        return (
            any_of("id", lambda v: c.id.startswith(v))
            and any_of("name", lambda v: v.lstrip("/") in c.name or bool(_re_search(v.lstrip("/"), c.name)))
            and ("label" not in f or F.match_labels(f["label"], c.labels))
            and any_of("status", lambda v: c.state.value == v)
            and any_of("exited", lambda v: c.state == State.EXITED and c.has_been_started and str(c.exit_code) == v)
            and any_of("ancestor", ancestor)
            and any_of("network", lambda v: v in c.networks or c.host_config.get("NetworkMode") == v)
            and ports.matches(f, c.config, c.host_config, c.network_settings)
            and any_of("health", lambda v: self.health.status(c.id) == v)
        )

    def logs(self, c: Container) -> Any:
        """The runtime's log reader, or None for a container that never ran."""
        if not c.has_been_started or self.runtime is None:
            return None
        reader = self.runtime.logs(c.id)
        path = self.json_log_path(c)
        if options.log_driver(c.host_config) == "json-file" and (path.exists() or JsonLogReader(path).files()):
            return JsonLogReader(path, getattr(reader, "exit_path", None))
        return reader  # local, or a runtime that writes no json-file (the fake runtime)

    async def wait_started(self, c: Container) -> bool:
        """For attach: True once the container runs; if it does not run yet, wait for its
        next start (True) or a failed start or removal (False)."""
        if c.state in (State.RUNNING, State.PAUSED):
            return True
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.start_waiters.setdefault(c.id, []).append(fut)
        return await fut

    @contextlib.asynccontextmanager
    async def attachment(self, c: Container) -> Any:
        """Held while a client is attached, so AutoRemove waits for its output to be sent."""
        self.attached[c.id] = self.attached.get(c.id, 0) + 1
        try:
            yield
        finally:
            self.attached[c.id] -= 1
            if not self.attached[c.id]:
                del self.attached[c.id]
            async with self.detached:
                self.detached.notify_all()

    def pids(self, c: Container) -> list[int]:
        if self.cgroups is not None and self.cgroups.exists(c.id):
            return self.cgroups.pids(c.id)
        pid = self.runtime.pid(c.id) if self.runtime is not None else None
        return [pid] if pid else []

    def stats(self, c: Container, previous: dict[str, Any] | None) -> dict[str, Any]:
        """Docker's stats JSON; ``previous`` fills ``precpu_stats``."""
        now = time.time_ns()
        empty_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                     "system_cpu_usage": 0, "online_cpus": 0, "throttling_data": {
                         "periods": 0, "throttled_periods": 0, "throttled_time": 0}}
        data: dict[str, Any] = {"memory_stats": {}, "cpu_stats": empty_cpu, "pids_stats": {},
                                "blkio_stats": {"io_service_bytes_recursive": None}}
        if c.running and self.cgroups is not None and self.cgroups.exists(c.id):
            with contextlib.suppress(Exception):
                data.update(self.cgroups.stats(c.id))
        from .record import rfc3339

        return {
            "read": rfc3339(now),
            "preread": previous["read"] if previous else rfc3339(0),
            "pids_stats": data["pids_stats"],
            "blkio_stats": data["blkio_stats"],
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": data["cpu_stats"],
            "precpu_stats": previous["cpu_stats"] if previous else empty_cpu,
            "memory_stats": data["memory_stats"],
            "name": "/" + c.name,
            "id": c.id,
            "networks": _net_stats(c.pid) if c.running and c.pid and c.host_config.get("NetworkMode") != "host" else {},
        }

    def inspect(self, ref: str, size: bool = False) -> dict[str, Any]:
        c = self.get(ref)
        graph: dict[str, Any] = {"Name": c.storage_driver, "Data": None}
        data = c.inspect(self.dir(c), self.log_path(c), graph)
        if (health := self.health.inspect(c.id)) is not None:
            data["State"]["Health"] = health
        if size:
            data["SizeRw"] = self._rw_size(c)
            data["SizeRootFs"] = 0
        return data

    def counts(self) -> dict[str, int]:
        states = [c.state for c in self.containers.values()]
        return {
            "Containers": len(states),
            "ContainersRunning": sum(s in (State.RUNNING, State.RESTARTING) for s in states),
            "ContainersPaused": sum(s == State.PAUSED for s in states),
            "ContainersStopped": sum(s not in (State.RUNNING, State.RESTARTING, State.PAUSED) for s in states),
        }

    def info(self) -> dict[str, Any]:
        return self.counts()

    async def prune(self, filters: str | None) -> dict[str, Any]:
        f = F.parse(filters, ("label", "label!", "until"))
        until = None
        if "until" in f:
            until = parse_timestamp(f["until"][0], "until")
        deleted, reclaimed = [], 0
        for c in list(self.containers.values()):
            if c.running:  # one in "removing" (an rm that failed half-way) is finished too
                continue
            if "label" in f and not F.match_labels(f["label"], c.labels):
                continue
            if "label!" in f and F.match_labels(f["label!"], c.labels):
                continue
            if until is not None and c.created_ns > until:
                continue
            reclaimed += self._rw_size(c)
            await self.remove(c.id)
            deleted.append(c.id)
        self.events.emit("container", "prune", "", reclaimed=reclaimed)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- startup and shutdown -------------------------------------------------------------

    async def reconcile(self) -> None:
        """Load records and make them agree with reality; log every cleanup."""
        loaded = []
        for directory in sorted(self.root.iterdir()):
            c = Container.load(directory) if directory.is_dir() else None
            if c is None:
                log.warning("removing container directory without a record: %s", directory.name)
                shutil.rmtree(directory, ignore_errors=True)
                continue
            loaded.append(c)
        for c in sorted(loaded, key=lambda c: (c.created_ns, c.id)):  # the dict keeps creation order
            self.containers[c.id] = c
            if c.name in self.names:  # written by a version that did not reserve names
                self._rename_duplicate(c)
            self.names[c.name] = c.id
        known = set(self.containers)
        if self.runtime is not None:
            for cid in self.runtime.list():
                if cid not in known:
                    log.warning("removing runtime state of unknown container %s", cid[:12])
                    await self.runtime.delete(cid)
        if self.cgroups is not None:
            cgparent.adopt_all(self.cgroups, self.containers.values())  # before list(): it finds them there
            for cid in self.cgroups.list():
                if cid not in known:
                    log.warning("removing stale cgroup of unknown container %s", cid[:12])
                    with contextlib.suppress(Exception):
                        self.cgroups.remove(cid)
        if self.storage is not None:
            for cid in self.storage.containers():
                if cid not in known:
                    log.warning("removing writable layer of unknown container %s", cid[:12])
                    await asyncio.to_thread(self.storage.remove_rw, cid)
        for c in list(self.containers.values()):
            await self._reconcile_one(c)

    def _rename_duplicate(self, c: Container) -> None:
        """Two records with one name: the oldest keeps it (the caller goes by creation time),
        this one gets ``<name>_<id[:12]>``, deterministically, and a log line says so."""
        new = f"{c.name}_{c.id[:12]}"
        while new in self.names:
            new += "_"
        log.warning("container %s has the name %r of the older container %s: renamed to %r",
                    c.id[:12], c.name, self.names[c.name][:12], new)
        c.name = new
        self._save_soft(c, durable=True)

    async def _reconcile_one(self, c: Container) -> None:
        if c.state == State.REMOVING:
            await self._finish_removal(c)
            return
        if c.starting:  # also "restarting": a restart policy was launching it
            await self._reconcile_start(c)
            return
        if not c.running:
            if self.storage is not None and self.storage.is_mounted(c.id):
                log.info("unmounting stale rootfs of stopped container %s", c.id[:12])
                self.storage.unmount(c.id)
            return
        state = self.runtime.state(c.id) if self.runtime is not None else "unknown"
        if state == "running":
            log.info("live-restore: container %s (%s) is still running", c.id[:12], c.name)
            self._monitor(c)
            return
        status = self.runtime.exit_status(c.id) if state == "exited" else None
        if status is None:
            status = ExitStatus(exit_code=255, error="container vanished while the daemon was down")
        log.info("container %s exited while the daemon was down (exit code %s)", c.id[:12], status.exit_code)
        await self._record_exit(c, status)
        spawn(self._after_exit(c), f"restart policy of container {c.id[:12]}")

    async def _finish_removal(self, c: Container) -> None:
        """The daemon died during ``rm``: the record says "removing", so finish it."""
        log.warning("finishing the removal of container %s (%s), interrupted by a daemon stop", c.id[:12], c.name)
        try:
            await self._destroy(c)
        except Exception:
            log.exception("removing container %s failed; `docker rm -f` retries it", c.id[:12])
            return
        if c.remove_volumes:
            await mounts.remove_anonymous(self, c)
        self._emit("destroy", c)

    async def _reconcile_start(self, c: Container) -> None:
        """The daemon died during ``start``, between the intent and the saved pid: adopt the
        process if it runs under its monitor, record its exit if it already ended, else kill
        whatever the launch left in the container's cgroup. Never a process the API does not know."""
        state = self.runtime.state(c.id) if self.runtime is not None else "unknown"
        pid = self.runtime.pid(c.id) if state == "running" else None
        c.starting = False
        if pid:
            log.warning("adopting container %s (%s): started when the daemon stopped, pid %d", c.id[:12], c.name, pid)
            c.status, c.pid, c.error, c.exit_code = State.RUNNING.value, pid, "", 0
            c.started_ns, c.has_been_started, c.manually_stopped, c.oom_killed = time.time_ns(), True, False, False
            self._save_soft(c)
            self._monitor(c)
            return
        status = self.runtime.exit_status(c.id) if state == "exited" and self.runtime is not None else None
        if status is not None and c.has_been_started and status.finished_at_ns and c.finished_ns \
                and status.finished_at_ns <= c.finished_ns:
            status = None  # the exit of an earlier run, already recorded: this start launched nothing
        if status is not None:
            log.warning("container %s started and ended while the daemon was down (exit code %s)",
                        c.id[:12], status.exit_code)
            c.has_been_started, c.started_ns = True, c.started_ns or time.time_ns()
            await self._record_exit(c, status)
            spawn(self._after_exit(c), f"restart policy of container {c.id[:12]}")
            return
        log.warning("container %s: its start was interrupted by a daemon stop; removing what it launched", c.id[:12])
        if self.cgroups is not None and self.cgroups.exists(c.id):
            with contextlib.suppress(Exception):
                self.cgroups.remove(c.id)  # kills every process in it first
        if self.runtime is not None:  # what this start launched, not the logs of earlier runs
            with contextlib.suppress(Exception):
                await self.runtime.delete(c.id, logs=False)
        with contextlib.suppress(Exception):
            self.storage.unmount(c.id)
        if self.networks is not None:
            with contextlib.suppress(Exception):
                await self.networks.teardown(c)
        mounts.release(self, c)
        c.error = "the daemon stopped while the container was starting"
        if c.state == State.RESTARTING:  # the restart policy tries again
            c.status = State.EXITED.value
            self._save_soft(c)
            spawn(self._after_exit(c), f"restart policy of container {c.id[:12]}")
            return
        self._save_soft(c)

    async def close(self) -> None:
        """Daemon shutdown: stop watching; containers keep running (live-restore)."""
        self.daemon_stopping = True
        if not self.daemon.config.live_restore:
            for c in list(self.containers.values()):
                if c.running:
                    await self._stop(c, None)
        for task in list(self.monitors.values()):
            task.cancel()
        for cid in list(self.unsaved):  # a last try for records a full disk kept back
            c = self.containers.get(cid)
            if c is not None:
                with contextlib.suppress(DockyardError):
                    self._save(c, durable=True)
        if self.unsaved:
            log.warning("%d container records could not be written (disk full?); the next start "
                        "rebuilds them from the runtime's state", len(self.unsaved))
        remove_parent = getattr(self.cgroups, "remove_parent", None)
        if remove_parent is not None and not any(c.running for c in self.containers.values()):
            with contextlib.suppress(Exception):
                remove_parent()  # leaves nothing behind; fails harmlessly while others use it


DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _raise_if_disk_full(exc: BaseException, what: str) -> None:
    """A step failed because the disk is full (the OSError itself, or a driver's error made
    from one): raise one clear error naming it instead, e.g. ``cannot start container
    0123456789ab: no space left on device (ENOSPC)``."""
    cause = exc if isinstance(exc, OSError) else exc.__cause__
    if isinstance(cause, OSError) and cause.errno in DISK_FULL and "(ENOSPC)" not in str(exc) \
            and "(EDQUOT)" not in str(exc):
        raise DockyardError(f"{what}: {_os_reason(cause)}") from exc


def _os_reason(exc: OSError) -> str:
    """``no space left on device (ENOSPC)``: the cause of a failed write, for an error message."""
    if exc.errno is None:
        return str(exc)
    text = os.strerror(exc.errno)
    return f"{text[:1].lower()}{text[1:]} ({errno.errorcode.get(exc.errno, exc.errno)})"


def _re_search(pattern: str, text: str) -> Any:
    import re

    try:
        return re.search(pattern, text)
    except re.error:
        return None


NET_DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors",
                  "tx_dropped")


def _net_stats(pid: int) -> dict[str, dict[str, int]]:
    """Docker's stats ``networks``: the counters of every interface but ``lo`` in the
    container's network namespace, from ``/proc/<pid>/net/dev``."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name, values = name.strip(), counters.split()
        if name != "lo" and len(values) >= 12:
            rx, tx = values[0:4], values[8:12]  # bytes packets errs drop, for each direction
            out[name] = dict(zip(NET_DEV_FIELDS, map(int, rx + tx)))
    return out
