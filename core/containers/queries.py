"""What is asked of containers without changing them: list (with Docker's filters), inspect,
logs, processes, stats, counts, and the root filesystem of a stopped one (``mounted``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import orjson

from .. import filters as F
from ..errors import DockyardError, InvalidArgument, NoSuchContainer
from ..lifecycle import State
from ..tasks import spawn
from . import hostconfig, logopts, ports
from .record import Container, rfc3339

if TYPE_CHECKING:
    from .service import ContainerService

LIST_FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "before", "since", "network",
                "volume", "health", "is-task", "expose", "publish")
STATUSES = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}


def list_(svc: ContainerService, all_: bool = False, limit: int = -1, filters: str | None = None,
          size: bool = False) -> list[dict[str, Any]]:
    out = []
    names: dict[str, str] = {}
    now = time.time_ns()
    for c in _listed(svc, all_, limit, filters):
        sizes = None
        if size:
            sizes = {"SizeRw": rw_size(svc, c), "SizeRootFs": 0}
        row = c.list_json(image_name(svc, c, names), sizes, now)
        suffix = svc.health.status_suffix(c)
        if suffix:
            row["Status"] += suffix
        out.append(row)
    return out


def list_bytes(svc: ContainerService, all_: bool = False, limit: int = -1, filters: str | None = None,
               size: bool = False) -> bytes:
    """``list_`` as the JSON array the API sends: each row's bytes are kept with the values
    they were made from (:func:`_row_bytes`), so a poll re-encodes only what changed."""
    if size:  # sizes are read from the disk each time: nothing to keep
        return _dumps(list_(svc, all_, limit, filters, size))
    names: dict[str, str] = {}
    now = time.time_ns()
    suffix_of = svc.health.status_suffix
    rows = [_row_bytes(c, image_name(svc, c, names), now, suffix_of(c)) for c in _listed(svc, all_, limit, filters)]
    return b"[" + b",".join(rows) + b"]"


def _listed(svc: ContainerService, all_: bool, limit: int, filters: str | None) -> list[Container]:
    """The containers a list shows, newest first (Docker's filters, ``all``, ``limit``)."""
    f = F.parse(filters, LIST_FILTERS)
    for s in f.get("status", []):
        if s not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={s}'")
    if "status" in f or "exited" in f:
        all_ = True
    items = list(reversed(svc.containers.values()))  # dicts keep creation order: newest first
    if not f and limit <= 0:  # docker ps, ps -a: no test to run per container
        return items if all_ else [c for c in items if c.running]
    if "before" in f:
        ref = svc.get(f["before"][0])
        items = [c for c in items if c.created_ns < ref.created_ns]
    if "since" in f:
        ref = svc.get(f["since"][0])
        items = [c for c in items if c.created_ns > ref.created_ns]
    out = []
    for c in items:
        if not all_ and not c.running:
            continue
        if f and not _matches(svc, c, f):  # (no filter: every test passes)
            continue
        out.append(c)
        if 0 < limit <= len(out):
            break
    return out


def _row_inputs(c: Container, image: str) -> tuple[Any, ...]:
    """Every value a list row is made of but its ``Status`` text (which moves with the clock).
    Keep in step with ``Container.list_json``: a value it reads that is missing here would
    leave rows stale."""
    config, ns = c.config, c.network_settings
    return (c.id, c.name, c.status, image, c.image_id, c.created_ns, config.get("Entrypoint"), config.get("Cmd"),
            config.get("Labels"), c.host_config.get("NetworkMode"), ns.get("Ports"), c.networks, c.mounts)


_SINCE_FINISHED = (State.RESTARTING.value, State.EXITED.value)  # Status counts from finished_ns


def _row_bytes(c: Container, image: str, now_ns: int, suffix: str) -> bytes:
    """One row's JSON. The bytes around ``Status`` are kept on the container with a deep copy
    of the values they were made from (:func:`_row_inputs`) and made again when any of them
    differs: the check compares values, not a version that each place changing a container
    would have to bump, so a change made anywhere (a rename, a state change, a network
    connected, a port published, an endpoint's address set in place) is in the next list.
    The whole row is kept too, with what its ``Status`` text is made of besides the state:
    ``Container.status_text`` counts whole seconds from the start or the finish."""
    inputs = _row_inputs(c, image)
    cached = c.__dict__.get("_list_row")
    if cached is None or cached[0] != inputs:
        row = c.list_json(image, None, now_ns)
        keys = list(row)
        i = keys.index("Status")  # encoded around, in list_json's order
        head = _dumps({k: row[k] for k in keys[:i]})[:-1] + (b',"Status":' if i else b'"Status":')
        tail = _dumps({k: row[k] for k in keys[i + 1:]})
        tail = b"," + tail[1:] if len(tail) > 2 else b"}"
        # [inputs, the row, where its Status value starts and ends in it, what the value counts]
        cached = c.__dict__["_list_row"] = [copy.deepcopy(inputs), head + tail, len(head), len(head), None]
    since = c.finished_ns if c.status in _SINCE_FINISHED else c.started_ns
    clock = (int((now_ns - since) / 1e9), c.exit_code, c.has_been_started, suffix)
    if cached[4] != clock:
        row, start, end = cached[1], cached[2], cached[3]
        status = _dumps(c.status_text(now_ns) + suffix)
        cached[1], cached[3], cached[4] = row[:start] + status + row[end:], start + len(status), clock
    return cached[1]


def _dumps(data: Any) -> bytes:
    """orjson, or the standard encoder for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()


def image_name(svc: ContainerService, c: Container, known: dict[str, str]) -> str:
    """The Image of ``docker ps``: the name the container was created with while it still names
    the container's image, else the image id (moby's list: retagged, or deleted by ``rmi -f``)."""
    name = c.image
    if name == c.image_id or svc.images is None:
        return name
    if name not in known:
        try:
            known[name] = svc.images.resolve(name).id
        except DockyardError:
            known[name] = ""
    return name if known[name] == c.image_id else c.image_id


def rw_size(svc: ContainerService, c: Container) -> int:
    try:
        return int(svc.storage.rw_size(c.id))
    except Exception:
        return 0


def _matches(svc: ContainerService, c: Container, f: F.Filters) -> bool:
    def any_of(key: str, pred: Callable[[str], bool]) -> bool:
        return key not in f or any(pred(v) for v in f[key])

    image_ids: dict[str, str] = {}

    def ancestor(v: str) -> bool:
        if v not in image_ids:
            try:
                image_ids[v] = svc.images.resolve(v).id
            except DockyardError:
                image_ids[v] = ""
        return c.image_id == image_ids[v] or c.image == v

    return (
        any_of("id", lambda v: c.id.startswith(v))
        and any_of("name", lambda v: F.name_match(v, "/" + c.name))
        and F.labels_match(f, c.labels)
        and any_of("status", lambda v: c.state.value == v)
        and any_of("exited", lambda v: c.state == State.EXITED and c.has_been_started and str(c.exit_code) == v)
        and any_of("ancestor", ancestor)
        and any_of("network", lambda v: v in c.networks or c.host_config.get("NetworkMode") == v)
        and ports.matches(f, c.config, c.host_config, c.network_settings)
        and any_of("health", lambda v: svc.health.status(c.id) == v)
    )


def logs(svc: ContainerService, c: Container) -> Any:
    """The log driver's reader for docker logs, or None for a container that never ran."""
    return svc.logging.reader(svc, c)


