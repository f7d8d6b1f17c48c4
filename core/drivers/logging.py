"""Log drivers (``dockyard.logging``): where a container's output goes and how it is read back.

A container's output is read by its monitor, the ``dockyard-shim`` process, not by the
daemon, so it keeps being kept while ``dockyardd`` is down. The shim always writes the
*buffer*: binary records of the output (``container.log``, :mod:`dockyard.runtime.logfile`),
the stream that ``attach`` and ``docker run`` follow. A log driver says what else happens
with the output, in one of two ways:

* **The shim writes it** (:attr:`ShimOutput.json_file`, :attr:`ShimOutput.syslog`): formats the
  shim itself knows (json-file's Docker format, syslog datagrams). They keep being written
  while the daemon is down. Only built-ins can use this: the formats live in ``shim.c``.
* **The daemon forwards it** (:class:`ForwardedLogs`): the daemon follows the buffer and hands
  the driver one :class:`LogMessage` a line (Docker's copier: 16 KiB partial lines, stdout and
  stderr apart). While the daemon is down the shim keeps filling the buffer (limits
  ``max-size`` x ``max-file`` of the daemon's ``log-opts``); after the restart the daemon sends
  what was written meanwhile from where it stopped (a cursor kept beside the container).
  Output that rotated out of the buffer before the daemon came back is lost: the daemon logs
  a warning naming the container and the time span. This is the way for third-party drivers.

Optional capability: :class:`ReadableLogs` (``docker logs``: records, tail, follow, since and
until). A driver without it answers ``docker logs`` with Docker's 501 "configured logging
driver does not support reading".

Drivers are classes in the ``dockyard.logging`` entry-point group, named by the name users
give ``--log-driver``; they are constructed as ``cls(config=<[plugins.NAME] table>)``. The
built-ins (json-file, local, none, syslog, journald) are registered the same way in
dockyard's own ``pyproject.toml``. :class:`LogDrivers` is the one place core picks a driver
by name.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidArgument, PluginError

log = logging.getLogger("dockyard.logging")

GROUP = "dockyard.logging"
#: Docker's 16K copier buffer: a longer line is sent in pieces of this size (partial messages).
MAX_LINE = 16 * 1024
#: the engine's default limits of the buffer and of file drivers without --log-opt / log-opts
DEFAULT_LIMITS = {"max-size": "10m", "max-file": "3"}


@dataclass
class LogInfo:
    """What a driver knows about a container (Docker's ``logger.Info``)."""

    container_id: str
    name: str  # without the leading "/"
    image_name: str
    image_id: str  # "sha256:..."
    config: dict[str, str]  # the container's LogConfig.Config, as validated
    directory: Path  # the container's directory (<data-root>/containers/<id>)
    labels: dict[str, str] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)  # "KEY=value"
    # the daemon's log-opts max-size/max-file (the engine's defaults for file limits)
    defaults: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    daemon_name: str = "docker"

    @property
    def id12(self) -> str:
        return self.container_id[:12]


@dataclass
class ShimOutput:
    """What the shim does with the output besides the buffer."""

    buffer_max_size: int  # the buffer (container.log): bytes a file, 0 = unlimited
    buffer_max_files: int
    # json-file: (path, max size, max files, compress): Docker's JSON lines written by the shim
    json_file: tuple[Path, int, int, bool] | None = None
    # syslog: the shim's syslog_* keys (proto, path/host, port, facility, format, tag)
    syslog: dict[str, str | int] | None = None


@dataclass(slots=True)
class LogMessage:
    """One line of output (Docker's ``logger.Message``)."""

    stream: str  # "stdout" or "stderr" (a TTY's output is stdout)
    line: bytes  # without its newline
    timestamp_ns: int  # when its first byte was read
    partial: bool = False  # a piece of a longer line (16 KiB) or a last line without newline


