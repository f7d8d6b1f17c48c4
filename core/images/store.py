"""Content store and small atomic JSON records.

* :class:`ContentStore`: ``<root>/blobs/sha256/<hex>``; every write goes to a temp file, is
  fsynced, verified against its digest and renamed into place.
* :func:`write_json_atomic`: ``dockyard.store``'s atomic write, creating the directory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from ..errors import InvalidArgument, NotFound
from ..store import fsync_dir, read_json, write_atomic, write_json  # noqa: F401  (read_json: re-exported)

CHUNK = 1 << 20


class DigestMismatch(InvalidArgument):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_digest(digest: str) -> str:
    """``sha256:<hex>`` -> ``<hex>``; anything else is a 400."""
    algo, sep, hexpart = digest.partition(":")
    if not sep or algo != "sha256" or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise InvalidArgument(f"unsupported or invalid digest {digest!r}")
    return hexpart


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode)


def write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, value, mode=0o644)


class ContentStore:
    """Blobs by sha256 digest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.dir / split_digest(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def write(self, data: bytes, expected: str | None = None) -> tuple[str, bool]:
        """Store ``data``; return ``(digest, created)``. ``expected`` is verified first."""
        digest = "sha256:" + sha256_hex(data)
        if expected is not None and expected != digest:
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        path = self.path(digest)
        if path.exists():
            return digest, False
        write_bytes_atomic(path, data, 0o644)
        return digest, True

    def write_stream(self, stream: BinaryIO, expected: str | None = None) -> tuple[str, int, bool]:
        """Copy a stream into the store, hashing on the way; verify, fsync, rename."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := stream.read(CHUNK):
                    h.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected is not None and expected != digest:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
            path = self.path(digest)
            if path.exists():
                os.unlink(tmp)
                return digest, size, False
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
            fsync_dir(self.dir)
            return digest, size, True
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def digests(self) -> Iterator[str]:
        for p in self.dir.iterdir():
            if not p.name.startswith("."):
                yield "sha256:" + p.name
