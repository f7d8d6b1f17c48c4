"""Start-time parts of ``docker run`` options that the runtime's spec has no field for:
``--domainname`` (a UTS namespace prepared here), ``--sysctl net.*`` (written in the
container's network namespace), ``--link`` (``/etc/hosts`` entries and ``ALIAS_*``
variables), ``--pid container:`` and ``--ipc container:``.

The runtime joins a namespace given as a path, so ``--domainname`` works without runtime
support: a thread unshares a UTS namespace, sets the host and domain names, and pins it
with a bind mount under ``<exec-root>/uts``; the pin is dropped as soon as the container's
process holds the namespace (:func:`release`), so nothing outlives the start.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any

from ..errors import Conflict, InvalidArgument, NotFound
from ..lifecycle import State
from ..networks import netns
from . import configure

CLONE_NEWUTS = 0x04000000
MS_BIND = 4096
_libc = ctypes.CDLL(None, use_errno=True)


# -- --domainname ---------------------------------------------------------------------------

def _pin_uts(path: Path, hostname: str, domainname: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    netns.remove(path)

    def make() -> None:
        netns._check(_libc.unshare(CLONE_NEWUTS), "unshare(CLONE_NEWUTS)")
        for fn, value in ((_libc.sethostname, hostname), (_libc.setdomainname, domainname)):
            raw = value.encode()
            netns._check(fn(raw, len(raw)), f"{fn.__name__}({value})")
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
        try:
            netns._check(_libc.mount(b"/proc/thread-self/ns/uts", str(path).encode(), None, MS_BIND, None),
                         f"bind mount of a UTS namespace on {path}")
        except BaseException:
            os.unlink(path)
            raise

    netns._in_thread(make)


def uts_path(svc: Any, c: Any) -> Path:
    return Path(svc.daemon.config.exec_root) / "uts" / c.id


def release(svc: Any, c: Any) -> None:
    """Drop the UTS pin of ``c`` (after its start, or when the start failed)."""
    path = uts_path(svc, c)
    if path.exists():
        netns.remove(path)


def remove_stale_pins(svc: Any) -> None:
    """Daemon start: a pin exists only during a start, so any left is from a crash."""
    directory = Path(svc.daemon.config.exec_root) / "uts"
    for path in netns.mounted_under(directory):
        netns.remove(path)
    if directory.is_dir():
        for path in directory.iterdir():
            path.unlink(missing_ok=True)


# -- --link -----------------------------------------------------------------------------------

def parse_link(link: str) -> tuple[str, str]:
    """``name:alias`` or ``name`` (alias = name); Docker also stores ``/name:/me/alias``."""
    name, _, alias = link.partition(":")
    name = name.strip("/")
    alias = alias.rsplit("/", 1)[-1] if alias else name
    if not name or not alias:
        raise InvalidArgument(f"invalid link: {link!r}")
    return name, alias


def all_links(hc: dict[str, Any], networks: dict[str, Any]) -> list[str]:
    """``HostConfig.Links`` and every endpoint's ``Links`` (docker-py, ``network connect --link``)."""
    links = list(hc.get("Links") or [])
    for settings in networks.values():
        links += [v for v in settings.get("Links") or [] if v not in links]
    return links


def check_links(svc: Any, hc: dict[str, Any], networks: dict[str, Any] | None = None) -> None:
    """At create, as Docker: every target must exist; links need a network of our own."""
    for value in (hc.get("Links"), *((s or {}).get("Links") for s in (networks or {}).values())):
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            raise InvalidArgument("Links must be a list of strings")
    links = all_links(hc, networks or {})
    if not links:
        return
    mode = hc.get("NetworkMode") or "default"
    if mode == "host":
        raise InvalidArgument("conflicting options: host type networking can't be used with links. "
                              "This would result in undefined behavior")
    if mode.startswith("container:"):
        raise InvalidArgument("conflicting options: container type network can't be used with links. "
                              "This would result in undefined behavior")
    for link in links:
        name, _ = parse_link(link)
        try:
            svc.get(name)
        except NotFound:
            raise InvalidArgument(f"could not get container for {name}: No such container: {name}") from None


def _address_of(target: Any, c: Any) -> str:
    """The target's address on a network both share, else its first address."""
    for name, settings in c.networks.items():
        other = target.networks.get(name) or {}
        if other.get("IPAddress"):
            return other["IPAddress"]
    return next((s.get("IPAddress") for s in target.networks.values() if s.get("IPAddress")), "")


def _sorted_ports(exposed: dict[str, Any]) -> list[tuple[int, str]]:
    ports = []
    for spec in exposed or {}:
        port, _, proto = spec.partition("/")
        if port.isdigit():
            ports.append((int(port), proto or "tcp"))
    return sorted(ports, key=lambda p: (p[0], p[1] != "tcp"))


