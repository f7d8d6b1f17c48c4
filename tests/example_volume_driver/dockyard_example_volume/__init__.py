"""``exampledriver``: a complete third-party volume driver for Dockyard.

Each volume is a directory ``<root>/<name>/data``; the option ``mode`` (octal, e.g. ``0700``)
sets its permissions, ``uid``/``gid`` its owner. The daemon constructs the driver as
``ExampleVolumeDriver(config, root, state)`` with ``root = <data-root>/volume/exampledriver``
and calls it through the :class:`dockyard.drivers.VolumeDriver` Protocol. Errors are
Dockyard's vocabulary (``InvalidArgument`` is a 400, ``NoSuchVolume`` a 404).

    pip install ./tests/example_volume_driver
    docker volume create -d exampledriver --opt mode=0700 private
    docker run --rm -v private:/data busybox sh -c 'echo hi > /data/f'
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from dockyard.errors import ConfigError, InvalidArgument, NoSuchVolume

__version__ = "0.3.0"

NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")  # one directory under the root, never a path
OPTIONS = {"mode", "uid", "gid"}


class ExampleVolumeDriver:
    name = "exampledriver"
    scope = "local"
    #: optional contracts beyond VolumeDriver (dockyard.drivers.volume): ``list``, checked at load
    capabilities = frozenset({"list"})

    def __init__(self, config: dict[str, Any], root: Path, state: Path) -> None:
        unknown = set(config) - {"default_mode"}
        if unknown:
            raise ConfigError(f"plugins.exampledriver: unknown option(s): {', '.join(sorted(unknown))}")
        self.default_mode = self._mode(str(config.get("default_mode", "0755")))
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.users: dict[str, set[str]] = {}  # volume -> container ids using it
        self.lock = threading.Lock()

    @classmethod
    def check(cls) -> None:
        """Nothing to probe: directories work everywhere (raise SkipPlugin otherwise)."""

    # -- helpers ------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not NAME.match(name):
            raise InvalidArgument(f"exampledriver: invalid volume name {name!r}")
        return self.root / name

    @staticmethod
    def _mode(text: str) -> int:
        try:
            mode = int(text, 8)
        except ValueError:
            raise InvalidArgument(f"exampledriver: mode must be octal, like 0750: {text!r}") from None
        if not 0 <= mode <= 0o7777:
            raise InvalidArgument(f"exampledriver: mode out of range: {text!r}")
        return mode

    def _validate(self, options: dict[str, str]) -> tuple[int, int, int]:
        for key in options:
            if key not in OPTIONS:
                raise InvalidArgument(f'exampledriver: invalid option: "{key}" (known: mode, uid, gid)')
        mode = self._mode(options["mode"]) if "mode" in options else self.default_mode
        ids = []
        for key in ("uid", "gid"):
            value = options.get(key, "-1")
            if not value.lstrip("-").isdigit() or int(value) < -1:
                raise InvalidArgument(f"exampledriver: {key} must be a number: {value!r}")
            ids.append(int(value))
        return mode, ids[0], ids[1]

    # -- the VolumeDriver Protocol ----------------------------------------------------------
    def create(self, name: str, options: dict[str, str]) -> None:
        directory = self._dir(name)
        mode, uid, gid = self._validate({str(k): str(v) for k, v in (options or {}).items()})
        (directory / "data").mkdir(parents=True, exist_ok=True)
        os.chmod(directory / "data", mode)  # not left to the umask
        if uid != -1 or gid != -1:
            os.chown(directory / "data", uid, gid)
        (directory / "options.json").write_text(json.dumps(options or {}))

    def remove(self, name: str) -> None:
        with self.lock:
            self.users.pop(name, None)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def path(self, name: str) -> str:
        return str(self._dir(name) / "data")

    def mount(self, name: str, ref: str) -> str:
        data = self._dir(name) / "data"
        if not data.is_dir():
            raise NoSuchVolume(name)
        with self.lock:
            self.users.setdefault(name, set()).add(ref)
        return str(data)

    def unmount(self, name: str, ref: str) -> None:
        with self.lock:
            users = self.users.get(name)
            if users is not None:
                users.discard(ref)
                if not users:
                    del self.users[name]

    def status(self, name: str) -> dict[str, Any] | None:
        data = self._dir(name) / "data"
        if not data.is_dir():
            return None
        return {"Mode": f"{data.stat().st_mode & 0o7777:04o}", "Users": len(self.users.get(name, ()))}

    def size(self, name: str) -> int:
        total = 0
        for dirpath, _, files in os.walk(self._dir(name) / "data"):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except OSError:
                    pass
        return total

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if (p / "data").is_dir())

    def close(self) -> None:
        """Daemon shutdown: the data stays (containers may still run: live-restore)."""
