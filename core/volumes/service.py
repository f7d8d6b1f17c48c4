"""The volumes service: named and anonymous volumes, their records, users and drivers.

One record per volume in ``<data-root>/volumes/_meta/<name>.json`` (volume names cannot start
with ``_``, so the directory never collides with the ``local`` driver's ``<name>/`` dirs).
Drivers come from the ``dockyard.volume`` entry-point group, loaded the first time a volume
names one. Who uses a volume is not stored: it is read from the containers' mount records,
so it cannot drift from them (Docker counts stopped containers too).

Crashes: create and remove write an intent (``_meta/<name>.intent``) before they touch the
driver and drop it when the record says what happened, so a ``kill -9`` at any step leaves a
trace that start-up (:meth:`VolumeService._recover`) completes or rolls back: an interrupted
create is undone (the volume was never acknowledged), an interrupted remove is finished. Stale
temp files of the records are removed, and a ``local`` volume directory with no record and
no intent is removed when it holds no data (left by a crash before intents existed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import filters as F
from ..errors import Conflict, InvalidArgument, NoSuchVolume, PluginError
from ..crashpoints import crashpoint
from ..store import read_json, remove_stale_temps, write_json
from ..timestamps import rfc3339_seconds
from ..versions import _vtuple
from .local import LocalVolumes, is_mountpoint


if TYPE_CHECKING:
    from ..daemon import Daemon

log = logging.getLogger("dockyard.volumes")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
ANONYMOUS_LABEL = "com.docker.volume.anonymous"  # what Docker 23+ puts on anonymous volumes
LIST_FILTERS = ("name", "label", "dangling", "driver")
DEFAULT_DRIVER = "local"


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path')
    return name


class VolumeService:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.events = daemon.events
        self.root: Path = daemon.config.data_root / "volumes"
        self.meta = self.root / "_meta"
        self.meta.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, dict[str, Any]] = {}
        self.drivers: dict[str, Any] = {}
        self.lock = asyncio.Lock()
        remove_stale_temps(self.meta)
        for path in sorted(self.meta.glob("*.json")):
            record = read_json(path)
            if isinstance(record, dict) and record.get("Name") == path.stem:
                self.records[path.stem] = record
            else:
                log.warning("ignoring unreadable volume record %s", path)
        try:
            self.driver(DEFAULT_DRIVER)  # loaded now so /info and `dockyard plugins` list it
        except InvalidArgument as exc:
            log.warning("no local volume driver: %s", exc)
        self._recover()

    # -- intents and start-up recovery ---------------------------------------------------

    def _intent_path(self, name: str) -> Path:
        return self.meta / f"{name}.intent"  # not *.json: never read as a record

    def _intend(self, name: str, op: str, driver: str) -> None:
        write_json(self._intent_path(name), {"Op": op, "Name": name, "Driver": driver})

    def _done(self, name: str) -> None:
        self._intent_path(name).unlink(missing_ok=True)

    def _recover(self) -> None:
        """Start-up, before anything uses a volume: finish or undo what a killed daemon left."""
        for path in sorted(self.meta.glob("*.intent")):
            intent = read_json(path)
            name = path.name[: -len(".intent")]
            if not isinstance(intent, dict) or intent.get("Name") != name:
                log.warning("ignoring unreadable volume intent %s", path.name)
                path.unlink(missing_ok=True)
                continue
            op, record = intent.get("Op"), self.records.get(name)
            try:
                if op == "create" and record is None:  # never acknowledged: undo
                    log.info("volume %s: undoing a create the daemon did not finish", name)
                    self.driver(intent.get("Driver")).remove(name)
                elif op == "remove":  # asked for and maybe half done: finish
                    log.info("volume %s: finishing a removal the daemon did not finish", name)
                    self.driver((record or intent).get("Driver")).remove(name)
                    (self.meta / f"{name}.json").unlink(missing_ok=True)
                    self.records.pop(name, None)
            except Exception as exc:  # the daemon still starts; the next start tries again
                log.warning("volume %s: recovering an interrupted %s failed: %s", name, op, exc)
                continue
            path.unlink(missing_ok=True)
        local = self.drivers.get(DEFAULT_DRIVER)
        if not isinstance(local, LocalVolumes) or local.root != self.root:  # the built-in's own layout
            return
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or entry.is_symlink() or not NAME_RE.match(entry.name):
                continue  # _meta and anything that cannot be a volume
            remove_stale_temps(entry, {"opts.json"})
            if entry.name in self.records:
                continue
            data = entry / "_data"
            try:
                empty = not data.exists() or (data.is_dir() and not any(data.iterdir()))
            except OSError:
                empty = False
            if empty and not is_mountpoint(data):
                log.info("removing volume directory %s: no record and no data", entry.name)
                local.remove(entry.name)
            else:
                log.warning("volume directory %s has no record but holds data: left alone", entry)

    # -- drivers -------------------------------------------------------------------------

    def driver(self, name: str | None) -> Any:
        """The volume driver called ``name``, loaded on first use; unknown names are a 400."""
        name = name or DEFAULT_DRIVER
        if name not in self.drivers:
            daemon = self.daemon
            config = daemon.config.plugin_config(name)
            if name == DEFAULT_DRIVER:
                config.setdefault("root", str(self.root))
                mapping = getattr(daemon, "userns", None)
                if mapping is not None:  # --userns-remap: new volumes belong to remapped root
                    config.setdefault("owner", f"{mapping.root_uid}:{mapping.root_gid}")
            try:
                self.drivers[name] = daemon.plugins.load_driver(
                    "volume", name, config=config, root=daemon.config.data_root, state=daemon.config.exec_root)
            except PluginError as exc:
                raise InvalidArgument(f"error looking up volume plugin {name}: {exc}") from None
        return self.drivers[name]

    # -- records -------------------------------------------------------------------------

    def get(self, name: str) -> dict[str, Any]:
        try:
            return self.records[name]
        except KeyError:
            raise NoSuchVolume(name) from None

    def users(self, name: str) -> list[str]:
        """Ids of the containers (running or not) whose mounts name this volume."""
        containers = getattr(self.daemon, "containers", None)
        if containers is None:
            return []
        return [c.id for c in list(containers.containers.values())
                if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.mounts)]

    def to_json(self, record: dict[str, Any], usage: bool = False) -> dict[str, Any]:
        drv = self.drivers.get(record["Driver"])
        out: dict[str, Any] = {
            "CreatedAt": record["CreatedAt"],
            "Driver": record["Driver"],
            "Labels": record.get("Labels") or {},
            "Mountpoint": drv.path(record["Name"]) if drv is not None else "",
            "Name": record["Name"],
            "Options": record.get("Options") or None,
            "Scope": drv.scope if drv is not None else "local",  # a driver no longer installed
        }
        status = drv.status(record["Name"]) if drv is not None else None
        if status:
            out["Status"] = status
        if usage:
            out["UsageData"] = {"Size": self._size(record), "RefCount": len(self.users(record["Name"]))}
        return out

    def _size(self, record: dict[str, Any]) -> int:
        drv = self.drivers.get(record["Driver"])
        try:
            return int(drv.size(record["Name"])) if drv is not None else -1
        except Exception:
            return -1

    # -- verbs ---------------------------------------------------------------------------

    async def create(self, name: str | None = None, driver: str | None = None,
                     options: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                     anonymous: bool = False) -> dict[str, Any]:
        """Create a volume, or return the existing one of that name (Docker's create is
        idempotent). A generated name makes an anonymous-looking 64-hex name."""
        if options is not None and not isinstance(options, dict):
            raise InvalidArgument("DriverOpts must be an object")
        if labels is not None and not isinstance(labels, dict):
            raise InvalidArgument("Labels must be an object")
        # as moby's volume service: a volume created without a name is anonymous (pruned by
        # default since API 1.42; docker-py's create_volume() then prune_volumes())
        anonymous = anonymous or not name
        name = check_name(name) if name else secrets.token_hex(32)
        driver = driver or DEFAULT_DRIVER
        async with self.lock:
            existing = self.records.get(name)
            if existing is not None:
                if driver != existing["Driver"] and driver != DEFAULT_DRIVER:
                    raise Conflict(f"volume name {name} already in use with driver {existing['Driver']}")
                return existing
            drv = self.driver(driver)
            options = {str(k): str(v) for k, v in (options or {}).items()}
            labels = {str(k): str(v) for k, v in (labels or {}).items()}
            if anonymous:
                labels.setdefault(ANONYMOUS_LABEL, "")
            record = {"Name": name, "Driver": driver, "Options": options, "Labels": labels,
                      "CreatedAt": rfc3339_seconds(time.time_ns()), "CreatedNs": time.time_ns()}
            await asyncio.to_thread(self._intend, name, "create", driver)
            crashpoint("volume.create.intent")
            try:
                await asyncio.to_thread(drv.create, name, options)
                crashpoint("volume.create.driver")
                await asyncio.to_thread(write_json, self.meta / f"{name}.json", record)
            except BaseException:
                await asyncio.to_thread(drv.remove, name)
                self._done(name)
                raise
            crashpoint("volume.create.record")
            self._done(name)
            self.records[name] = record
        self.events.emit("volume", "create", name, driver=driver)
        return record

    async def remove(self, name: str, force: bool = False) -> None:
        """Docker's rules: in use (by any container) is a 409 even with ``force``; ``force``
        makes a missing volume fine and drops the record when the driver fails."""
        async with self.lock:
            record = self.records.get(name)
            if record is None:
                if force:
                    return
                raise NoSuchVolume(name)
            users = self.users(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            await asyncio.to_thread(self._intend, name, "remove", record["Driver"])
            crashpoint("volume.remove.intent")
            try:
                drv = self.driver(record["Driver"])
                await asyncio.to_thread(drv.remove, name)
            except Exception:
                if not force:
                    self._done(name)
                    raise
                log.warning("volume %s: driver failed to remove it; dropping the record (force)", name)
            crashpoint("volume.remove.driver")
            (self.meta / f"{name}.json").unlink(missing_ok=True)
            self._done(name)
            del self.records[name]
        self.events.emit("volume", "destroy", name, driver=record["Driver"])

    def list(self, filters: str | None) -> dict[str, Any]:
        f = F.parse(filters, LIST_FILTERS)
        dangling = F.bool_value(f, "dangling")
        out = []
        for record in self.records.values():
            name = record["Name"]
            if "name" in f and not any(v in name for v in f["name"]):
                continue
            if "driver" in f and record["Driver"] not in f["driver"]:
                continue
            if not F.labels_match(f, record.get("Labels") or {}):
                continue
            if dangling is not None and dangling == bool(self.users(name)):
                continue
            out.append(self.to_json(record))
        return {"Volumes": out, "Warnings": []}

    async def prune(self, filters: str | None, api_version: str) -> dict[str, Any]:
        """Remove unused local volumes. API 1.42 changed the default: only anonymous volumes,
        unless ``all=true``; older clients (the docker 20.10 CLI speaks 1.41) prune all."""
        f = F.parse(filters, ("label", "label!", "all"))
        everything = bool(F.bool_value(f, "all"))
        if _vtuple(api_version) < (1, 42):
            everything = True  # as moby adds all=true for older clients
        deleted, reclaimed = [], 0
        for record in list(self.records.values()):
            name, labels = record["Name"], record.get("Labels") or {}
            drv = self.drivers.get(record["Driver"])
            if (drv.scope if drv is not None else "local") != "local" or self.users(name):
                continue
            if not everything and ANONYMOUS_LABEL not in labels:
                continue
            if not F.labels_match(f, labels):
                continue
            size = self._size(record)
            try:
                await self.remove(name)
            except Conflict:
                continue  # a container took it meanwhile
            deleted.append(name)
            reclaimed += max(size, 0)
        self.events.emit("volume", "prune", "", reclaimed=reclaimed)
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def df(self) -> dict[str, Any]:
        records = list(self.records.values())
        return {"Volumes": await asyncio.to_thread(lambda: [self.to_json(r, usage=True) for r in records])}

    # -- used by containers ----------------------------------------------------------------

    def attach(self, name: str, ref: str) -> str:
        """Mount ``name`` for user ``ref`` through its driver; the host path. May block."""
        return self.driver(self.get(name)["Driver"]).mount(name, ref)

    async def mount(self, name: str, ref: str) -> str:
        return await asyncio.to_thread(self.attach, name, ref)

    def unmount(self, name: str, ref: str) -> None:
        record = self.records.get(name)
        if record is None:
            return
        try:
            self.driver(record["Driver"]).unmount(name, ref)
        except Exception:
            log.exception("unmounting volume %s for %s failed", name, ref[:12])

    async def reconcile(self, containers: Any) -> None:
        """After a daemon restart: take the volume references of containers still running
        (their device mounts stay); mounts nobody uses are undone."""
        running: dict[str, set[str]] = {}
        for c in list(containers.containers.values()):
            for m in c.mounts:
                if m.get("Type") == "volume" and m.get("Name") in self.records and c.running:
                    running.setdefault(m["Name"], set()).add(c.id)
        for name, record in self.records.items():
            try:
                drv = self.driver(record["Driver"])
            except InvalidArgument as exc:
                log.warning("volume %s: %s", name, exc)
                continue
            for cid in running.get(name, ()):
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(drv.mount, name, cid)
            if name not in running:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(drv.unmount, name, "")