def pids(svc: ContainerService, c: Container) -> list[int]:
    if svc.cgroups is not None and svc.cgroups.exists(c.id):
        return svc.cgroups.pids(c.id)
    pid = svc.runtime.pid(c.id) if svc.runtime is not None else None
    return [pid] if pid else []


def stats(svc: ContainerService, c: Container, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Docker's stats JSON; ``previous`` fills ``precpu_stats``."""
    now = time.time_ns()
    empty_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                 "system_cpu_usage": 0, "online_cpus": 0, "throttling_data": {
                     "periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    data: dict[str, Any] = {"memory_stats": {}, "cpu_stats": empty_cpu, "pids_stats": {},
                            "blkio_stats": {"io_service_bytes_recursive": None}}
    if c.running and svc.cgroups is not None and svc.cgroups.exists(c.id):
        with contextlib.suppress(Exception):
            data.update(svc.cgroups.stats(c.id))
    return {
        "read": rfc3339(now),
        "preread": previous["read"] if previous else rfc3339(0),
        "pids_stats": data["pids_stats"],
        "blkio_stats": data["blkio_stats"],
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": data["cpu_stats"],
        "precpu_stats": previous["cpu_stats"] if previous else empty_cpu,
        "memory_stats": data["memory_stats"],
        "name": "/" + c.name,
        "id": c.id,
        "networks": _net_stats(c.pid) if c.running and c.pid and c.host_config.get("NetworkMode") != "host" else {},
    }


NET_DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "tx_bytes", "tx_packets", "tx_errors",
                  "tx_dropped")


