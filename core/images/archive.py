"""Image archives: ``docker load`` (docker-save and OCI image-layout tars, plain or compressed),
``docker import`` (a rootfs tar) and ``docker save`` (Docker 25+ layout: ``manifest.json``,
``repositories``, ``index.json``, ``oci-layout`` and ``blobs/sha256/<hex>``).

Archives are hostile input: every member is staged under a numbered name (never its own
path) or, a layer on a driver that can stage layers, unpacked straight from the stream
(:class:`Unpacker`: written once); every blob is checked against the digest that names it,
every layer against the config's diff ids, and the commit is all or nothing
(``ImageService.commit_images``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable

from ..errors import InvalidArgument, NotFound
from ..layers.tarfmt import READ_SIZE, fast_stream
from . import reference as R
from .model import Image, PendingImage, host_arch, now_rfc3339
from .store import CHUNK, DigestMismatch, split_digest
from .streams import HashingReader, IterReader, decompressed, sniff

if TYPE_CHECKING:
    from .service import ImageService

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MAX_JSON = 64 << 20
MAX_LINKS = 16

Progress = Callable[[dict[str, Any]], None]


class BadArchive(InvalidArgument):
    pass


# -- reading an archive ----------------------------------------------------------------------


class Staged:
    """An archive's members, staged as numbered files; names resolve through archive links."""

    def __init__(self, stage: Path) -> None:
        self.stage = stage
        self.files: dict[str, tuple[Path, str, int]] = {}  # name -> (path, sha256 hex, size)
        self.links: dict[str, str] = {}

    def lookup(self, name: str) -> tuple[Path, str, int]:
        key = _norm(name)
        for _ in range(MAX_LINKS):
            if key in self.files:
                return self.files[key]
            if key not in self.links:
                break
            key = self.links[key]
        raise BadArchive(f"invalid archive: {name} not found in the archive")

    def read_json(self, name: str) -> Any:
        path, _, size = self.lookup(name)
        if size > MAX_JSON:
            raise BadArchive(f"invalid archive: {name} is too large")
        try:
            return json.loads(_read(path, name))
        except ValueError as exc:
            raise BadArchive(f"invalid archive: {name}: {exc}") from None

    def blob(self, digest: str, size: int | None = None) -> tuple[Path, str, int]:
        """An OCI blob, verified against its digest (and size when the descriptor gives one)."""
        hexpart = split_digest(digest)
        try:
            path, got, n = self.lookup(f"blobs/sha256/{hexpart}")
        except BadArchive:
            raise BadArchive(f"invalid archive: blob {digest} not found in the archive") from None
        if got != hexpart:
            raise DigestMismatch(f"digest mismatch for blob {digest}: content is sha256:{got}")
        if size is not None and size != n:
            raise DigestMismatch(f"size mismatch for blob {digest}: descriptor says {size}, content is {n}")
        return path, got, n


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:  # a tar member, taken for a layer and not staged
        raise BadArchive(f"invalid archive: {name} is not a JSON document") from None


