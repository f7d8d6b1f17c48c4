"""``docker start`` and ``restart``: the rootfs, cgroup, mounts, network and /etc files in one
undo, the intent saved before the runtime launches the process (crash-safe: reconcile adopts
or kills what a killed daemon left), then the monitor."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..crashpoints import crashpoint
from ..drivers.cgroups import Resources
from ..errors import Conflict, DockyardError, NotModified
from .. import lifecycle
from ..lifecycle import State, require
from . import cgparent, devices, effective, etcfiles, logopts, monitor, mounts, startopts, stop
from .persist import raise_if_disk_full
from .record import Container
from .spec import build_spec

if TYPE_CHECKING:
    from .service import ContainerService


async def start(svc: ContainerService, ref: str) -> None:
    c = svc.get(ref)
    # before the AutoRemove clean-up below: a denied start changes nothing
    await effective.authorize(svc.daemon, "start", lambda: effective.of_record(svc, c), container=c.id)
    try:
        async with svc.lock(c.id):
            require(c.state, "start", c.id)
            try:
                await launch(svc, c)
            except (OSError, DockyardError) as exc:  # a full disk: say so (the steps were undone)
                raise_if_disk_full(exc, f"cannot start container {c.id[:12]}")
                raise
    except DockyardError as exc:
        if c.host_config.get("AutoRemove") and not isinstance(exc, NotModified):
            await stop.remove(svc, c.id, force=True, volumes=True)  # as Docker does: `run --rm` waits for removal
        raise


async def launch(svc: ContainerService, c: Container) -> None:
    """Start the container's process (the lock is held): everything it needs, in one undo."""
    svc.require_drivers()
    lifecycle.check(c, "start")  # before anything is launched (the state holds: the lock is held)
    directory = svc.dir(c)
    cg = svc.cgroups
    device_plan = devices.plan(c.host_config)
    resources = None
    if cg is not None:
        c.cgroup_parent = cgparent.effective(svc.daemon.config, c.host_config)
        resources = dataclasses.replace(Resources.from_host_config(c.host_config), devices=device_plan.rules)
    async with contextlib.AsyncExitStack() as undo:
        # one worker for the rootfs and the cgroup: a v1 cgroup is ~9 mkdirs and ~20 writes
        # under the kernel's cgroup lock, which on the event loop held up every other start
        rootfs, procs = await asyncio.to_thread(_rootfs_and_cgroup, svc, c, resources)
        undo.callback(svc.storage.unmount, c.id)
        if cg is not None:
            undo.callback(cg.remove, c.id)
        output = svc.logging.shim_output(svc, c)  # once (logopts' helpers each work it out again)
        extra_mounts = await mounts.setup(svc, c, rootfs, undo)
        namespaces = _namespaces(svc, c)
        if svc.networks is not None:
            undo.push_async_callback(svc.networks.teardown, c)
            sandbox = await svc.networks.setup(c, directory)
            if sandbox:
                namespaces["net"] = sandbox
        files = _etc_files(svc, c, directory)
        mapping = None
        if svc.daemon_userns is not None:  # --userns-remap (dockyard.userns: not imported without it)
            from .. import userns

            mapping = svc.daemon_userns if userns.remapped(svc.daemon_userns, c.host_config) else None
            if mapping is not None:  # writable by its root, as without remapping
                userns.give_to_root(mapping, files.values())
        config = await startopts.prepare(svc, c, directory, namespaces)  # links, sysctls
        spec = build_spec(
            cid=c.id, config=config, host_config=c.host_config, rootfs=rootfs,
            files=files, mounts=[*extra_mounts, *startopts.shm_mounts(c)], cgroup_procs=procs,
            log_path=logopts.channel_path(svc, c), log_max_size=output.buffer_max_size,
            log_max_files=output.buffer_max_files, json_log=output.json_file, syslog=output.syslog,
            namespaces=namespaces, devices=device_plan.nodes,
        )
        if mapping is not None:  # root in the container: a host nobody
            spec.uid_map, spec.gid_map = mapping.uid_map(), mapping.gid_map()
        # the intent: a daemon killed from here on leaves a process the record does not
        # name yet; reconcile adopts it (or kills it) because the record says "starting"
        c.starting = True
        try:
            svc.logging.prepare(svc, c)  # a forwarded log driver's receiver (none there: no start)
            await svc.save_async(c)  # in a worker: a rename over the record waits for ext4's flush
            crashpoint("container.start.after_intent")
            pid = await svc.runtime.start(spec)
        except DockyardError as exc:
            svc.logging.discard(c)
            c.starting = False
            code = getattr(exc, "exit_code", 128)
            c.exit_code, c.error = code, exc.message
            svc.save_soft(c)
            svc.wake(svc.start_waiters, c.id, False)
            raise
        except BaseException:
            c.starting = False
            raise
        crashpoint("container.start.after_launch")
        undo.pop_all()
    c.pid, c.error, c.starting = pid, "", False
    c.started_ns, c.has_been_started, c.manually_stopped, c.oom_killed = time.time_ns(), True, False, False
    c.exit_code = 0
    try:
        await svc.transition_async(c, "start")  # the record written in a worker (soft: a full disk keeps it)
    finally:  # it runs and is watched whatever the disk says (or a cancelled request)
        monitor.watch(svc, c)
        svc.wake(svc.start_waiters, c.id, True)


