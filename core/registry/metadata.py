"""Where each layer came from: diff id -> the registry blobs that hold it (Docker's v2metadata).

A pulled layer is stored unpacked; its compressed blob is gone. To push it again without
re-uploading, and to mount it across repositories, we remember every (registry, repository,
blob digest, media type, size) a diff id was pulled from or pushed to, in
``<data-root>/image/distribution/<diff hex>.json``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from ..images.store import read_json, split_digest, write_json_atomic

MAX_ENTRIES = 32


@dataclass(frozen=True)
class BlobSource:
    digest: str
    media_type: str
    size: int
    registry: str  # host[:port] as in the reference (docker.io for Hub)
    repository: str  # path inside the registry


class DistributionMetadata:
    def __init__(self, root: Path) -> None:
        self.dir = root / "distribution"
        self.lock = threading.Lock()

    def _path(self, diff_id: str) -> Path:
        return self.dir / f"{split_digest(diff_id)}.json"

    def sources(self, diff_id: str) -> list[BlobSource]:
        out = []
        for d in read_json(self._path(diff_id), []) or []:
            try:
                out.append(BlobSource(d["digest"], d["media_type"], int(d["size"]), d["registry"], d["repository"]))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def add(self, diff_id: str, source: BlobSource) -> None:
        with self.lock:
            current = [s for s in self.sources(diff_id) if s != source]
            current.insert(0, source)
            write_json_atomic(self._path(diff_id), [asdict(s) for s in current[:MAX_ENTRIES]])