def _norm(name: str) -> str:
    if name.startswith("/"):
        raise BadArchive(f"invalid archive: absolute member name {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadArchive(f"invalid archive: member name {name!r} leaves the archive")
    return "/".join(parts)


class _MemberReader:
    """The ``size`` bytes of a member's data from tarfile's stream: its reads as they are,
    ``ReadError`` when the stream ends first (as tarfile's own member reader)."""

    def __init__(self, stream: Any, size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.stream.read(min(n, self.left))
        if not chunk:
            raise tarfile.ReadError("unexpected end of data")
        self.left -= len(chunk)
        return chunk


def extract(stream: BinaryIO, stage: Path, unpacker: "Unpacker | None" = None) -> Staged:
    """Stage every member of the archive under a numbered name, hashing it on the way. With
    ``unpacker``, a member that looks like a layer tar is not staged: its bytes go straight
    to the unpacker (see :class:`Unpacker`), written once, as the layer's files."""
    staged = Staged(stage)
    if not isinstance(stream, io.BufferedReader):
        stream = io.BufferedReader(stream, CHUNK)  # type: ignore[arg-type]
    n = 0
    try:
        # tarfile's stream reads in 10 KiB pieces by default: a 200 MB member is 20k reads and joins
        with fast_stream(tarfile.open(fileobj=stream, mode="r|*", bufsize=READ_SIZE)) as tar:
            for m in tar:
                name = _norm(m.name)
                if m.isreg():
                    n += 1
                    dest = stage / f"m{n}"
                    # A member's data is next in the stream: read there, not through the
                    # extractfile object (a copy of every chunk); sparse members need its mapping.
                    src = tar.extractfile(m) if m.issparse() else _MemberReader(tar.fileobj, m.size)
                    assert src is not None
                    chunk = src.read(CHUNK)
                    spool = unpacker.offer(dest, m.size, chunk, name) if unpacker is not None else None
                    digest: Any
                    if spool is not None:
                        try:
                            while chunk:
                                spool.put(chunk)
                                chunk = src.read(CHUNK)
                            spool.finish()
                        finally:
                            spool.close()
                        digest = spool  # hashed by the unpacker's thread: known at the end
                    else:
                        h = hashlib.sha256()
                        with open(dest, "wb", buffering=0) as f:
                            while chunk:
                                h.update(chunk)
                                _write_all(f, chunk)
                                chunk = src.read(CHUNK)
                        digest = h.hexdigest()
                    staged.files[name] = (dest, digest, m.size)
                elif m.issym():
                    staged.links[name] = _norm(posixpath.join(posixpath.dirname(name), m.linkname))
                elif m.islnk():
                    staged.links[name] = _norm(m.linkname)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise BadArchive(f"invalid archive: {exc or type(exc).__name__}") from None
    except OSError as exc:
        if "gzip" in str(exc).lower() or "compressed" in str(exc).lower():
            raise BadArchive(f"invalid archive: {exc}") from None
        raise
    if not staged.files:
        raise BadArchive("invalid archive: empty or not a tar archive")
    for name, (dest, h, size) in staged.files.items():
        if isinstance(h, _Spool):  # once its unpacker has read (and hashed) all of it
            staged.files[name] = (dest, h.digest(), size)
    return staged


def _write_all(f: Any, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[f.write(view):]


# -- unpacking layers straight from the archive stream --------------------------------------

SPOOL_MAX = 8 << 20  # bytes of layer data read ahead of the unpackers, all layers together (a peak
# of the daemon's memory: 64 MiB was no faster, and ~25 MB more at the peak)


class _Spool:
    """A layer member's bytes on their way from the archive reader to its unpacker: the
    reader ``put``s chunks (waiting while the unpackers are ``SPOOL_MAX`` behind), the
    unpacker reads them; ``close`` before ``finish`` (a bad or cut archive) fails the
    unpacker, an unpacker that ``abandon``s the member makes the reader drop the rest."""

    def __init__(self, budget: "Unpacker") -> None:
        self.budget = budget
        self.cond = budget.cond
        self.chunks: collections.deque[bytes] = collections.deque()
        self.done = self.closed = self.abandoned = False
        # the member's sha256, taken by whoever consumes a chunk: the unpacker's thread in
        # get() (the archive reader's thread is the load's bottleneck: hashing 200 MB is
        # 0.13 s of it), the reader itself for what comes after an abandon
        self.hash = hashlib.sha256()
        self.drained = False  # the unpacker has read (and hashed) the whole member

    def put(self, chunk: bytes) -> None:
        with self.cond:
            while self.budget.buffered >= SPOOL_MAX and not self.abandoned:
                self.cond.wait()
            if not self.abandoned:
                self.chunks.append(chunk)
                self.budget.buffered += len(chunk)
                self.cond.notify_all()
                return
        self.hash.update(chunk)  # abandoned: the unpacker no longer takes (or hashes) any

    def digest(self) -> str:
        """The member's sha256 (hex), once every chunk is hashed (after :meth:`finish`)."""
        with self.cond:
            while not (self.drained or self.abandoned):
                self.cond.wait()
        return self.hash.hexdigest()

    def finish(self) -> None:
        with self.cond:
            self.done = True
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def abandon(self) -> None:
        with self.cond:
            if not self.abandoned:
                for chunk in self.chunks:  # in order: before any the reader hashes from now on
                    self.hash.update(chunk)
                self.abandoned = True
            self.budget.buffered -= sum(map(len, self.chunks))
            self.chunks.clear()
            self.cond.notify_all()

    def get(self) -> bytes:
        """The next chunk, ``b""`` at the member's end; raises if the reader gave up."""
        with self.cond:
            while not self.chunks and not self.done and not self.closed:
                self.cond.wait()
            if self.chunks:
                chunk = self.chunks.popleft()
                self.budget.buffered -= len(chunk)
                self.cond.notify_all()
            elif self.done:
                self.drained = True
                self.cond.notify_all()
                return b""
            else:
                raise BadArchive("invalid archive: unexpected end of data")
        self.hash.update(chunk)  # outside the lock: the reader goes on meanwhile
        return chunk


class _SpoolReader(io.RawIOBase):
    def __init__(self, spool: _Spool) -> None:
        self.spool = spool
        self.view = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self.view:
            self.view = memoryview(self.spool.get())
            if not self.view:
                return 0
        n = min(len(b), len(self.view))
        b[:n] = self.view[:n]
        self.view = self.view[n:]
        return n


def _looks_like_layer(name: str, head: bytes) -> bool:
    """A compressed stream, or a tar whose first header checks out (a guess: a member
    guessed wrong is not staged, and the archive is refused if an image needs it as JSON)."""
    if name.endswith(".json") or name in ("repositories", "oci-layout"):
        return False
    if sniff(head[:8]) in ("gzip", "bzip2", "xz"):
        return True
    if len(head) < tarfile.BLOCKSIZE:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


class _Unpacked:
    def __init__(self, handle: Any, compressed: bool, digest: str | None, count: int,
                 error: BaseException | None) -> None:
        # digest, count: of the decompressed content (the digest None when it could not be
        # decompressed: ``error`` says why); an uncompressed member's are the archive reader's
        self.handle, self.compressed, self.digest, self.count, self.error = handle, compressed, digest, count, error


class Unpacker:
    """Unpacks the archive's layers straight from the archive stream, so that each layer's
    bytes are written once, as its files (no staged copy of the tar). Each member that looks
    like a layer is unpacked by the storage driver's ``stage_layer`` in a worker thread (at
    most one per core; decompression, hashing and unpacking of different layers overlap with
    each other and with reading the archive), fed from memory (``SPOOL_MAX`` read ahead).

    Members come in any order relative to manifest.json and the configs, so the unpack is a
    guess checked when the whole archive is read (``take``): a layer is committed only if
    its content's digest is the diff id in its image's config; a mismatch or a failed unpack
    an image needs fails the load, and every staged unpack not committed is discarded
    (``close``; after a crash, the driver's ``.tmp-stage-*`` directories are swept at start).
    A member used by a second chain is committed from the first one's export (the driver's
    ``reproducible-export``: ``ImageService.can_stage`` requires it)."""

    def __init__(self, svc: "ImageService") -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.svc = svc
        self.driver = svc.require_driver()
        self.pool = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 8)),
                                       thread_name_prefix="layer-unpack")
        self.cond = threading.Condition()
        self.buffered = 0
        self.jobs: dict[Path, Any] = {}
        self.spools: list[_Spool] = []
        self.kept: list[Any] = []  # StagedLayer handed to the commit

    def offer(self, path: Path, size: int, head: bytes, name: str) -> _Spool | None:
        if not _looks_like_layer(name, head):
            return None
        spool = _Spool(self)
        self.spools.append(spool)
        self.jobs[path] = self.pool.submit(self._unpack, spool)
        return spool

    def _unpack(self, spool: _Spool) -> _Unpacked:
        raw = io.BufferedReader(_SpoolReader(spool), CHUNK)
        compressed, handle, hashing = False, None, None
        try:
            compressed = sniff(raw.peek(8)[:8]) != "none"
            # uncompressed: the content is the member, its digest taken by the archive reader
            hashing = HashingReader(decompressed(raw)) if compressed else None
            src = io.BufferedReader(hashing, CHUNK) if hashing is not None else raw
            handle = self.driver.stage_layer(src)
            while src.read(CHUNK):  # tar padding (counts for the digest)
                pass
            if hashing is None:
                return _Unpacked(handle, False, None, 0, None)
            return _Unpacked(handle, True, hashing.digest, hashing.count, None)
        except Exception as error:
            if handle is not None:
                with contextlib.suppress(Exception):
                    self.driver.discard_staged(handle)
            digest = None
            with contextlib.suppress(Exception):  # still learn the content's digest
                while raw.read(CHUNK) if hashing is None else hashing.read(CHUNK):
                    pass
                digest = hashing.digest if hashing is not None else None
            return _Unpacked(None, compressed, digest, 0, error)
        finally:
            spool.abandon()  # an unpacker that stopped early must not hold the reader up

    def take(self, pending: list[PendingImage], staged: Staged) -> None:
        """Check every streamed layer against its diff id and give each image the layers
        that were unpacked for it; raises the load's error (a digest mismatch, a layer that
        could not be unpacked) before anything is committed."""
        from .model import StagedLayer

        files = {f: (h, size) for f, h, size in staged.files.values()}
        used: set[Path] = set()
        seen: set[str] = set(self.svc.layers)
        for p in pending:
            diff_ids = list((p.config.get("rootfs") or {}).get("diff_ids") or [])
            if len(diff_ids) != len(p.layer_files):
                continue  # the commit says what is wrong
            try:
                chains = R.chain_ids(diff_ids)
            except Exception:
                continue
            for i, (path, diff, chain) in enumerate(zip(p.layer_files, diff_ids, chains)):
                job = self.jobs.get(path)
                if job is None:
                    continue  # a staged file: the commit unpacks and checks it
                done = job.result()
                hexpart, size = files[path]
                content = done.digest if done.compressed else "sha256:" + hexpart
                if content != diff:
                    if content is None and done.error is not None:
                        raise done.error
                    raise DigestMismatch(f"layer digest mismatch: config says {diff}, content is {content}")
                p.layer_hashes[i] = diff  # verified: the commit needs no staged file for it
                if chain in seen:
                    continue  # committed by an earlier image, or already there
                seen.add(chain)
                if done.error is not None:
                    raise done.error
                if path in used:
                    continue  # the commit makes it from the first chain's export
                used.add(path)
                layer = StagedLayer(done.handle, diff, done.count if done.compressed else size)
                self.kept.append(layer)
                p.staged[i] = layer

    def close(self) -> None:
        """Stop and drop every unpack not committed (on success and on failure alike)."""
        for spool in self.spools:
            spool.close()
        self.pool.shutdown(wait=True)
        kept = {id(layer.handle) for layer in self.kept}
        for job in self.jobs.values():
            with contextlib.suppress(Exception):
                done = job.result()
                if done.handle is not None and id(done.handle) not in kept:
                    self.driver.discard_staged(done.handle)
        self.jobs.clear()
        for layer in self.kept:
            with contextlib.suppress(Exception):
                self.svc.discard_staged(layer)


