"""``dockyardd``: flags and config -> plugins and drivers -> API on every ``-H`` address.

The :class:`Daemon` owns the config, the plugin manager, the event bus, the drivers and the
services; it is what hooks receive as ``daemon``. :meth:`Daemon.start` is the composition root:
it builds every service (images, registry, build cache, volumes, networks, containers and
their execs) once, and the API only looks them up: nothing is created lazily in a handler.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import gc
import hashlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .http import web

from . import API_VERSION, __version__
from . import config as cfg
from .errors import ConfigError, PluginError, SkipPlugin
from .events import EventBus, Event
from .host import Host
from .plugins import GROUPS, Plugins, await_me_maybe, blocked_names, entry_point_names
from .timestamps import rfc3339_millis, rfc3339_nano

if TYPE_CHECKING:
    from .build.cache import BuildCache
    from .containers.execs import ExecService
    from .containers.service import ContainerService
    from .images import ImageService
    from .networks import NetworkService
    from .registry import RegistryService
    from .volumes import VolumeService

log = logging.getLogger("dockyard.daemon")

DEFAULT_CONFIG_FILE = Path("/etc/dockyard/dockyardd.toml")

# kind -> (config attribute, candidates tried in order when the operator named none)
DRIVER_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "storage": ("storage_driver", ("overlay", "vfs")),
    "cgroups": ("cgroups", ("auto",)),
    "runtime": ("runtime", ("native",)),
}


#: Runtime drivers loaded beside the default one when installed (they serve other --runtime names).
EXTRA_RUNTIMES = ("oci",)


class Daemon:
    def __init__(self, config: cfg.DaemonConfig) -> None:
        self.config = config
        self.host = Host()
        self.plugins = Plugins()
        self.events = EventBus(on_event=self._on_event)
        self.drivers: dict[str, Any] = {}
        self.transports: dict[str, Any] = {}
        self.services: list[Any] = []  # objects with optional info() / close() (containers, images...)
        self.runner: web.AppRunner | None = None
        self._default_runtime_name: str | None = None  # --default-runtime runc: the name, served by oci
        self.started_at = time.time()
        self._background: set[asyncio.Task[Any]] = set()
        self.userns: Any = None  # dockyard.userns.IdMapping with --userns-remap
        # the services, built by start() in this order (None until then, or when it failed early)
        self.images: ImageService | None = None
        self.registry: RegistryService | None = None
        self.build_cache: BuildCache | None = None
        self.volumes: VolumeService | None = None
        self.networks: NetworkService | None = None
        self.containers: ContainerService | None = None
        self.execs: ExecService | None = None

    # -- start and stop ------------------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        from .containers.cgparent import cgroup_driver

        cgroup_driver(c.exec_opts)  # native.cgroupdriver: cgroupfs, or a ConfigError
        from . import container_defaults

        container_defaults.configure(c)  # dns, dns-search, dns-opts, default-shm-size, default-ulimits
        for d in (c.data_root, c.exec_root):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o711)
        if c.userns_remap:
            self._remap()
            c = self.config
        self.plugins.load_hook_modules()
        self._load_drivers()
        if self.userns is not None:
            self._map_storage()
        self._load_transports()
        from .images import ImageService

        self.images = ImageService(c.data_root / "image", self.drivers.get("storage"), self.events,
                                   asyncio.get_running_loop(), tar_cache_limit=c.layer_tar_cache)
        self.services.append(self.images)
        from .registry import RegistryService

        self.registry = RegistryService(self.images, c)
        from .build.cache import BuildCache

        self.build_cache = BuildCache(c.data_root / "build")
        images = self.images
        self.build_cache.forget_missing(lambda image_id: image_id in images.images)  # removed while down
        from .volumes import VolumeService

        self.volumes = VolumeService(self)
        self.services.append(self.volumes)
        from .networks import NetworkService

        self.networks = NetworkService(self)
        self.networks.load()  # before containers reconcile: the teardown of what ended needs the records
        self.services.append(self.networks)
        from .containers.service import ContainerService

        self.containers = ContainerService(self)
        self.execs = self.containers.execs
        await self.containers.reconcile()
        self.images.release_unused()  # images `rmi -f` deleted whose last container went while down
        from .containers.reconcile import resume_interrupted_commits

        await resume_interrupted_commits(self.containers)  # the old state of a commit a crash cut short
        await self.networks.reconcile({cid for cid, c in self.containers.containers.items() if c.running})
        await self.volumes.reconcile(self.containers)
        self.services.append(self.containers)
        from .api import make_app
        from .api.limits import LimitedAppRunner, Limits

        app = await make_app(self)
        for result in self.plugins.hook.startup(daemon=self):
            await await_me_maybe(result)
        self.plugins.settle(self)  # request hooks a module has nothing to do with here: off the request path
        # streaming and hijacked connections must not hold a shutdown for long (2 s, then cancelled);
        # request limits (header and idle timeouts, connections per peer) on every connection
        self.runner = LimitedAppRunner(app, limits=Limits.from_config(c), access_log=log if c.debug else None,
                                       handle_signals=False, shutdown_timeout=2.0)
        await self.runner.setup()
        for url in c.hosts:
            scheme = self._transport_scheme(url)
            await self.transports[scheme].site(self.runner, url, c)
            log.info("API listening on %s", url)
        self.events.emit("daemon", "start", self.id, name=os.uname().nodename)

    def _remap(self) -> None:
        """``--userns-remap``: the mapping, and dockerd's per-mapping data root
        ``<data-root>/<uid>.<gid>`` (everything below it: images, containers, volumes)."""
        import dataclasses

        from . import userns

        self.userns = userns.resolve(self.config.userns_remap or "")  # only called when it is set
        userns.activate(self.userns)  # the layer code shifts what it unpacks and exports
        root = userns.data_root(self.config.data_root, self.userns)
        self.config = dataclasses.replace(self.config, data_root=root)
        log.info("user namespaces: containers' root is %d:%d on the host (%s:%s), data root %s",
                 self.userns.root_uid, self.userns.root_gid, self.userns.user, self.userns.group, root)

    def _map_storage(self) -> None:
        from .drivers.storage import IdMappedStorage

        storage = self.drivers.get("storage")
        if storage is None:
            return
        if not isinstance(storage, IdMappedStorage):
            raise ConfigError(f"storage driver {storage.name} does not "
                              "support --userns-remap")
        storage.use_id_mapping(self.userns)

    def _load_drivers(self) -> None:
        c = self.config
        for kind, (attr, candidates) in DRIVER_KINDS.items():
            name = getattr(c, attr)
            if kind == "runtime" and name is not None and name not in entry_point_names(GROUPS["runtime"]):
                self.drivers[kind] = self._load_serving_runtime(name)  # --default-runtime runc, as dockerd's
                continue
            try:
                self.drivers[kind] = self.plugins.load_driver(
                    kind, name, candidates=candidates, config=functools.partial(self._driver_config, kind),
                    root=c.data_root, state=c.exec_root,
                )
            except PluginError:
                if name is not None:
                    raise
                log.warning("no %s driver available: features that need one are disabled", kind)
        self._load_extra_runtimes()
        for info in self.plugins.loaded:
            if info.capabilities is not None:
                log.info("%s driver %s: capabilities %s", info.group, info.name, ", ".join(info.capabilities) or "none")

    def _load_serving_runtime(self, name: str) -> Any:
        """The default runtime given as a ``HostConfig.Runtime`` name no runtime driver is called
        (``--default-runtime runc``, a name of the ``runtimes`` table): the installed runtime driver
        that serves it (``runtime-names``), with ``name`` what containers get by default."""
        from .drivers import contracts

        installed = [n for n in entry_point_names(GROUPS["runtime"]) if n not in blocked_names()]
        served: list[str] = []
        for choice in (n for n in EXTRA_RUNTIMES if n in installed):
            try:
                driver = self.plugins.load_driver(
                    "runtime", choice, config=lambda ch: self._driver_config("runtime", ch),
                    root=self.config.data_root, state=self.config.exec_root)
            except (PluginError, SkipPlugin) as exc:
                log.info("runtime %s not available: %s", choice, exc)
                continue
            names = driver.names() if contracts.record("runtime", driver).has("runtime-names") else [choice]
            if name in names:
                self._default_runtime_name = name
                return driver
            served += names
        raise PluginError(
            f"default runtime {name!r} is neither an installed runtime driver nor a runtime name one serves; "
            f"installed runtime drivers: {', '.join(installed) or 'none'}"
            + (f"; runtime names served: {', '.join(dict.fromkeys(served))}" if served else ""))

    def _load_extra_runtimes(self) -> None:
        """Runtime drivers serving other ``--runtime`` names beside the default (the oci plugin:
        runc and the binaries of its ``runtimes`` table), when installed and usable here."""
        default = self.drivers.get("runtime")
        if default is None:
            return
        extras = []
        for name in EXTRA_RUNTIMES:
            if name == default.name or name not in entry_point_names(GROUPS["runtime"]):
                continue
            try:
                extras.append(self.plugins.load_driver(
                    "runtime", None, candidates=[name], config=lambda choice: self._driver_config("runtime", choice),
                    root=self.config.data_root, state=self.config.exec_root))
            except (PluginError, SkipPlugin) as exc:
                log.info("runtime %s not available: %s", name, exc)
        from .containers.runtimes import RuntimeSet

        # core routes by container and capability
        self.drivers["runtime"] = RuntimeSet(default, extras, name=self._default_runtime_name)

    def _driver_config(self, kind: str, name: str) -> dict[str, Any]:
        """A driver's ``[plugins.NAME]`` table. Daemons with different data roots get their own
        cgroup parent unless one is configured, so they never treat each other's containers'
        cgroups as stale."""
        section = self.config.plugin_config(name)
        if kind == "runtime" and name == "oci" and self.config.runtimes:  # dockerd's runtimes key
            section["runtimes"] = {**self.config.runtimes, **(section.get("runtimes") or {})}
        if kind == "cgroups" and self.config.data_root != cfg.DaemonConfig.data_root:
            digest = hashlib.sha256(str(self.config.data_root.resolve()).encode()).hexdigest()[:8]
            section.setdefault("parent", f"dockyard-{digest}")
        return section

    def _load_transports(self) -> None:
        c = self.config
        for url in c.hosts:
            scheme = self._transport_scheme(url)
            if scheme not in self.transports:
                self.transports[scheme] = self.plugins.load_driver(
                    "transport", scheme, config=c.plugin_config(scheme),
                    root=c.data_root, state=c.exec_root,
                )

    def _transport_scheme(self, url: str) -> str:
        """The transport for a URL: its scheme, except that ``tcp://`` means TLS when
        ``--tls``/``--tlsverify`` is on (as in dockerd)."""
        scheme = urlsplit(url).scheme or "unix"
        if scheme == "tcp" and self.config.tls_enabled:
            return "tls"
        return scheme

    async def stop(self) -> None:
        log.info("shutting down")
        if self.runner is not None:
            await self.runner.cleanup()
        for transport in self.transports.values():
            await transport.close()
        for result in self.plugins.hook.shutdown(daemon=self):
            try:
                await await_me_maybe(result)
            except Exception:
                log.exception("shutdown hook failed")
        for service in reversed(self.services):
            close = getattr(service, "close", None)
            if close is not None:
                await await_me_maybe(close())
        from .drivers import contracts

        for kind, driver in self.drivers.items():
            # storage has close() in its base contract; the runtime set closes its runtimes;
            # a cgroup driver only when it has the capability
            if kind in ("storage", "runtime") or contracts.record(kind, driver).has("close"):
                try:
                    await await_me_maybe(driver.close())
                except Exception:
                    log.exception("closing the %s driver failed", kind)
        for task in list(self._background):
            task.cancel()

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        for result in self.plugins.hook.on_event(event=event):
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                task.add_done_callback(_log_task_error)

    # -- what /info says ---------------------------------------------------------------

    @property
    def id(self) -> str:
        path = self.config.data_root / "engine-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            import uuid

            value = str(uuid.uuid4())
            path.write_text(value)
            return value

    async def info(self) -> dict[str, Any]:
        h, c = self.host, self.config
        cgroups = self.drivers.get("cgroups")
        storage = self.drivers.get("storage")
        runtime = self.drivers.get("runtime")
        info: dict[str, Any] = {
            "ID": self.id,
            "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
            "Images": 0,
            "Driver": storage.name if storage is not None else "none",
            "DriverStatus": storage.status() if storage is not None else [],
            "Plugins": {
                "Volume": entry_point_names(GROUPS["volume"]),
                "Network": entry_point_names(GROUPS["network"]),
                # hook modules whose authorize_* hooks are active under this config (Plugins.settle),
                # as dockerd lists only the authorization plugins configured
                "Authorization": sorted({i.plugin_name for h in ("authorize_request", "authorize_container")
                                         for i in self.plugins.active(h).get_hookimpls()}) or None,
                # the registered log drivers (dockyard.logging)
                "Log": self.containers.logging.drivers.names() if self.containers is not None else [],
            },
            "MemoryLimit": cgroups is not None, "SwapLimit": cgroups is not None,
            "KernelMemory": False, "KernelMemoryTCP": False,
            "CpuCfsPeriod": cgroups is not None, "CpuCfsQuota": cgroups is not None,
            "CPUShares": cgroups is not None, "CPUSet": cgroups is not None,
            "PidsLimit": cgroups is not None, "OomKillDisable": False,
            "IPv4Forwarding": h.ip_forwarding(), "BridgeNfIptables": False, "BridgeNfIp6tables": False,
            "Debug": c.debug, "NFd": len(os.listdir("/proc/self/fd")), "NGoroutines": len(asyncio.all_tasks()),
            "SystemTime": rfc3339_nano(time.time_ns(), local=True),
            "LoggingDriver": c.log_driver,
            "CgroupDriver": cgroups.driver if cgroups is not None else "none",
            "CgroupVersion": str(cgroups.version) if cgroups is not None else "",
            "NEventsListener": len(self.events.subscribers),
            "KernelVersion": h.kernel,
            "OperatingSystem": h.os_release.get("PRETTY_NAME", "Linux"),
            "OSVersion": h.os_release.get("VERSION_ID", ""),
            "OSType": "linux",
            "Architecture": os.uname().machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
            "NCPU": h.ncpu, "MemTotal": h.mem_total,
            "GenericResources": None,
            "DockerRootDir": str(c.data_root),
            "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
            "Name": os.uname().nodename,
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            # exactly the runtimes --runtime can name (runc only with the oci plugin and its binary)
            "Runtimes": {name: {"path": runtime.path_of(name)} for name in sorted(runtime.names())}
            if runtime is not None else {},
            "DefaultRuntime": runtime.name if runtime is not None else "none",
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": False,
                      "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": c.live_restore,
            "Isolation": "",
            "InitBinary": "docker-init",
            "ContainerdCommit": {"ID": "", "Expected": ""},
            "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""},
            "SecurityOptions": (["name=seccomp,profile=builtin", "name=no-new-privileges"]
                                + (["name=userns"] if self.userns is not None else []))
            if runtime else [],
            "Warnings": None,
            # Dockyard's own: every loaded driver and hook module with its distribution
            "DockyardApiVersion": API_VERSION,
            "DockyardPlugins": [p.to_json() for p in self.plugins.loaded],
        }
        for service in self.services:
            extra = getattr(service, "info", None)
            if extra is not None:
                info.update(await await_me_maybe(extra()))
        return info


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("on_event hook failed", exc_info=task.exception())


# -- process-level concerns: logging, lock, pidfile, signals ------------------------------


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            # UTC, as the Z says (dockerd's logrus JSON lines are RFC 3339 too)
            "time": rfc3339_millis(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(config: cfg.DaemonConfig) -> None:
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level, config.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class DataRootLock:
    """An exclusive flock on ``<data-root>/dockyardd.lock``: one daemon per data root."""

    def __init__(self, data_root: Path) -> None:
        self.path = data_root / "dockyardd.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode().strip() or "unknown"
            os.close(fd)
            raise PluginError(
                f"another dockyardd (pid {holder}) is using the data root {self.path.parent}; "
                "stop it or choose another --data-root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None


def write_pidfile(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)


async def serve(config: cfg.DaemonConfig) -> None:
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    from . import sdnotify

    try:
        sdnotify.status("starting")
        await daemon.start()
        log.info("dockyardd %s ready (pid %d)", __version__, os.getpid())
        sdnotify.ready(f"dockyardd {__version__}: API serving on {', '.join(config.hosts)}")
        await stop.wait()
    finally:
        sdnotify.stopping("shutting down")
        await daemon.stop()


def run(config: cfg.DaemonConfig) -> None:
    setup_logging(config)
    lock = DataRootLock(config.data_root)
    lock.acquire()
    try:
        write_pidfile(config.pidfile_path)
        try:
            try:
                import uvloop

                runner: Any = uvloop.run
            except ImportError:
                runner = asyncio.run
            runner(serve(config))
        finally:
            config.pidfile_path.unlink(missing_ok=True)
    finally:
        lock.release()


# -- the command line (dockyard.daemon_cli) -------------------------------------------------

#: what parsing the command line imports and the running daemon never needs (uuid and gettext
#: are click's: they stay when something imported them before, as aiohttp does)
_PARSER_MODULES = ("click", "dockyard.daemon_cli", "difflib", "uuid", "gettext")


def _unload_parser(loaded_before: set[str]) -> None:
    """Forget the command-line parser's modules (those it imported: ``difflib`` stays when
    something else had it) and collect them: their code is 1 MB of an idle daemon."""
    gone = [m for m in list(sys.modules) if m not in loaded_before
            and any(m == p or m.startswith(p + ".") for p in _PARSER_MODULES)]
    for name in gone:
        del sys.modules[name]
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            sys.modules[parent].__dict__.pop(child, None)
    gc.collect()


def limit_malloc_arenas() -> bool:
    """One glibc malloc arena for all the daemon's threads (``mallopt(M_ARENA_MAX, 1)``), unless
    the operator set ``MALLOC_ARENA_MAX``. glibc gives each thread that allocates under
    contention an arena of its own (up to 8 per core), and freed memory stays in the arena it
    came from: the executor's threads kept 3-4 MB after work (a mixed run, load, save, build,
    exec, logs and a user network: 39.3 -> 36.0 MB anon at rest; 57.6 -> 43.5 MB at its peak;
    idle 32.9 -> 32.1). Python allocates under the GIL, so threads hardly contend for one arena.
    Called first thing in :func:`main`: glibc fixes the limit when a second thread first allocates."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(-8, 1))  # M_ARENA_MAX


def main(argv: list[str] | None = None) -> None:
    limit_malloc_arenas()  # before any thread
    loaded_before = set(sys.modules)
    from . import daemon_cli

    flags, config_file = daemon_cli.parse(argv)  # exits for --help, --version, usage errors, non-root
    del daemon_cli
    _unload_parser(loaded_before)
    if config_file is None and DEFAULT_CONFIG_FILE.exists():
        config_file = DEFAULT_CONFIG_FILE
    try:
        config = cfg.build(flags, config_file)
        run(config)
    except (PluginError, ConfigError) as exc:
        print(f"dockyardd: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (KeyboardInterrupt, EOFError):  # as click's standalone mode did around the whole run
        print("Aborted!", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
