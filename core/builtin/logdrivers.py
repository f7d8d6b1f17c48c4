"""The built-in log drivers the shim writes for: json-file, local, none, syslog.

Registered in the ``dockyard.logging`` entry-point group like any third-party driver (see
:mod:`dockyard.drivers.logging`); journald is in :mod:`dockyard.builtin.journald`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import parse_size
from ..drivers.logging import DEFAULT_LIMITS, LogInfo, ShimOutput
from ..errors import ConfigError, InvalidArgument
from ..runtime.logfile import JsonLogReader

FILE_OPTS = ("max-size", "max-file", "compress")


def parse_compress(opts: dict[str, str]) -> bool:
    """``--log-opt compress`` (Go's strconv.ParseBool spellings, as Docker)."""
    value = str(opts.get("compress", "false"))
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise InvalidArgument(f'error parsing compress log option: strconv.ParseBool: parsing "{value}": invalid syntax')


def file_limits(opts: dict[str, str], defaults: dict[str, str], driver: str, allowed: tuple[str, ...] = FILE_OPTS,
                compress_ok: bool = False) -> tuple[int, int]:
    """(max size in bytes, max files) from Docker's ``max-size``/``max-file``; a 400 naming a
    bad or unknown option."""
    unknown = set(opts) - set(allowed)
    if unknown:
        raise InvalidArgument(f"unknown log opt '{sorted(unknown)[0]}' for {driver} log driver")
    compress = parse_compress(opts)
    if compress and not compress_ok:
        raise InvalidArgument(f"log opt compress=true is not supported by the {driver} log driver of this engine")
    merged = {**DEFAULT_LIMITS, **defaults, **{k: v for k, v in opts.items() if k in ("max-size", "max-file")}}
    try:
        size, files = parse_size(str(merged["max-size"])), int(merged["max-file"])
    except (ValueError, ConfigError):
        raise InvalidArgument(f"invalid log options: {opts}") from None
    if size < 0 or files < 1:
        raise InvalidArgument("max-size must be >= 0 and max-file >= 1")
    if compress and (files < 2 or size <= 0):  # Docker's check and text
        raise InvalidArgument("compress cannot be true when max-file is less than 2 or max-size is not set")
    return size, files


class _Builtin:
    name = ""
    while_daemon_down = "the shim keeps writing: nothing is lost"

    def __init__(self, config: dict[str, Any] | None = None, **_: Any) -> None:
        self.config = dict(config or {})

    def log_path(self, info: LogInfo) -> Path | None:
        return None


class JsonFileDriver(_Builtin):
    """Docker's json-file format at ``<id>-json.log``, written by the shim (``docs/logging.md``)."""

    name = "json-file"

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        file_limits(opts, defaults, self.name, compress_ok=True)
        return dict(opts)

    def shim_output(self, info: LogInfo) -> ShimOutput:
        size, files = file_limits(info.config, info.defaults, self.name, compress_ok=True)
        # the buffer (attach's stream) at the same limits, so an attached client reads as before
        return ShimOutput(size, files, json_file=(self._path(info), size, files, parse_compress(info.config)))

    def _path(self, info: LogInfo) -> Path:
        return info.directory / f"{info.container_id}-json.log"

    def log_path(self, info: LogInfo) -> Path | None:
        return self._path(info)

    def reader(self, info: LogInfo, buffer: Any) -> Any:
        path = self._path(info)
        if path.exists() or JsonLogReader(path).files():
            return JsonLogReader(path, getattr(buffer, "exit_path", None))
        return buffer  # a runtime that writes no json-file (the fake runtime)


class LocalDriver(_Builtin):
    """The binary records themselves (``dockyard.runtime.logfile``)."""

    name = "local"

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        file_limits(opts, defaults, self.name)
        return dict(opts)

    def shim_output(self, info: LogInfo) -> ShimOutput:
        return ShimOutput(*file_limits(info.config, info.defaults, self.name))

    def reader(self, info: LogInfo, buffer: Any) -> Any:
        return buffer


class NoneDriver(_Builtin):
    """Nothing kept for ``docker logs`` (501, as Docker); a 1 MiB buffer for attach."""

    name = "none"
    while_daemon_down = "nothing is kept (attach's buffer only)"

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        file_limits(opts, {"max-size": "1m", "max-file": "1"}, self.name)
        return dict(opts)

    def shim_output(self, info: LogInfo) -> ShimOutput:
        return ShimOutput(*file_limits(info.config, {"max-size": "1m", "max-file": "1"}, self.name))


class SyslogDriver(_Builtin):
    """One datagram a line, sent by the shim (``dockyard.containers.syslog``)."""

    name = "syslog"
    while_daemon_down = "the shim keeps sending; a datagram the receiver does not take is dropped"

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        from ..containers import syslog  # here: a daemon without syslog containers never needs it

        syslog.validate(opts)
        return dict(opts)

    def shim_output(self, info: LogInfo) -> ShimOutput:
        from ..containers import syslog

        size, files = file_limits({}, {"max-size": "1m", "max-file": "1"}, self.name)  # attach's buffer
        return ShimOutput(size, files, syslog=syslog.fields(info.config, info.container_id, info.name,
                                                            info.image_name, info.image_id))