def _digest_in_name(name: str) -> str | None:
    """``blobs/sha256/<hex>`` and ``<hex>.json`` name their content's digest."""
    parts = _norm(name).split("/")
    if len(parts) == 3 and parts[:2] == ["blobs", "sha256"]:
        return parts[2]
    if len(parts) == 1 and parts[0].endswith(".json") and len(parts[0]) == 69:
        return parts[0][:-5]
    return None


def _config(staged: Staged, name: str) -> tuple[bytes, dict[str, Any]]:
    path, got, size = staged.lookup(name)
    if size > MAX_JSON:
        raise BadArchive(f"invalid archive: config {name} is too large")
    expected = _digest_in_name(name)
    if expected is not None and expected != got:
        raise DigestMismatch(f"digest mismatch for image config {name}: content is sha256:{got}")
    data = _read(path, name)
    try:
        config = json.loads(data)
    except ValueError as exc:
        raise BadArchive(f"invalid image config {name}: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
        raise BadArchive(f"invalid image config {name}: no rootfs")
    return data, config


def parse_docker(staged: Staged) -> list[PendingImage]:
    manifest = staged.read_json("manifest.json")
    if not isinstance(manifest, list):
        raise BadArchive("invalid archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise BadArchive("invalid archive: manifest.json entry without Config")
        data, config = _config(staged, entry["Config"])
        files, hashes = [], []
        for layer in entry.get("Layers") or []:
            path, got, _ = staged.lookup(layer)
            expected = _digest_in_name(layer)
            if expected is not None and expected != got:
                raise DigestMismatch(f"digest mismatch for layer {layer}: content is sha256:{got}")
            files.append(path)
            hashes.append("sha256:" + got)
        tags = [R.parse_tagged(t) for t in entry.get("RepoTags") or []]
        out.append(PendingImage(data, config, files, hashes, tags))
    return out


def parse_oci(staged: Staged) -> list[PendingImage]:
    index = staged.read_json("index.json")
    out: dict[str, PendingImage] = {}

    def walk(desc: dict[str, Any], name: str | None, depth: int = 0) -> None:
        if depth > 4 or not isinstance(desc, dict):
            raise BadArchive("invalid archive: index nesting too deep")
        name = _name_of(desc) or name
        mt = desc.get("mediaType", "")
        path, _, _ = staged.blob(desc.get("digest", ""), desc.get("size"))
        doc = json.loads(_read(path, desc.get("digest", "")))
        mt = mt or doc.get("mediaType", "")
        if mt in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
            subs = [d for d in doc.get("manifests") or [] if _platform_ok(d)]
            for d in subs[:1] if len(subs) > 1 and all("platform" in d for d in subs) else subs:
                walk(d, name, depth + 1)
            return
        cdesc = doc.get("config") or {}
        cpath, chex, _ = staged.blob(cdesc.get("digest", ""), cdesc.get("size"))
        data = _read(cpath, cdesc.get("digest", ""))
        try:
            config = json.loads(data)
        except ValueError as exc:
            raise BadArchive(f"invalid image config: {exc}") from None
        if not isinstance(config, dict) or not isinstance(config.get("rootfs"), dict):
            raise BadArchive("invalid image config: no rootfs")
        files, hashes = [], []
        for ldesc in doc.get("layers") or []:
            lpath, lhex, _ = staged.blob(ldesc.get("digest", ""), ldesc.get("size"))
            files.append(lpath)
            hashes.append("sha256:" + lhex)
        key = "sha256:" + chex
        pending = out.setdefault(key, PendingImage(data, config, files, hashes, []))
        if name:
            ref = R.parse_tagged(name)
            if str(ref) not in {str(t) for t in pending.tags}:
                pending.tags.append(ref)

    for desc in (index or {}).get("manifests") or []:
        walk(desc, None)
    return list(out.values())


def _name_of(desc: dict[str, Any]) -> str | None:
    ann = desc.get("annotations") or {}
    name = ann.get("io.containerd.image.name")
    if name:
        return name
    ref = ann.get("org.opencontainers.image.ref.name") or ""
    if ("/" in ref or ":" in ref) and R.try_parse(ref) is not None:
        return ref
    return None


def _platform_ok(desc: dict[str, Any]) -> bool:
    p = desc.get("platform")
    if not p:
        return True
    return p.get("os") in (None, "linux") and p.get("architecture") in (None, host_arch())


def load_archive(svc: ImageService, stream: BinaryIO, progress: Progress, quiet: bool) -> list[str]:
    svc.require_driver()
    stage = svc.staging_dir()
    unpacker = Unpacker(svc) if svc.can_stage() else None
    try:
        staged = extract(stream, stage, unpacker)
        if "manifest.json" in staged.files or "manifest.json" in staged.links:
            pending = parse_docker(staged)
        elif "index.json" in staged.files:
            pending = parse_oci(staged)
        else:
            raise BadArchive("invalid archive: neither manifest.json nor index.json found")
        if not pending:
            raise BadArchive("invalid archive: no images in the archive")
        if unpacker is not None:
            unpacker.take(pending, staged)

        def layer_progress(msg: dict[str, Any]) -> None:
            if not quiet or "stream" in msg:
                progress(msg)

        done = svc.commit_images(pending, layer_progress, event="load")
    finally:
        if unpacker is not None:
            unpacker.close()
        shutil.rmtree(stage, ignore_errors=True)
    lines = []
    for image, tags in done:
        if tags:
            lines.extend(f"Loaded image: {t.familiar}\n" for t in tags)
        else:
            lines.append(f"Loaded image ID: {image.id}\n")
    return lines


# -- import -------------------------------------------------------------------------------

CHANGE_COMMANDS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR",
                   "STOPSIGNAL")


def apply_changes(changes: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dockerfile instructions allowed in ``docker import --change`` / ``commit --change``."""
    cfg: dict[str, Any] = dict(base or {})
    for line in changes:
        line = line.strip()
        if not line:
            continue
        word, _, rest = line.partition(" ")
        cmd, rest = word.upper(), rest.strip()
        if cmd not in CHANGE_COMMANDS:
            raise InvalidArgument(f"{word} is not a valid change command")
        if cmd in ("CMD", "ENTRYPOINT"):
            try:
                value = json.loads(rest)
                if not isinstance(value, list):
                    raise ValueError
            except ValueError:
                value = ["/bin/sh", "-c", rest]
            cfg["Cmd" if cmd == "CMD" else "Entrypoint"] = value
        elif cmd == "ENV":
            env = list(cfg.get("Env") or [])
            for key, value in _pairs(rest):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif cmd == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(rest))
            cfg["Labels"] = labels
        elif cmd == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            cfg["ExposedPorts"] = ports
        elif cmd == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            try:
                items = json.loads(rest) if rest.startswith("[") else rest.split()
            except ValueError:
                items = rest.split()
            for v in items:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif cmd == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
        else:
            cfg[{"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[cmd]] = rest
    return cfg


def _pairs(text: str) -> list[tuple[str, str]]:
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid change: {exc}") from None
    if words and "=" not in words[0]:  # legacy "ENV key value"
        return [(words[0], " ".join(words[1:]))]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"invalid change: {w!r} is not key=value")
        out.append((key, value))
    return out


def import_rootfs(svc: ImageService, stream: BinaryIO, repo: str | None, tag: str | None, message: str,
                  changes: list[str], platform_: str | None) -> Image:
    svc.require_driver()
    ref = None
    if repo:
        ref = R.parse(repo)
        if ref.digest is not None:
            raise InvalidArgument("cannot import digest reference")
        ref = ref.with_tag(tag) if tag else ref.with_default_tag()
    os_, arch = "linux", host_arch()
    if platform_:
        parts = platform_.split("/")
        if parts[0] != "linux":
            raise InvalidArgument(f"unsupported platform {platform_!r}: only linux images")
        if len(parts) > 1 and parts[1]:
            arch = parts[1]
    config_cfg = apply_changes(changes)
    stage = svc.staging_dir()
    try:
        layer = stage / "layer.tar"
        if not isinstance(stream, io.BufferedReader):
            stream = io.BufferedReader(stream, CHUNK)  # type: ignore[arg-type]
        reader = HashingReader(decompressed(stream))
        with open(layer, "wb") as f:
            while chunk := reader.read(CHUNK):
                f.write(chunk)
        if reader.count == 0:
            raise InvalidArgument("import: the archive is empty")
        created = now_rfc3339()
        comment = message or ""
        config = {
            "architecture": arch, "os": os_, "created": created,
            "config": config_cfg or {},
            "rootfs": {"type": "layers", "diff_ids": [reader.digest]},
            "history": [{"created": created, **({"comment": comment} if comment else {}),
                         "created_by": "" if comment else "Imported from -"}],
        }
        if comment:
            config["comment"] = comment
        data = json.dumps(config, separators=(",", ":")).encode()
        pending = PendingImage(data, config, [layer], [reader.digest], [ref] if ref else [])
        [(image, _)] = svc.commit_images([pending], lambda msg: None, event="import")
        return image
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# -- save -----------------------------------------------------------------------------------


def save_targets(svc: ImageService, names: list[str]) -> list[tuple[Image, list[R.Reference]]]:
    """What ``docker save NAME...`` writes: a bare repository name means all of its tags."""
    order: list[str] = []
    refs: dict[str, list[R.Reference]] = {}

    def add(image: Image, ref: R.Reference | None) -> None:
        if image.id not in refs:
            order.append(image.id)
            refs[image.id] = []
        if ref is not None and str(ref) not in {str(r) for r in refs[image.id]}:
            refs[image.id].append(ref)

    for name in names:
        ref = R.try_parse(name) if not name.startswith("sha256:") else None
        if ref is not None and ref.name_only:
            tagged = [r for k in sorted(svc.refs) if (r := R.parse(k)).name == ref.name and r.tag and not r.digest]
            if tagged:
                for r in tagged:
                    add(svc.images[svc.refs[str(r)]], r)
                continue
        image = svc.resolve(name)
        key = svc._ref_key(name)
        add(image, R.parse(key) if key is not None and R.parse(key).tag else None)
    return [(svc.images[i], refs[i]) for i in order]


def _info(name: str, size: int, mode: int = 0o644, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.mtime = size, mode, kind, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _header(name: str, size: int, mode: int = 0o644, kind: bytes = tarfile.REGTYPE) -> bytes:
    """A member's header block(s), as ``tarfile`` writes them (PAX, utf-8)."""
    return _info(name, size, mode, kind).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _descriptor(media_type: str, data_or_digest: bytes | str, size: int | None = None) -> dict[str, Any]:
    if isinstance(data_or_digest, bytes):
        return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data_or_digest).hexdigest(),
                "size": len(data_or_digest)}
    return {"mediaType": media_type, "digest": data_or_digest, "size": size}


