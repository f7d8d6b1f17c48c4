"""A container's mounts: ``Binds``, ``Mounts``, ``Tmpfs``, ``VolumesFrom`` and the image's volumes.

Three moments, as in Docker:

* **create** (:func:`plan` then :func:`create_volumes`): every source is parsed and checked
  first (400s with Docker's wording, nothing created), then missing named volumes and the
  anonymous ones are created with an undo. The result is the container's mount records:
  Docker's inspect ``Mounts`` keys (capitalized) plus a few of ours (lowercase, not shown).
* **start** (:func:`setup`): volumes are mounted through their driver (and filled from the
  image the first time), missing ``-v`` bind sources are created, and the runtime gets
  :class:`~dockyard.drivers.runtime.Mount`\\ s. The runtime mounts them after ``pivot_root``,
  so a target path is resolved inside the container's root: a symlink in the image cannot
  point a mount at the host.
* **stop / remove** (:func:`release`, :func:`remove_anonymous`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import subprocess
from pathlib import Path
from typing import Any

from ..drivers.runtime import Mount
from ..errors import DockyardError, InvalidArgument, NoSuchContainer, Unavailable
from .inroot import resolve_in_root

PROPAGATIONS = {"private", "rprivate", "shared", "rshared", "slave", "rslave"}
CONSISTENCY = {"consistent", "cached", "delegated", "default"}
LABELS = {"z", "Z"}
TMPFS_FLAGS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime",
               "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime", "sync",
               "async", "dirsync", "mand", "nomand"}
TMPFS_DEFAULT = ["nosuid", "nodev", "noexec"]  # Docker's defaults for every tmpfs mount


def _bad_config(kind: str, message: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {message}')


def _check_target(kind: str, target: Any) -> str:
    if not target or not isinstance(target, str):
        raise _bad_config(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise _bad_config(kind, f"invalid mount path: '{target}' mount path must be absolute")
    clean = posixpath.normpath(target)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean == "/":
        raise _bad_config(kind, "invalid specification: destination can't be '/'")
    return clean


def _check_volume_name(name: str) -> None:
    from ..volumes.service import check_name

    check_name(name)


def _point(kind: str, target: str, *, source: str = "", name: str = "", driver: str = "", rw: bool = True,
           mode: str = "", propagation: str = "", **extra: Any) -> dict[str, Any]:
    point: dict[str, Any] = {"Type": kind}
    if kind == "volume":
        point["Name"] = name
    point["Source"] = source
    point["Destination"] = target
    if kind == "volume":
        point["Driver"] = driver
    point.update({"Mode": mode, "RW": rw, "Propagation": propagation})
    point.update(extra)
    return point


# -- create: parse and validate -----------------------------------------------------------------

def parse_bind(spec: str, volume_driver: str) -> dict[str, Any]:
    """``[source:]destination[:mode]`` as Docker's Linux parser reads it."""
    if not isinstance(spec, str) or not spec:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    parts = spec.split(":")
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
        if not _valid_mode(mode):
            raise InvalidArgument(f"invalid mode: {mode}")
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    words = [w for w in mode.split(",") if w]
    kind = "bind" if source.startswith("/") else "volume"
    try:
        target = _check_target(kind, target)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {exc}") from None
    rw = "ro" not in words
    propagation = next((w for w in words if w in PROPAGATIONS), "")
    if kind == "bind":
        if "nocopy" in words:
            raise InvalidArgument(f"invalid mode: {mode}")
        return _point("bind", target, source=posixpath.normpath(source), rw=rw, mode=mode,
                      propagation=propagation or "rprivate", create_source=True)
    if propagation:
        raise InvalidArgument(f"invalid mode: {mode}")
    if source:
        _check_volume_name(source)
    return _point("volume", target, name=source, driver=volume_driver or "local", rw=rw,
                  mode=mode or "z", copy="nocopy" not in words, anonymous=not source)


def _valid_mode(mode: str) -> bool:
    words = [w for w in mode.split(",") if w]
    if not words:
        return False
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "cons": 0}
    for w in words:
        key = ("rw" if w in ("rw", "ro") else "label" if w in LABELS else "prop" if w in PROPAGATIONS
               else "copy" if w == "nocopy" else "cons" if w in CONSISTENCY else None)
        if key is None:
            return False
        counts[key] += 1
    return all(n <= 1 for n in counts.values())


