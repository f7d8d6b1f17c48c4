"""The build cache: which image a step produced, keyed like Docker's classic builder by the
parent image ID and the instruction (for COPY/ADD also a hash of the files copied; for RUN
also the build args it sees). A hit is only used while the image still exists.

``images`` is the other direction (image -> the key of the step that made it), kept for
``cachefrom``: a step may then be served by any image in a named image's parent chain that
was made by the same step, even when a later build made another image for that key."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Callable

from ..store import read_json, write_json


class BuildCache:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "cache.json"
        self.images_path = root / "images.json"
        self.lock = threading.Lock()
        self.entries: dict[str, str] = read_json(self.path) or {}
        self.images: dict[str, str] = read_json(self.images_path) or {}

    @staticmethod
    def key(parent: str | None, *parts: str) -> str:
        h = hashlib.sha256((parent or "scratch").encode())
        for p in parts:
            h.update(b"\0" + p.encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def key_of(self, image_id: str) -> str | None:
        return self.images.get(image_id)

    def put(self, key: str, image_id: str) -> None:
        with self.lock:
            self.entries[key] = image_id
            self.images[image_id] = key
            write_json(self.path, self.entries, sync=False)
            write_json(self.images_path, self.images, sync=False)

    def forget_missing(self, exists: Callable[[str], bool]) -> None:
        with self.lock:
            entries = {k: v for k, v in self.entries.items() if exists(v)}
            images = {k: v for k, v in self.images.items() if exists(k)}
            if entries == self.entries and images == self.images:
                return  # nothing removed (the usual daemon start): no write
            self.entries, self.images = entries, images
            write_json(self.path, self.entries, sync=False)
            write_json(self.images_path, self.images, sync=False)