class _LayerContent:
    """A layer blob's content in the archive: an open file already known good (the kept
    original blob, or an export spooled and verified while planning), or the storage
    driver's export, checked against its size and diff id while it is written."""

    def __init__(self, size: int, file: BinaryIO | None = None, export: tuple[Any, str, str] | None = None,
                 tee: Any = None) -> None:
        self.size, self.file, self.export = size, file, export
        self.tee, self.verified = tee, False  # tee: a layer tar cache entry being written

    def write(self, out: Any) -> None:
        if self.file is not None:
            _copy_file(self.file, self.size, out)
            return
        assert self.export is not None
        driver, chain_hex, diff_id = self.export
        h, n = hashlib.sha256(), 0
        chunks = driver.export_layer(chain_hex)
        try:
            for chunk in chunks:
                n += len(chunk)
                if n > self.size:
                    break
                h.update(chunk)
                out.write(chunk)
                if self.tee is not None:
                    self.tee.write(chunk)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if n != self.size or "sha256:" + h.hexdigest() != diff_id:
            raise DigestMismatch(f"layer sha256:{chain_hex} exported by the storage driver does not match "
                                 f"its diff id {diff_id}")
        self.verified = True

    def close(self) -> None:
        """After the archive is sent: a verified export goes into the layer tar cache."""
        if self.file is not None:
            self.file.close()
        if self.tee is not None:
            tee, self.tee = self.tee, None
            tee.commit() if self.verified else tee.abort()


