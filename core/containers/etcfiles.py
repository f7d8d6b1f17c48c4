"""The files a container gets at ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf``.

They live in the container's directory and are bind-mounted over the image's, as Docker does.
This module is their only writer; the others call it:

* create: :func:`write` (all three);
* networks (endpoint addresses at start or ``network connect``): :func:`write_hosts`;
* legacy ``--link`` at start: :func:`append_hosts`;
* the embedded DNS (``nameserver 127.0.0.11`` or the host-style file): :func:`write_resolv_conf`,
  :func:`read_resolv_conf`.

Once a container runs, a file is bind-mounted: it is rewritten in place (same inode), never
replaced by a rename, or the container would keep seeing the old one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from pathlib import Path
from typing import Any

from .. import container_defaults

NAMES = ("hostname", "hosts", "resolv.conf")
FALLBACK_DNS = ["8.8.8.8", "8.8.4.4"]


def paths(directory: Path) -> dict[str, Path]:
    return {name: directory / name for name in NAMES}


HOST_RESOLV = "/etc/resolv.conf"
_host_resolv_kept: tuple[tuple[int, int, int, int], list[str]] | None = None  # (file's identity, lines)


def _host_resolv() -> list[str]:
    """The host's resolv.conf in lines, read again only when the file changes (a stat, not
    an open and two reads at every create and start)."""
    global _host_resolv_kept
    try:
        st = os.stat(HOST_RESOLV)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if _host_resolv_kept is not None and _host_resolv_kept[0] == key:
            return list(_host_resolv_kept[1])
        lines = Path(HOST_RESOLV).read_text().splitlines()
    except OSError:
        return []
    _host_resolv_kept = (key, lines)
    return list(lines)


def resolv_conf(host_config: dict[str, Any]) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from a container's
    own network namespace), with ``--dns``, ``--dns-search`` and ``--dns-option`` applied
    (else the daemon's ``dns``, ``dns-search``, ``dns-opts``)."""
    host_config = container_defaults.dns(host_config)
    lines = _host_resolv()
    servers = [s for s in host_config.get("Dns") or []]
    if not servers:
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    if not ipaddress.ip_address(parts[1]).is_loopback:
                        servers.append(parts[1])
                except ValueError:
                    continue
        servers = servers or FALLBACK_DNS
    return format_resolv_conf(servers, host_config, lines)


def format_resolv_conf(servers: list[str], host_config: dict[str, Any], host_lines: list[str]) -> str:
    """``nameserver`` lines for ``servers``, then ``--dns-search``/``--dns-option`` or else
    the host's ``search`` and ``options`` lines."""
    search = list(host_config.get("DnsSearch") or []) or [
        w for line in host_lines if line.startswith("search") for w in line.split()[1:]]
    options = list(host_config.get("DnsOptions") or []) or [
        w for line in host_lines if line.startswith("options") for w in line.split()[1:]]
    out = [f"nameserver {s}" for s in servers]
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    return "\n".join(out) + "\n"


def hosts(config: dict[str, Any], host_config: dict[str, Any], address: str | None = None,
          address6: str | None = None) -> str:
    hostname = config.get("Hostname") or ""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for entry in host_config.get("ExtraHosts") or []:
        name, _, ip = entry.partition(":")
        if ip == "host-gateway":
            continue  # needs a network; the bridge driver fills it in
        lines.append(f"{ip}\t{name}")
    domain = config.get("Domainname") or ""
    names = f"{hostname}.{domain} {hostname}" if hostname and domain else hostname  # as Docker
    if address:
        lines.append(f"{address}\t{names}")
        if address6:  # on a network with IPv6, Docker lists the IPv6 address too
            lines.append(f"{address6}\t{names}")
    elif hostname:
        lines[0] += f" {names}"
    return "\n".join(lines) + "\n"


def write_hosts(directory: Path, config: dict[str, Any], host_config: dict[str, Any], address: str | None,
                address6: str | None = None) -> None:
    """Rewrite ``hosts`` in place (same inode: a running container's bind mount sees it),
    and only when its content changes (a start without an address writes what create wrote:
    a read is cheaper than ext4's truncate and rewrite)."""
    path = paths(directory)["hosts"]
    text = hosts(config, host_config, address, address6)
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    with open(path, "w") as f:
        f.write(text)


def host_network_files(host_config: dict[str, Any]) -> tuple[str, str]:
    """``hosts`` and ``resolv.conf`` for ``--network host``, as Docker: copies of the host's
    (its loopback resolvers are reachable there) plus ``--add-host``; ``--dns*`` still apply."""
    try:
        text = Path("/etc/hosts").read_text()
    except OSError:
        text = hosts({}, {})
    extra = [f"{ip}\t{name}" for name, _, ip in (e.partition(":") for e in host_config.get("ExtraHosts") or [])
             if ip != "host-gateway"]
    text = text + ("" if text.endswith("\n") or not text else "\n") + "".join(f"{e}\n" for e in extra)
    host_config = container_defaults.dns(host_config)
    if any(host_config.get(k) for k in ("Dns", "DnsSearch", "DnsOptions")):
        return text, resolv_conf(host_config)
    return text, "\n".join(_host_resolv()) + "\n"


def append_hosts(directory: Path, lines: list[str]) -> None:
    """Add lines to an existing ``hosts`` (legacy links at start), in place."""
    path = paths(directory)["hosts"]
    if lines and path.exists():
        with open(path, "a") as f:  # same inode: the bind mount sees it
            f.write("".join(line + "\n" for line in lines))


def read_resolv_conf(directory: Path) -> str | None:
    with contextlib.suppress(OSError):
        return paths(directory)["resolv.conf"].read_text()
    return None


def write_resolv_conf(directory: Path, text: str) -> None:
    """Rewrite ``resolv.conf`` in place (same inode: a new file renamed over it would stay
    invisible to a running container), and only when its content changes."""
    if read_resolv_conf(directory) == text:
        return
    path = paths(directory)["resolv.conf"]
    with open(path, "w") as f:  # truncates: the same inode
        f.write(text)
    path.chmod(0o644)


def write(directory: Path, config: dict[str, Any], host_config: dict[str, Any], address: str | None = None) -> None:
    """All three files, at create."""
    p = paths(directory)
    p["hostname"].write_text((config.get("Hostname") or "") + "\n")  # Docker: without the domain
    if host_config.get("NetworkMode") == "host":
        hosts_text, resolv_text = host_network_files(host_config)
    else:
        hosts_text, resolv_text = hosts(config, host_config, address), resolv_conf(host_config)
    p["hosts"].write_text(hosts_text)
    p["resolv.conf"].write_text(resolv_text)
    for path in p.values():
        path.chmod(0o644)
