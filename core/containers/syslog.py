"""The syslog log driver's options (Docker's ``--log-opt syslog-*``, ``tag``) -> the shim's spec
keys. The shim sends each line as one datagram (see shim.c slog_*), so it keeps sending while
the daemon is down; ``docker logs`` does not read syslog back (as Docker)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from ..errors import InvalidArgument

OPTS = {"syslog-address", "syslog-facility", "syslog-format", "tag"}
FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7, "uucp": 8,
    "cron": 9, "authpriv": 10, "ftp": 11, **{f"local{i}": 16 + i for i in range(8)},
}
DEFAULT_SOCKET = "/dev/log"


def validate(opts: dict[str, str]) -> None:
    """Docker's 400s for the syslog driver's options (before anything exists)."""
    unknown = set(opts) - OPTS
    if unknown:
        key = sorted(unknown)[0]
        if key.startswith("syslog-tls") or key in ("labels", "labels-regex", "env", "env-regex"):
            raise InvalidArgument(f"log opt '{key}' of the syslog log driver is not supported by this engine")
        raise InvalidArgument(f"unknown log opt '{key}' for syslog log driver")
    _address(opts.get("syslog-address") or "")
    facility = opts.get("syslog-facility") or "daemon"
    if facility not in FACILITIES and not (facility.isdigit() and int(facility) <= 23):
        raise InvalidArgument("invalid syslog facility value")
    if (opts.get("syslog-format") or "") not in FORMATS:
        raise InvalidArgument("Invalid syslog format")
    check_tag(opts.get("tag") or "")


def check_tag(tag: str) -> None:
    """``--log-opt tag`` (syslog, journald): the templates this engine replaces, else a 400."""
    if "{{" in _tag(tag, "0" * 64, "n", "i", "sha256:" + "0" * 64):
        raise InvalidArgument(f"log opt tag {tag!r}: only {{{{.ID}}}}, {{{{.FullID}}}}, {{{{.Name}}}}, "
                              "{{.ImageName}}, "
                              "{{.ImageID}}, {{.ImageFullID}}, {{.DaemonName}} are supported by this engine")


def _address(addr: str) -> dict[str, str | int]:
    """``unix:///p``, ``unixgram:///p`` (datagrams), ``udp://host[:port]``; tcp and tcp+tls refused."""
    if not addr:
        return {"proto": "unix", "path": DEFAULT_SOCKET}
    scheme, sep, rest = addr.partition("://")
    if not sep:
        raise InvalidArgument(f"syslog-address should be in form proto://address, got {addr!r}")
    if scheme in ("unix", "unixgram"):
        if not rest.startswith("/"):
            raise InvalidArgument(f"syslog-address: {addr!r} is not an absolute socket path")
        return {"proto": "unix", "path": rest}
    if scheme in ("tcp", "tcp+tls"):
        raise InvalidArgument(f"syslog-address {scheme}:// is not supported by this engine (unix, unixgram, udp)")
    if scheme != "udp":
        raise InvalidArgument(f"unsupported scheme: '{scheme}'")
    host, port = rest, "514"
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:] if tail.startswith(":") else port
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"syslog-address: invalid port in {addr!r}")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            ip = ipaddress.ip_address(socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0])
        except (OSError, IndexError):
            raise InvalidArgument(f"syslog-address: cannot resolve {host!r}") from None
    return {"proto": f"udp{ip.version}", "host": str(ip), "port": int(port)}


def render_tag(tag: str, cid: str, name: str, image: str, image_id: str) -> str:
    """Docker's log tag (default ``{{.ID}}``, the 12-character ID) for a container."""
    return _tag(tag, cid, name.lstrip("/"), image, image_id or "")


def _tag(tag: str, cid: str, name: str, image: str, image_id: str) -> str:
    digest = image_id.split(":", 1)[-1]
    values = {"ID": cid[:12], "FullID": cid, "Name": name, "ImageName": image, "ImageID": digest[:12],
              "ImageFullID": image_id, "DaemonName": "docker"}
    out = tag or "{{.ID}}"
    for key, value in values.items():
        out = out.replace("{{.%s}}" % key, value)
    return out


def fields(opts: dict[str, str], cid: str, name: str, image: str, image_id: str) -> dict[str, str | int]:
    """The shim's syslog_* keys for a container."""
    out = {f"{k}": v for k, v in _address(opts.get("syslog-address") or "").items()}
    facility = opts.get("syslog-facility") or "daemon"
    out["facility"] = int(facility) if facility.isdigit() else FACILITIES[facility]
    out["format"] = opts.get("syslog-format") or ""
    out["tag"] = _tag(opts.get("tag") or "", cid, name.lstrip("/"), image, image_id or "")
    return out


def spec_fields(opts: dict[str, str], c: Any) -> dict[str, str | int]:
    """The shim's syslog_* keys for container ``c``."""
    return fields(opts, c.id, c.name, c.image, c.image_id or "")