def _copy_file(f: BinaryIO, size: int, out: Any) -> None:
    """``size`` bytes of the open file ``f`` from its start (sendfile when ``out`` can)."""
    sendfile = getattr(out, "sendfile", None)
    if sendfile is not None:
        sendfile(f.fileno(), 0, size)
        return
    f.seek(0)
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            raise DigestMismatch("a layer blob is shorter than its recorded size")
        out.write(chunk)
        left -= len(chunk)


class SaveArchive:
    """``docker save``'s archive, planned before a byte of it is sent: its exact size is
    known (the response's Content-Length), every blob it needs is open (a blob removed
    meanwhile cannot cut it short) and layers of unknown size are exported and verified
    first; :meth:`write` then streams it. Byte for byte what ``tarfile`` wrote for the same
    members (PAX headers, two zero blocks, padded to a 10 KiB record)."""

    def __init__(self) -> None:
        self.parts: list[bytes | _LayerContent] = []
        self.size = 0
        self._pending = bytearray()

    def add(self, data: bytes) -> None:
        self._pending += data
        self.size += len(data)

    def add_member(self, name: str, data: bytes) -> None:
        self.add(_header(name, len(data)) + data + _pad(len(data)))

    def add_layer(self, name: str, content: _LayerContent) -> None:
        self.add(_header(name, content.size))
        self.parts.append(bytes(self._pending))
        self._pending.clear()
        self.parts.append(content)
        self.size += content.size
        self.add(_pad(content.size))

    def finish(self) -> None:
        self.add(b"\0" * (2 * tarfile.BLOCKSIZE))
        self.add(b"\0" * (-self.size % tarfile.RECORDSIZE))
        self.parts.append(bytes(self._pending))
        self._pending.clear()

    def take_head(self) -> bytes:
        """The leading bytes (at least the first member's header), removed from the plan:
        for the caller to send through its own path before the rest."""
        head = self.parts.pop(0)
        assert isinstance(head, bytes)
        return head

    def write(self, out: Any) -> None:
        for part in self.parts:
            if isinstance(part, bytes):
                out.write(part)
            else:
                part.write(out)

    def close(self) -> None:
        for part in self.parts:
            if isinstance(part, _LayerContent):
                part.close()


