"""A container's log driver: chosen by name from the ``dockyard.logging`` registry (one place,
:class:`dockyard.drivers.logging.LogDrivers`), its ``--log-opt`` checked by the driver at
create, what the shim writes (:class:`~dockyard.drivers.logging.ShimOutput`), the daemon's
forwarding for drivers that take the lines from the daemon, and ``docker logs``' reader."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..builtin.logdrivers import file_limits
from ..drivers.logging import (DEFAULT_LIMITS, GROUP, ForwardedLogs, LogDriver, LogDrivers, LogInfo, ReadableLogs,
                               ShimOutput)
from ..errors import ConfigError, DockyardError, InvalidArgument
from . import options  # logforward: by the first forwarded log driver (idle memory)
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService

log = logging.getLogger("dockyard.logging")


class ContainerLogging:
    """The containers' log drivers: the registry, the daemon's ``log-driver``/``log-opts``,
    and the forwarding tasks of running containers."""

    def __init__(self, config: Any, plugins: Any = None) -> None:
        self.drivers = LogDrivers(config)
        self.default_driver: str = getattr(config, "log_driver", "json-file") or "json-file"
        self.daemon_opts: dict[str, str] = dict(getattr(config, "log_opts", {}) or {})
        # the engine's file limits: the daemon's log-opts max-size/max-file, else 10m x 3
        self.defaults = {**DEFAULT_LIMITS, **{k: v for k, v in self.daemon_opts.items() if k in DEFAULT_LIMITS}}
        try:
            self.drivers.get(self.default_driver).validate(self.daemon_opts, self.defaults)
            file_limits({}, self.defaults, self.default_driver)
        except InvalidArgument as exc:
            raise ConfigError(f"log-opts: {exc}") from None
        self.forwarders: dict[str, asyncio.Task[None]] = {}
        self._sinks: dict[str, Any] = {}
        if plugins is not None:  # loaded and checked against LogDriver once, listed by `dockyard plugins`
            for name in self.drivers.names():  # a driver that fails to load stops the daemon (PluginError)
                plugins.register(self.drivers.get(name), GROUP, name, self.drivers.capabilities(name))

    @property
    def limits(self) -> tuple[int, int]:
        return file_limits({}, self.defaults, "")

    def driver(self, hc: dict[str, Any]) -> LogDriver:
        return self.drivers.get(options.log_driver(hc))

    # -- create --------------------------------------------------------------------------------

    def configure(self, request_hc: dict[str, Any] | None, host_config: dict[str, Any]) -> None:
        """dockerd's rules: no ``--log-driver`` means the daemon's; a container of the daemon's
        driver gets its ``log-opts`` for the keys it leaves out (inspect shows them); then the
        driver checks the options (a 400 naming the driver or the option)."""
        lc = host_config["LogConfig"]
        if not ((request_hc or {}).get("LogConfig") or {}).get("Type"):
            lc["Type"] = self.default_driver
        if lc["Type"] == self.default_driver:
            lc["Config"] = {**self.daemon_opts, **(lc.get("Config") or {})}

    def validate(self, host_config: dict[str, Any]) -> None:
        lc = host_config.get("LogConfig") or {}
        driver = self.driver(host_config)  # unknown: Docker's "logger: no log driver named 'X' is registered"
        lc["Config"] = driver.validate(dict(lc.get("Config") or {}), self.defaults)

    # -- start ---------------------------------------------------------------------------------

    def info(self, svc: ContainerService, c: Container) -> LogInfo:
        return LogInfo(
            container_id=c.id, name=c.name.lstrip("/"), image_name=c.image, image_id=c.image_id or "",
            config=dict((c.host_config.get("LogConfig") or {}).get("Config") or {}), directory=svc.dir(c),
            labels=dict(c.config.get("Labels") or {}), env=list(c.config.get("Env") or []),
            defaults=dict(self.defaults))

    def shim_output(self, svc: ContainerService, c: Container) -> ShimOutput:
        return self.driver(c.host_config).shim_output(self.info(svc, c))

    def prepare(self, svc: ContainerService, c: Container) -> None:
        """Before the process starts: a forwarded driver's receiver must be there (as Docker,
        a driver that cannot start fails the start)."""
        driver = self.driver(c.host_config)
        if isinstance(driver, ForwardedLogs) and c.id not in self.forwarders:
            old = self._sinks.pop(c.id, None)
            if old is not None:
                old.close()
            self._sinks[c.id] = driver.open(self.info(svc, c))

    def forward(self, svc: ContainerService, c: Container) -> None:
        """The container runs (started, or found running or exited after a daemon restart):
        forward its output to a forwarded driver, from where the last forwarder stopped."""
        driver = self.driver(c.host_config)
        if not isinstance(driver, ForwardedLogs) or svc.runtime is None:
            return
        task = self.forwarders.get(c.id)
        if task is not None and not task.done():
            return
        info = self.info(svc, c)
        sink = self._sinks.pop(c.id, None)
        try:
            if sink is None:
                sink = driver.open(info)
        except DockyardError as exc:
            log.warning("log driver %s of container %s: %s; its output stays in the buffer until the "
                        "next start or daemon restart", driver.name, c.id[:12], exc.message)
            return
        from . import logforward

        fwd = logforward.Forwarder(driver, info, svc.runtime.logs(c.id), sink)
        from ..tasks import spawn

        task = spawn(fwd.run(), f"log forwarder of container {c.id[:12]}")
        self.forwarders[c.id] = task
        task.add_done_callback(self._forgotten(c.id))

    def _forgotten(self, cid: str) -> Any:
        def forget(task: asyncio.Task[None]) -> None:
            if self.forwarders.get(cid) is task:
                del self.forwarders[cid]
        return forget

    async def drained(self, c: Container, timeout: float = 10.0) -> None:
        """Wait (at most ``timeout``, Docker's logger close timeout) for the container's
        forwarder to send what its exit left in the buffer."""
        task = self.forwarders.get(c.id)
        if task is not None and not task.done():
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                log.warning("log driver of container %s: forwarding not done %.0fs after its exit",
                            c.id[:12], timeout)

    def discard(self, c: Container) -> None:
        """The start failed: the sink opened for it is closed."""
        sink = self._sinks.pop(c.id, None)
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.close()

    async def close(self) -> None:
        """Daemon shutdown: the forwarders stop (their cursors are saved); the shim keeps the
        output in its buffer for the next daemon."""
        tasks = list(self.forwarders.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for cid in list(self._sinks):
            self.discard_id(cid)

    def discard_id(self, cid: str) -> None:
        sink = self._sinks.pop(cid, None)
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.close()

    # -- reading -------------------------------------------------------------------------------

    def readable(self, c: Container) -> bool:
        try:
            return isinstance(self.driver(c.host_config), ReadableLogs)
        except DockyardError:  # a driver no longer installed
            return False

    def reader(self, svc: ContainerService, c: Container) -> Any:
        """``docker logs``' reader, or None (a container that never ran)."""
        if not c.has_been_started or svc.runtime is None:
            return None
        driver = self.driver(c.host_config)
        buffer = svc.runtime.logs(c.id)
        if isinstance(driver, ReadableLogs):
            return driver.reader(self.info(svc, c), buffer)
        return None

    def log_path(self, svc: ContainerService, c: Container) -> Path | None:
        try:
            return self.driver(c.host_config).log_path(self.info(svc, c))
        except DockyardError:  # a driver no longer installed: inspect still answers
            return None


# -- the call sites of the containers package (svc.logging does the work) --------------------------

def container_limits(svc: ContainerService, c: Container) -> tuple[int, int]:
    """The shim's binary records (the buffer): bytes a file, files."""
    out = svc.logging.shim_output(svc, c)
    return out.buffer_max_size, out.buffer_max_files


def json_log(svc: ContainerService, c: Container) -> tuple[Path, int, int, bool] | None:
    return svc.logging.shim_output(svc, c).json_file


def syslog_fields(svc: ContainerService, c: Container) -> dict[str, str | int] | None:
    return svc.logging.shim_output(svc, c).syslog


def json_log_path(svc: ContainerService, c: Container) -> Path:
    return svc.dir(c) / f"{c.id}-json.log"


def channel_path(svc: ContainerService, c: Container) -> Path:
    """The binary records of the container's output (the local driver's store; attach's stream)."""
    return svc.dir(c) / "container.log"


def log_path(svc: ContainerService, c: Container) -> Path | None:
    """Inspect's LogPath: the driver's (json-file's ``<id>-json.log``), else none."""
    return svc.logging.log_path(svc, c)
