"""Start-time parts of ``docker run`` options that the runtime's spec has no field for:
``--sysctl net.*`` (written in the container's network namespace), ``--link`` (``/etc/hosts``
entries and ``ALIAS_*`` variables), ``--pid container:`` and ``--ipc container:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..drivers.runtime import Mount
from ..errors import Conflict, InvalidArgument, NotFound
from ..lifecycle import State
from ..networks import netns
from . import configure, etcfiles

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
    """``HostConfig.Links`` and the default bridge endpoint's ``Links``: the legacy links
    (``/etc/hosts``, variables). A user network's endpoint ``Links`` (``network connect --link``,
    docker-py's ``links=``) are names in its embedded DNS for this container only (dns.py), and,
    as in moby, their targets need not exist until the name is asked for."""
    links = list(hc.get("Links") or [])
    for name, settings in networks.items():
        if name == "bridge":
            links += [v for v in settings.get("Links") or [] if v not in links]
    return links


async def remove_link(svc: Any, name: str) -> None:
    """``DELETE /containers/{parent}/{alias}?link=1`` (``docker rm --link``, docker-py's
    ``remove_container(name, link=True)``): the parent forgets the link (its ``HostConfig.Links``
    and its endpoints' ``Links``); both containers stay. As moby's rmLink, a name without a
    parent is the container's own name, which cannot be removed as a link."""
    parent, _, alias = name.strip("/").rpartition("/")
    if not parent:
        raise Conflict("Conflict, cannot remove the default link name of the container")
    try:
        c = svc.get(parent)
    except NotFound:
        raise NotFound(f"Cannot get parent /{parent} for link name /{parent}/{alias}") from None
    async with svc.lock(c.id):
        found = False
        holders = [c.host_config, *(s for s in c.networks.values() if isinstance(s, dict))]
        for holder in holders:
            links = holder.get("Links") or []
            kept = [v for v in links if parse_link(v)[1] != alias]
            if len(kept) != len(links):
                found = True
                holder["Links"] = kept or None
        if not found:
            raise NotFound(f"No such container: {parent}/{alias}")
        svc.save(c)


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
    for name in c.networks:
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
    etcfiles.append_hosts(directory, lines)
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


def shm_mounts(c: Any) -> list[Mount]:
    """``--ipc host``: the host's ``/dev/shm`` bound over the container's, as Docker does (POSIX
    shared memory lives there, not in the IPC namespace). Otherwise a tmpfs of its own, or nothing
    for ``--ipc none``. ``--ipc container:X`` shares X's namespace (SysV IPC) but not yet X's
    ``/dev/shm``: that mount is in X's mount namespace, which a bind cannot reach; Docker keeps a
    shareable container's shm on the host for this."""
    if (c.host_config.get("IpcMode") or "") == "host":
        return [Mount("/dev/shm", "/dev/shm", "bind", ["rbind", "rprivate"])]
    return []


# -- the step ---------------------------------------------------------------------------------

async def prepare(svc: Any, c: Any, directory: Path, namespaces: dict[str, str | None]) -> dict[str, Any]:
    """After the network is set up, before the runtime starts: returns the ``Config`` to start
    with (link variables under the container's own env)."""
    import asyncio

    config = c.config
    # each in a worker when there is something to do (a worker's round trip is ~0.1 ms of
    # CPU on both sides for nothing)
    env = await asyncio.to_thread(_links, svc, c, directory) if all_links(c.host_config, c.networks) else []
    if env:
        config = {**config, "Env": configure.merge_env(env, list(config.get("Env") or []))}
    if any(k.startswith("net.") for k in c.host_config.get("Sysctls") or {}):
        await asyncio.to_thread(_sysctls, c, namespaces.get("net"))
    return config

