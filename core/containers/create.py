"""``docker create`` and container names: every check before anything exists, then the
record, writable layer, volumes and /etc files in one undo; names reserved before the first
await so two requests can never both take one (create and rename)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..drivers.cgroups import Resources
from ..errors import DockyardError, InvalidArgument, NameInUse, NoSuchContainer
from ..runtime import capabilities
from . import configure, effective, etcfiles, health, mounts, options, ports, runtime_opts, startopts
from .persist import raise_if_disk_full
from .record import Container

if TYPE_CHECKING:
    from .service import ContainerService


async def create(svc: ContainerService, body: dict[str, Any], name: str | None,
                 warnings: list[str] | None = None) -> Container:
    """``warnings`` (if given) receives what dockerd answers in the create's Warnings."""
    svc.require_drivers()
    if not isinstance(body, dict):
        raise InvalidArgument("container config must be a JSON object")
    cid = secrets.token_hex(32)
    if name:
        reserve(svc, configure.check_name(name), cid)  # before the first await
    try:
        return await _create(svc, body, name.lstrip("/") if name else None, cid, warnings)
    except (OSError, DockyardError) as exc:  # a full disk: say so (the steps were undone)
        raise_if_disk_full(exc, "cannot create container")
        raise
    finally:
        release(svc, cid)


async def _create(svc: ContainerService, body: dict[str, Any], name: str | None, cid: str,
                  warnings: list[str] | None = None) -> Container:
    image_ref = body.get("Image")
    if not image_ref or not isinstance(image_ref, str):
        raise InvalidArgument("Config.Image is required")
    image = svc.images.resolve(image_ref)
    host_config = configure.normalize_host_config(body.get("HostConfig"))
    svc.logging.configure(body.get("HostConfig"), host_config)  # dockerd's log-driver and log-opts
    request_config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    from ..plugins import call_hook

    await call_hook(svc.daemon.plugins.hook.container_spec, config=request_config,
                    host_config=host_config, name=name)
    config = configure.merge_config(request_config, (image.config or {}).get("config") or {})
    health.validate(config)
    config["Image"] = image_ref
    ports.validate(config, host_config)  # bad port specs -> 400 now
    capabilities.resolve(host_config.get("CapAdd"), host_config.get("CapDrop"))  # unknown names -> 400
    Resources.from_host_config(host_config)  # limits the kernel would refuse -> 400 now
    cg_version = svc.cgroups.version if svc.cgroups is not None else 1
    runtime_opts.validate(host_config, cg_version)  # devices, cgroupns, oom score
    svc.logging.validate(host_config)  # the log driver's name and options -> 400 now
    mount_points = mounts.plan(config, host_config, svc)  # bad mounts -> 400 before anything exists
    networks = (svc.networks.container_networks(host_config, body.get("NetworkingConfig"))
                if svc.networks is not None else {})
    options.check(config, host_config, runtime=svc.runtime, storage=svc.storage,
                  networking=body.get("NetworkingConfig"))  # refused options -> 400
    if svc.daemon_userns is not None:  # --userns-remap (dockyard.userns: not imported without it)
        from .. import userns

        userns.check_container(svc.daemon_userns, host_config)  # what Docker refuses under it
    found = options.settle_swappiness(host_config, svc.cgroups)  # cgroup v2: dropped, warned
    if warnings is not None:
        warnings.extend(found)
    startopts.check_links(svc, host_config, networks)
    options.settle_mac(config, host_config, networks)
    await effective.authorize(svc.daemon, "create", lambda: effective.of_container(svc, host_config, mount_points),
                              image=image_ref, name=name)  # the effective container: 403 before anything exists
    if name is None:
        name = generate_name(svc)
        reserve(svc, name, cid)
    c = Container(id=cid, name=name, image=image_ref, image_id=image.id, config=config,
                  host_config=host_config, storage_driver=svc.storage.name if svc.storage is not None else "",
                  top_layer=svc.images.top_layer(image.id), networks=networks)
    if not config.get("Hostname"):  # as Docker: a host-network container has the host's name
        config["Hostname"] = socket.gethostname() if host_config.get("NetworkMode") == "host" else cid[:12]
    directory = svc.dir(c)
    async with contextlib.AsyncExitStack() as undo:
        undo.callback(shutil.rmtree, directory, True)
        # one worker: new inodes on the data root wait for the journal (~1 ms each when
        # busy), which on the event loop held up every other request
        await asyncio.to_thread(_directory_and_layer, svc, c, directory, config, host_config)
        undo.callback(svc.storage.remove_rw, cid)
        await mounts.create_volumes(svc.daemon.volumes, mount_points, undo)
        c.mounts = mount_points
        await svc.save_async(c, durable=True)
        undo.pop_all()
    svc.containers[cid] = c
    svc.names[name] = cid
    svc.emit("create", c)
    return c


def _directory_and_layer(svc: ContainerService, c: Container, directory: Path, config: dict[str, Any],
                         host_config: dict[str, Any]) -> None:
    """The container's directory with its /etc files, then its writable layer (the caller's
    undo removes the directory whatever fails)."""
    directory.mkdir(mode=0o710)
    etcfiles.write(directory, config, host_config)
    svc.storage.create_rw(c.id, c.top_layer)


# -- names ------------------------------------------------------------------------------------

def check_name_free(svc: ContainerService, name: str) -> None:
    owner = svc.names.get(name) or svc.reserved.get(name)
    if owner:
        raise NameInUse(
            f'Conflict. The container name "/{name}" is already in use by container '
            f'"{owner}". You have to remove (or rename) that container to be able to reuse that name.'
        )


def reserve(svc: ContainerService, name: str, cid: str) -> None:
    """Take ``name`` for ``cid`` now (synchronously: no other request can slip in between
    the check and the reservation), or raise NameInUse (409)."""
    check_name_free(svc, name)
    svc.reserved[name] = cid


def release(svc: ContainerService, cid: str) -> None:
    for name in [n for n, owner in svc.reserved.items() if owner == cid]:
        del svc.reserved[name]


def generate_name(svc: ContainerService) -> str:
    for _ in range(100):
        name = configure.random_name()
        if name not in svc.names and name not in svc.reserved:
            return name
    return f"{configure.random_name()}_{secrets.token_hex(3)}"


async def rename(svc: ContainerService, ref: str, new: str) -> None:
    c = svc.get(ref)
    if not new:
        raise InvalidArgument("Neither old nor new names may be empty")
    new = configure.check_name(new)
    if new == c.name:
        raise InvalidArgument("Renaming a container with the same name as its current name")
    reserve(svc, new, c.id)  # as create does: before the first await
    try:
        async with svc.lock(c.id):
            if c.id not in svc.containers:
                raise NoSuchContainer(ref)
            old = c.name
            c.name = new
            try:
                svc.save(c, durable=True)
            except DockyardError:
                c.name = old
                raise
            if svc.names.get(old) == c.id:
                del svc.names[old]
            svc.names[new] = c.id
    finally:
        if svc.reserved.get(new) == c.id:
            del svc.reserved[new]
    svc.emit("rename", c, oldName="/" + old)
