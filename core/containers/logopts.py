"""A container's log options and files: Docker's ``--log-opt`` checks (max-size, max-file,
compress) and where the output goes (json-file's ``<id>-json.log``, the binary records)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import parse_size
from ..errors import ConfigError, InvalidArgument
from . import options, syslog
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService


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


def container_limits(svc: ContainerService, c: Container) -> tuple[int, int]:
    """``--log-opt max-size/max-file`` of the container, else the daemon's ``log-opts``: the
    binary records (the local driver's store, and attach's stream for json-file too, so a
    client attached to a fast writer reads as before)."""
    opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
    driver = options.log_driver(c.host_config)
    if driver == "none":  # nothing kept for docker logs: a small buffer that attach reads
        return log_limits(opts, {"max-size": "1m", "max-file": "1"}, driver)
    size, files = svc.log_defaults
    return log_limits(opts, {"max-size": str(size), "max-file": str(files)}, driver)


def json_log(svc: ContainerService, c: Container) -> tuple[Path, int, int, bool] | None:
    """json-file: (path, max size, max files) of the file the shim writes in Docker's format."""
    if options.log_driver(c.host_config) != "json-file":
        return None
    opts = (c.host_config.get("LogConfig") or {}).get("Config") or {}
    size, files = svc.log_defaults
    size, files = log_limits(opts, {"max-size": str(size), "max-file": str(files)})
    return json_log_path(svc, c), size, files, log_compress(opts)


def json_log_path(svc: ContainerService, c: Container) -> Path:
    return svc.dir(c) / f"{c.id}-json.log"


def channel_path(svc: ContainerService, c: Container) -> Path:
    """The binary records of the container's output (the local driver's store; attach's stream)."""
    return svc.dir(c) / "container.log"


def log_path(svc: ContainerService, c: Container) -> Path | None:
    """Inspect's LogPath: Docker's <id>-json.log for json-file; none for other drivers (Docker
    keeps the local driver's file out of the API)."""
    if options.log_driver(c.host_config) == "json-file":
        return json_log_path(svc, c)
    return None