def parse_mount(m: Any) -> dict[str, Any]:
    """One ``HostConfig.Mounts`` entry (``--mount``)."""
    if not isinstance(m, dict):
        raise InvalidArgument("invalid mount config: each Mounts entry must be an object")
    kind = m.get("Type") or ""
    source = m.get("Source") or ""
    readonly = bool(m.get("ReadOnly"))
    if kind not in ("bind", "volume", "tmpfs"):
        if kind in ("npipe", "cluster"):
            raise _bad_config(kind, "mount type not supported on this platform")
        raise _bad_config(kind, "mount type unknown")
    target = _check_target(kind, m.get("Target"))
    present = {k for k in ("BindOptions", "VolumeOptions", "TmpfsOptions") if m.get(k) is not None}
    allowed = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}[kind]
    for extra in sorted(present - {allowed}):
        raise _bad_config(kind, f"field {extra} must not be specified")
    if kind == "bind":
        if not source:
            raise _bad_config(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _bad_config(kind, f"invalid mount path: '{source}' mount path must be absolute")
        opts = m.get("BindOptions") or {}
        propagation = opts.get("Propagation") or "rprivate"
        if propagation not in PROPAGATIONS:
            raise _bad_config(kind, f"invalid propagation mode: {propagation}")
        if not os.path.exists(source) and not opts.get("CreateMountpoint"):
            raise _bad_config(kind, f"bind source path does not exist: {source}")
        return _point("bind", target, source=posixpath.normpath(source), rw=not readonly,
                      propagation=propagation, create_source=bool(opts.get("CreateMountpoint")),
                      recursive=not opts.get("NonRecursive"),
                      ro_nonrecursive=bool(readonly and opts.get("ReadOnlyNonRecursive")))
    if kind == "volume":
        opts = m.get("VolumeOptions") or {}
        driver_config = opts.get("DriverConfig") or {}
        if source:
            _check_volume_name(source)
        elif readonly:
            raise _bad_config(kind, "must not set ReadOnly mode when using anonymous volumes")
        labels = opts.get("Labels") or {}
        driver_opts = driver_config.get("Options") or {}
        if not isinstance(labels, dict) or not isinstance(driver_opts, dict):
            raise _bad_config(kind, "VolumeOptions Labels and DriverConfig.Options must be objects")
        return _point("volume", target, name=source, driver=driver_config.get("Name") or "local", rw=not readonly,
                      mode="z", copy=not opts.get("NoCopy"), anonymous=not source, labels=labels,
                      driver_opts=driver_opts)
    if source:
        raise _bad_config(kind, "field Source must not be specified")
    opts = m.get("TmpfsOptions") or {}
    data = []
    size = opts.get("SizeBytes")
    if size is not None:
        if not isinstance(size, int) or size < 0:
            raise _bad_config(kind, f"invalid tmpfs size: {size}")
        if size:
            data.append(f"size={size}")
    mode = opts.get("Mode")
    if mode is not None:
        if not isinstance(mode, int) or not 0 <= mode <= 0o7777:
            raise _bad_config(kind, f"invalid tmpfs mode: {mode}")
        data.append(f"mode={mode:o}")
    return _point("tmpfs", target, rw=not readonly, tmpfs=tmpfs_options(",".join(data), readonly))


def tmpfs_options(text: str, readonly: bool = False) -> list[str]:
    """``--tmpfs /run:rw,exec,size=64m``'s options on top of Docker's nosuid,nodev,noexec."""
    flags = list(TMPFS_DEFAULT)
    data = []
    for word in filter(None, (w.strip() for w in (text or "").split(","))):
        if word in TMPFS_FLAGS:
            opposite = word[2:] if word.startswith("no") else "no" + word
            flags = [f for f in flags if f not in (word, opposite)]
            if word in ("exec", "suid", "dev"):
                continue  # clearing the default is the whole effect
            flags.append(word)
        elif "=" in word and word.split("=", 1)[0] in ("size", "mode", "uid", "gid", "nr_inodes", "nr_blocks",
                                                       "huge", "mpol"):
            data.append(word)
        else:
            raise InvalidArgument(f"invalid tmpfs option: {word!r}")
    if readonly and "ro" not in flags:
        flags.append("ro")
    return flags + data


def plan(config: dict[str, Any], host_config: dict[str, Any], containers: Any) -> list[dict[str, Any]]:
    """Every mount of a new container, validated; volumes are not created yet. Later sources
    override earlier ones at the same destination as in Docker: ``VolumesFrom``, then
    ``Binds``, ``Mounts`` and ``Tmpfs`` (which must not repeat a destination among them),
    then the image's ``VOLUME``\\ s where nothing else is mounted."""
    hc = host_config
    points: dict[str, dict[str, Any]] = {}
    for ref in hc.get("VolumesFrom") or []:
        cref, _, mode = str(ref).partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid mode for volumes-from: {mode}")
        try:
            other = containers.get(cref)
        except NoSuchContainer:
            raise InvalidArgument(f"No such container: {cref}") from None
        for m in other.mounts:
            if m.get("Type") not in ("volume", "bind"):
                continue
            copied = {k: v for k, v in m.items() if k[0].isupper()}
            if mode:
                copied["RW"] = mode == "rw"
            points[m["Destination"]] = copied
    explicit: set[str] = set()

    def add(point: dict[str, Any]) -> None:
        target = point["Destination"]
        if target in explicit:
            raise InvalidArgument(f"Duplicate mount point: {target}")
        explicit.add(target)
        points[target] = point

    driver = hc.get("VolumeDriver") or ""
    binds = hc.get("Binds") or []
    if not isinstance(binds, list):
        raise InvalidArgument("Binds must be a list of strings")
    for spec in binds:
        add(parse_bind(spec, driver))
    mounts = hc.get("Mounts") or []
    if not isinstance(mounts, list):
        raise InvalidArgument("Mounts must be a list")
    for m in mounts:
        add(parse_mount(m))
    tmpfs = hc.get("Tmpfs") or {}
    if not isinstance(tmpfs, dict):
        raise InvalidArgument("Tmpfs must be an object of path: options")
    for target, options in tmpfs.items():
        clean = _check_target("tmpfs", target)
        tmpfs_options(options or "")  # bad options -> 400 now
        if clean in explicit:
            raise InvalidArgument(f"Duplicate mount point: {clean}")
        explicit.add(clean)  # --tmpfs mounts are not listed in Mounts (as Docker)
        points.pop(clean, None)
    for target in (config.get("Volumes") or {}):
        clean = _check_target("volume", target)
        if clean not in points and clean not in explicit:
            points[clean] = _point("volume", clean, driver=driver or "local", copy=True, anonymous=True)
    for point in points.values():
        if point["Type"] == "volume":
            containers.daemon.volumes.driver(point["Driver"])  # unknown driver -> 400 now
    return list(points.values())


async def create_volumes(volumes: Any, points: list[dict[str, Any]], undo: contextlib.AsyncExitStack) -> None:
    """Create the named volumes that do not exist yet and the anonymous ones, filling in
    ``Name`` and ``Source``; ``undo`` removes what was created here."""
    for point in points:
        if point["Type"] != "volume":
            continue
        name = point.get("Name") or None
        if name is None or name not in volumes.records:
            record = await volumes.create(name, point.get("Driver"), point.pop("driver_opts", None),
                                          point.pop("labels", None), anonymous=name is None)
            undo.push_async_callback(_remove_quietly, volumes, record["Name"])
            name = record["Name"]
        point.pop("driver_opts", None)
        point.pop("labels", None)
        record = volumes.get(name)
        point["Name"] = name
        point["Driver"] = record["Driver"]
        point["Source"] = volumes.driver(record["Driver"]).path(name)


async def _remove_quietly(volumes: Any, name: str) -> None:
    with contextlib.suppress(DockyardError):
        await volumes.remove(name, force=True)


# -- start ----------------------------------------------------------------------------------------

def _bind_options(point: dict[str, Any]) -> list[str]:
    opts = ["rbind" if point.get("recursive", True) else "bind"]
    if not point.get("RW", True):  # "ro-top": the top mount only (BindOptions.ReadOnlyNonRecursive)
        opts.append("ro-top" if point.get("ro_nonrecursive") else "ro")
    if point.get("Propagation"):
        opts.append(point["Propagation"])
    return opts


async def setup(service: Any, c: Any, rootfs: Path, undo: contextlib.AsyncExitStack) -> list[Mount]:
    """The runtime mounts for starting ``c``; volume references are released by ``undo``."""
    volumes = getattr(service.daemon, "volumes", None)
    wanted = [p for p in c.mounts if p["Type"] == "volume"]
    paths: dict[str, str] = {}
    if wanted:  # one worker thread for all of them: drivers and copies may block
        if volumes is None:
            raise Unavailable("the volume service is not running")
        paths = await asyncio.to_thread(_attach_volumes, volumes, c.id, rootfs, wanted)
        for point in wanted:
            undo.callback(volumes.unmount, point["Name"], c.id)
            service.events.emit("volume", "mount", point["Name"], container=c.id, destination=point["Destination"],
                                driver=point.get("Driver", ""), propagation=point.get("Propagation", ""),
                                **{"read/write": str(bool(point.get("RW", True))).lower()})
    out: list[Mount] = []
    for point in c.mounts:
        kind, target = point["Type"], point["Destination"]
        if kind == "volume":
            out.append(Mount(paths[target], target, "bind", _bind_options(point)))
        elif kind == "bind":
            source = point["Source"]
            if not os.path.exists(source):
                if not point.get("create_source"):
                    raise _bad_config("bind", f"bind source path does not exist: {source}")
                os.makedirs(source, 0o755, exist_ok=True)
            _check_propagation(source, point.get("Propagation") or "")
            out.append(Mount(source, target, "bind", _bind_options(point)))
        elif kind == "tmpfs":
            out.append(Mount("tmpfs", target, "tmpfs", list(point.get("tmpfs") or TMPFS_DEFAULT)))
    for target, options in (c.host_config.get("Tmpfs") or {}).items():
        out.append(Mount("tmpfs", posixpath.normpath(target), "tmpfs", tmpfs_options(options or "")))
    from . import shm  # --ipc shareable / container:X: the /dev/shm kept on the host

    undo.callback(shm.release, service, c)
    ipc = c.host_config.get("IpcMode") or ""
    if ipc == "shareable" or ipc.startswith("container:"):  # else shm.setup has nothing to do
        out.extend(await asyncio.to_thread(shm.setup, service, c))
    return out


def _check_propagation(source: str, propagation: str) -> None:
    """As Docker: shared or slave propagation needs a source on a shared (or slave) mount,
    else the bind would silently be private (hosts whose / is private, like this one)."""
    if propagation.lstrip("r") not in ("shared", "slave"):
        return
    path, best, fields = os.path.realpath(source), "", []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4]
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, fields = point, parts[6:parts.index("-")]
    shared = any(f.startswith("shared:") for f in fields)
    if propagation.lstrip("r") == "shared" and not shared:
        raise InvalidArgument(f"path {source} is mounted on {best} but it is not a shared mount")
    if not shared and not any(f.startswith("master:") for f in fields):
        raise InvalidArgument(f"path {source} is mounted on {best} but it is not a shared or slave mount")