def plan_archive(svc: ImageService, targets: list[tuple[Image, list[R.Reference]]]) -> SaveArchive:
    driver = svc.require_driver()
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index_manifests: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    arc = SaveArchive()
    try:
        for d in ("blobs", "blobs/sha256"):
            arc.add(_header(d, 0, 0o755, tarfile.DIRTYPE))

        def add_bytes(data: bytes) -> str:
            hexpart = hashlib.sha256(data).hexdigest()
            if hexpart not in written:
                written.add(hexpart)
                arc.add_member(f"blobs/sha256/{hexpart}", data)
            return hexpart

        for image, refs in targets:
            layer_descs = []
            for chain in image.chains:
                layer = svc.layers.get(chain)
                if layer is None:
                    raise NotFound(f"layer {chain} of image {image.id} is missing")
                layer_descs.append(_plan_layer(svc, arc, driver, layer, written))
            config_bytes = svc.blobs.read(image.id)
            config_hex = add_bytes(config_bytes)
            oci_manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": _descriptor(OCI_CONFIG, config_bytes), "layers": layer_descs,
            }, separators=(",", ":")).encode()
            add_bytes(oci_manifest)
            mdesc = _descriptor(OCI_MANIFEST, oci_manifest)
            tags = [r for r in refs if r.tag]
            if tags:
                for r in tags:
                    index_manifests.append({**mdesc, "annotations": {
                        "io.containerd.image.name": str(r), "org.opencontainers.image.ref.name": r.tag}})
                    if image.diff_ids:
                        repositories.setdefault(r.familiar_name, {})[r.tag] = split_digest(image.diff_ids[-1])
            else:
                index_manifests.append(mdesc)
            manifest_json.append({
                "Config": f"blobs/sha256/{config_hex}",
                "RepoTags": [r.familiar for r in tags] or None,
                "Layers": [f"blobs/sha256/{split_digest(d['digest'])}" for d in layer_descs],
            })
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_manifests}
        for name, value in (("index.json", index), ("manifest.json", manifest_json)):
            arc.add_member(name, json.dumps(value, separators=(",", ":")).encode())
        arc.add_member("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            arc.add_member("repositories", json.dumps(repositories, separators=(",", ":")).encode())
        arc.finish()
    except BaseException:
        arc.close()
        raise
    return arc


def write_archive(svc: ImageService, targets: list[tuple[Image, list[R.Reference]]], out: BinaryIO) -> None:
    arc = plan_archive(svc, targets)
    try:
        arc.write(out)
    finally:
        arc.close()


def _plan_layer(svc: ImageService, arc: SaveArchive, driver: Any, layer: Any, written: set[str]) -> dict[str, Any]:
    """Plan one layer blob (once per archive) and return its OCI descriptor.

    The kept original blob when there is one; otherwise the driver's export: streamed when
    its size is known (verified against the diff id on the way: a mismatch aborts the
    archive), else exported to a spool file and verified now.
    """
    if layer.blob and svc.blobs.has(layer.blob):
        hexpart = split_digest(layer.blob)
        if hexpart in written:
            return _descriptor(layer.blob_media_type or OCI_LAYER, layer.blob, svc.blobs.size(layer.blob))
        f = open(svc.blobs.path(layer.blob), "rb")
        size = os.fstat(f.fileno()).st_size
        arc.add_layer(f"blobs/sha256/{hexpart}", _LayerContent(size, file=f))
        written.add(hexpart)
        return _descriptor(layer.blob_media_type or OCI_LAYER, layer.blob, size)
    hexpart = split_digest(layer.diff_id)
    if hexpart in written:
        return _descriptor(OCI_LAYER, layer.diff_id, layer.tar_size)
    chain_hex = split_digest(layer.chain_id)
    size = layer.tar_size
    if size is None or svc.keep_layer_blobs:  # spool: learn the size, check before sending
        spool = tempfile.TemporaryFile(dir=svc.tmp_dir)
        try:
            reader = HashingReader(IterReader(driver.export_layer(chain_hex)))
            shutil.copyfileobj(reader, spool, CHUNK)
            spool.flush()  # sent with sendfile from its fd: nothing may stay in the buffer
            if reader.digest != layer.diff_id:
                raise DigestMismatch(f"the storage driver cannot reproduce layer {layer.diff_id} "
                                     f"(its export is {reader.digest})")
            size = spool.tell()
        except BaseException:
            spool.close()
            raise
        content = _LayerContent(size, file=spool)
    else:
        cache = getattr(svc, "tar_cache", None)
        cached = cache.open(layer.diff_id, size) if cache is not None else None
        if cached is not None:  # kept by an earlier save (checked then): sent with sendfile
            content = _LayerContent(size, file=cached)
        else:
            content = _LayerContent(size, export=(driver, chain_hex, layer.diff_id),
                                    tee=cache.writer(layer.diff_id, size) if cache is not None else None)
    arc.add_layer(f"blobs/sha256/{hexpart}", content)
    written.add(hexpart)
    return _descriptor(OCI_LAYER, layer.diff_id, size)