class LogReaderLike(Protocol):
    """What ``docker logs`` reads (:class:`dockyard.runtime.logfile.LogReader` is one)."""

    def records(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[Any]: ...

    def tail(self, n: int, since_ns: int = 0, until_ns: int = 0) -> list[Any]: ...

    def follow(self, since_ns: int = 0, until_ns: int = 0, tail: int | None = None) -> AsyncIterator[Any]: ...


@runtime_checkable
class LogDriver(Protocol):
    name: str
    #: one sentence for ``docs`` and ``dockyard plugins``: what happens while the daemon is down
    while_daemon_down: str

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        """Docker's checks of ``--log-opt`` (before anything exists): the options to keep, or
        :class:`InvalidArgument` (a 400) naming the option (``unknown log opt 'X' for NAME
        log driver``). ``defaults`` are the daemon's ``log-opts`` limits (max-size,
        max-file) for checks that depend on them."""
        ...

    def shim_output(self, info: LogInfo) -> ShimOutput:
        """What the shim writes for this container (its buffer limits, the shim's own formats)."""
        ...

    def log_path(self, info: LogInfo) -> Path | None:
        """Inspect's ``LogPath`` (json-file's file), or None."""
        ...


@runtime_checkable
class ReadableLogs(Protocol):
    """``docker logs`` reads this driver's store back."""

    def reader(self, info: LogInfo, buffer: Any) -> LogReaderLike | None:
        """The reader for ``docker logs`` (``buffer`` is the runtime's reader of the binary
        records, with its exit file: a reader of another store may use it to know when a
        follow ends)."""
        ...


class LogSink(Protocol):
    def log(self, msg: LogMessage) -> None:
        """Send one message. May block briefly (it runs in the daemon's forwarding task);
        raise OSError when the receiver is gone (the message is counted as lost)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ForwardedLogs(Protocol):
    """The daemon follows the buffer and gives this driver one message a line."""

    def open(self, info: LogInfo) -> LogSink:
        """Called when the container starts (and for each daemon restart while it runs);
        raise a DockyardError to fail the start (e.g. no receiver, as Docker)."""
        ...


class LogDrivers:
    """The installed log drivers, by name: the one place core chooses a log driver."""

    def __init__(self, config: Any = None, blocked: set[str] | None = None) -> None:
        self.config = config  # DaemonConfig or None (its [plugins.NAME] tables)
        from ..plugins import blocked_names

        self.blocked = blocked_names() if blocked is None else blocked
        self._eps = {ep.name: ep for ep in metadata.entry_points(group=GROUP) if ep.name not in self.blocked}
        self._drivers: dict[str, LogDriver] = {}

    def names(self) -> list[str]:
        """What ``docker info`` shows as ``Plugins.Log``: the registered drivers."""
        return sorted(self._eps)

    def __contains__(self, name: object) -> bool:
        return name in self._eps

    def get(self, name: str) -> LogDriver:
        """The driver called ``name`` (loaded once), or Docker's 400."""
        name = name or "json-file"
        if name == "dockyard":  # this engine's old name of the binary store
            name = "local"
        driver = self._drivers.get(name)
        if driver is not None:
            return driver
        ep = self._eps.get(name)
        if ep is None:
            raise InvalidArgument(f"logger: no log driver named '{name}' is registered")
        try:
            cls = ep.load()
            section = self.config.plugin_config(name) if self.config is not None else {}
            driver = cls(config=section)
        except Exception as exc:
            raise PluginError(f"log driver {name!r} failed to load: {exc}") from exc
        if not isinstance(driver, LogDriver):
            raise PluginError(f"log driver {name!r} does not implement the LogDriver protocol "
                              "(name, while_daemon_down, validate, shim_output, log_path)")
        self._drivers[name] = driver
        return driver

    def capabilities(self, name: str) -> list[str]:
        d = self.get(name)
        return [cap for cap, proto in (("ReadableLogs", ReadableLogs), ("ForwardedLogs", ForwardedLogs))
                if isinstance(d, proto)]