def _attach_volumes(volumes: Any, cid: str, rootfs: Path, points: list[dict[str, Any]]) -> dict[str, str]:
    """Mount each volume for ``cid`` (and fill it from the image the first time); on a failure
    the ones already attached are released. Returns destination -> host path."""
    done: list[str] = []
    try:
        paths = {}
        for point in points:
            path = volumes.attach(point["Name"], cid)
            done.append(point["Name"])
            if point.get("copy"):
                populate(rootfs, point["Destination"], Path(path))
            paths[point["Destination"]] = path
        return paths
    except BaseException:
        for name in done:
            volumes.unmount(name, cid)
        raise


def populate(rootfs: Path, target: str, volume: Path) -> None:
    """Docker's copy-up: an empty volume mounted where the image has content gets a copy of
    it (files, owners, modes, and the directory's own owner and mode). The image path is
    resolved inside the rootfs, never following a symlink out of it."""
    try:
        if any(os.scandir(volume)):
            return
    except FileNotFoundError:
        return
    source = resolve_in_root(rootfs, target)
    try:
        st = os.lstat(source)
    except (FileNotFoundError, NotADirectoryError):
        return
    import stat

    if not stat.S_ISDIR(st.st_mode):
        return
    if not any(os.scandir(source)):
        os.chown(volume, st.st_uid, st.st_gid)
        os.chmod(volume, stat.S_IMODE(st.st_mode))
        return
    result = subprocess.run(["cp", "-a", "--", f"{source}/.", f"{volume}/"], capture_output=True)
    if result.returncode != 0:
        raise DockyardError(f"copying image content of {target} into the volume failed: "
                            f"{result.stderr.decode(errors='replace').strip()}")


# -- stop and remove ------------------------------------------------------------------------------

def release(service: Any, c: Any) -> None:
    """The container stopped: its volume references go (the last user unmounts devices), and
    its host /dev/shm."""
    from . import shm

    shm.release(service, c)
    volumes = getattr(service.daemon, "volumes", None)
    if volumes is None:
        return
    for point in c.mounts:
        if point["Type"] == "volume":
            volumes.unmount(point["Name"], c.id)
            service.events.emit("volume", "unmount", point["Name"], container=c.id, driver=point.get("Driver", ""))


async def remove_anonymous(service: Any, c: Any) -> None:
    """``docker rm -v`` and ``--rm``: the container's anonymous volumes go with it (named
    ones stay; one still used by another container, through ``--volumes-from``, stays)."""
    volumes = service.daemon.volumes
    for point in c.mounts:
        if point["Type"] == "volume" and point.get("anonymous"):
            with contextlib.suppress(DockyardError):
                await volumes.remove(point["Name"])