def _net_stats(pid: int) -> dict[str, dict[str, int]]:
    """Docker's stats ``networks``: the counters of every interface but ``lo`` in the
    container's network namespace, from ``/proc/<pid>/net/dev``."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return {}
    out = {}
    for line in lines:
        name, _, counters = line.partition(":")
        name, values = name.strip(), counters.split()
        if name != "lo" and len(values) >= 12:
            rx, tx = values[0:4], values[8:12]  # bytes packets errs drop, for each direction
            out[name] = dict(zip(NET_DEV_FIELDS, map(int, rx + tx)))
    return out


def inspect(svc: ContainerService, ref: str, size: bool = False) -> dict[str, Any]:
    c = svc.get(ref)
    graph: dict[str, Any] = {"Name": c.storage_driver, "Data": None}
    data = c.inspect(svc.dir(c), logopts.log_path(svc, c), graph)
    data["HostConfig"] = hostconfig.render(data["HostConfig"])  # dockerd's defaults for what is unset
    if (health := svc.health.inspect(c.id)) is not None:
        data["State"]["Health"] = health
    if size:
        data["SizeRw"] = rw_size(svc, c)
        data["SizeRootFs"] = 0
    return data


def counts(svc: ContainerService) -> dict[str, int]:
    states = [c.state for c in svc.containers.values()]
    return {
        "Containers": len(states),
        "ContainersRunning": sum(s in (State.RUNNING, State.RESTARTING) for s in states),
        "ContainersPaused": sum(s == State.PAUSED for s in states),
        "ContainersStopped": sum(s not in (State.RUNNING, State.RESTARTING, State.PAUSED) for s in states),
    }


def image_users(svc: ContainerService, image_id: str) -> list[tuple[str, bool]]:
    return [(c.id, c.running) for c in svc.containers.values() if c.image_id == image_id]


@contextlib.asynccontextmanager
async def mounted(svc: ContainerService, c: Container) -> Any:
    """The container's root filesystem for the duration: a stopped container's is mounted
    here and unmounted when its last user is done (unless the container runs by then)."""
    svc.require_drivers()
    # mounting and unmounting go to their end even if the handler is cancelled meanwhile (the
    # HTTP server cancels the handler of a client that hangs up): a mount finished after the
    # cancel is undone, an unmount is never dropped while it waits for the lock or a thread
    mounting = asyncio.ensure_future(_mount(svc, c))
    try:
        path = await asyncio.shield(mounting)
    except asyncio.CancelledError:
        mounting.add_done_callback(lambda t: t.cancelled() or t.exception() is not None
                                   or spawn(_unmounted(svc, c), f"unmount of {c.id[:12]}"))
        raise
    try:
        yield Path(path)
    finally:
        await asyncio.shield(_unmounted(svc, c))


async def _mount(svc: ContainerService, c: Container) -> str:
    async with svc.lock(c.id):
        if c.id not in svc.containers:
            raise NoSuchContainer(c.id)
        path = await asyncio.to_thread(svc.storage.mount, c.id)
        svc.fs_users[c.id] = svc.fs_users.get(c.id, 0) + 1
        return str(path)


async def _unmounted(svc: ContainerService, c: Container) -> None:
    async with svc.lock(c.id):
        left = svc.fs_users.pop(c.id, 1) - 1
        if left:
            svc.fs_users[c.id] = left
        elif c.id in svc.containers and c.state not in (State.RUNNING, State.PAUSED):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(svc.storage.unmount, c.id)