def link_env(alias: str, parent: str, target: Any, ip: str) -> list[str]:
    """Docker's legacy link variables (moby daemon/links): ``ALIAS_PORT*``, ``ALIAS_NAME``,
    ``ALIAS_ENV_*`` (the target's own env, without HOME and PATH)."""
    prefix = alias.upper().replace("-", "_")
    env = []
    ports = _sorted_ports(target.config.get("ExposedPorts") or {})
    if ports and ip:
        port, proto = ports[0]
        env.append(f"{prefix}_PORT={proto}://{ip}:{port}")
    for port, proto in ports if ip else []:
        base = f"{prefix}_PORT_{port}_{proto.upper()}"
        env += [f"{base}={proto}://{ip}:{port}", f"{base}_ADDR={ip}", f"{base}_PORT={port}", f"{base}_PROTO={proto}"]
    env.append(f"{prefix}_NAME=/{parent}/{alias}")
    for item in target.config.get("Env") or []:
        key, sep, value = item.partition("=")
        if sep and key not in ("HOME", "PATH"):
            env.append(f"{prefix}_ENV_{key}={value}")
    return env


def _links(svc: Any, c: Any, directory: Path) -> list[str]:
    """Resolve links at start (targets must run), append their ``/etc/hosts`` lines; the
    variables for the container's environment."""
    env: list[str] = []
    lines: list[str] = []
    legacy = next(iter(c.networks), "") == "bridge"  # user networks: links are only names, no variables
    for link in all_links(c.host_config, c.networks):
        name, alias = parse_link(link)
        try:
            target = svc.get(name)
        except NotFound:
            raise InvalidArgument(f"could not get container for {name}: No such container: {name}") from None
        if target.state not in (State.RUNNING, State.PAUSED):
            raise Conflict(f"Cannot link to a non running container: /{target.name} AS /{c.name}/{alias}")
        if legacy and "bridge" not in target.networks:
            raise InvalidArgument(f"Cannot link to /{target.name}, as it does not belong to the default network")
        ip = _address_of(target, c)
        names = [alias]
        hostname = target.config.get("Hostname") or ""
        for n in (hostname, target.name):
            if n and n not in names:
                names.append(n)
        if ip:
            lines.append(f"{ip}\t{' '.join(names)}")
        if legacy:
            env += link_env(alias, c.name, target, ip)
    hosts = directory / "hosts"
    if lines and hosts.exists():
        with open(hosts, "a") as f:  # same inode: the bind mount sees it
            f.write("".join(line + "\n" for line in lines))
    return env


# -- --sysctl net.* ------------------------------------------------------------------------

def _sysctls(c: Any, sandbox: str | None) -> None:
    sysctls = c.host_config.get("Sysctls") or {}
    net = {k: v for k, v in sysctls.items() if k.startswith("net.")}
    if not net:
        return
    if not sandbox:
        raise InvalidArgument("net.* sysctls need the container's own network namespace")

    def write() -> None:
        for key, value in net.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(value)
            except FileNotFoundError:
                raise InvalidArgument(f"sysctl {key!r} does not exist in the container's network namespace") from None
            except OSError as exc:
                raise InvalidArgument(f"cannot set sysctl {key}={value}: {exc.strerror}") from None

    netns.run_in(sandbox, write)


# -- --pid/--ipc container: -------------------------------------------------------------------

def joined_namespace(svc: Any, mode: str, kind: str) -> str:
    """``/proc/<pid>/ns/<kind>`` of the running container named in ``container:<ref>``."""
    other = svc.get(mode.split(":", 1)[1])
    if other.state != State.RUNNING or not other.pid:
        raise Conflict(f"cannot join {kind.upper()} of a non running container: {other.id}")
    if kind == "ipc" and (other.host_config.get("IpcMode") or "private") not in ("shareable", "host"):
        raise Conflict("non-shareable IPC (hint: use IpcMode:shareable for the donor container)")
    return f"/proc/{other.pid}/ns/{kind}"


# -- the step ---------------------------------------------------------------------------------

async def prepare(svc: Any, c: Any, directory: Path, namespaces: dict[str, str | None]) -> dict[str, Any]:
    """After the network is set up, before the runtime starts: returns the ``Config`` to start
    with (link variables under the container's own env). May leave a UTS pin: the caller
    calls :func:`release` once the runtime started (or failed)."""
    import asyncio

    config = c.config
    env = await asyncio.to_thread(_links, svc, c, directory)
    if env:
        config = {**config, "Env": configure.merge_env(env, list(config.get("Env") or []))}
    await asyncio.to_thread(_sysctls, c, namespaces.get("net"))
    domain = config.get("Domainname") or ""
    if domain and namespaces.get("uts") is None:
        path = uts_path(svc, c)
        await asyncio.to_thread(_pin_uts, path, config.get("Hostname") or c.id[:12], domain)
        namespaces["uts"] = str(path)
    return config