def _rootfs_and_cgroup(svc: ContainerService, c: Container, resources: Resources | None) -> tuple[Path, list[str]]:
    """Mount the rootfs, then make the container's cgroup (a stale one of an earlier run
    goes first): the rootfs and the cgroup's procs files. Nothing is left if it fails."""
    rootfs = Path(svc.storage.mount(c.id))
    cg = svc.cgroups
    if cg is None or resources is None:
        return rootfs, []
    try:
        if cg.exists(c.id):
            cg.remove(c.id)
        cg.create(c.id, resources, **({"parent": c.cgroup_parent} if c.cgroup_parent is not None else {}))
        try:
            return rootfs, cg.procs_files(c.id)
        except BaseException:
            cg.remove(c.id)
            raise
    except BaseException:
        svc.storage.unmount(c.id)
        raise


def _etc_files(svc: ContainerService, c: Container, directory: Path) -> dict[str, Path]:
    """The /etc/hostname, hosts and resolv.conf bound into the container: its own, or with
    ``--network container:X`` X's files and names, as Docker (they share X's network
    namespace, so X's resolver at 127.0.0.11 answers for both)."""
    mode = c.host_config.get("NetworkMode") or ""
    if not mode.startswith("container:"):
        return etcfiles.paths(directory)
    other = svc.get(mode.split(":", 1)[1])
    for key in ("Hostname", "Domainname"):
        c.config[key] = other.config.get(key) or ""
    return etcfiles.paths(svc.dir(other))


def _namespaces(svc: ContainerService, c: Container) -> dict[str, str | None]:
    ns: dict[str, str | None] = {"net": None, "ipc": None, "uts": None, "pid": None}
    mode = c.host_config.get("NetworkMode") or "default"
    if mode == "host":
        ns["net"] = "host"  # as Docker: its own UTS namespace, named after the host unless -h
    elif mode.startswith("container:"):
        other = svc.get(mode.split(":", 1)[1])
        if other.state != State.RUNNING or not other.pid:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        ns["net"] = f"/proc/{other.pid}/ns/net"
    for kind, key in (("pid", "PidMode"), ("ipc", "IpcMode")):
        join = c.host_config.get(key) or ""
        if join == "host":
            ns[kind] = "host"
        elif join.startswith("container:"):
            ns[kind] = startopts.joined_namespace(svc, join, kind)
    if c.host_config.get("UTSMode") == "host":
        ns["uts"] = "host"
    return ns


async def restart(svc: ContainerService, ref: str, timeout: int | None = None, sig: str | None = None) -> None:
    c = svc.get(ref)
    await effective.authorize(svc.daemon, "start", lambda: effective.of_record(svc, c), container=c.id)
    if c.running:
        c.manually_stopped = True
        await stop.stop_process(svc, c, timeout, sig)
    async with svc.lock(c.id):
        if c.running:  # a restart policy got there first
            return
        await launch(svc, c)
    svc.emit("restart", c)
