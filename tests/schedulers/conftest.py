"""Fixtures for the scheduler replays: a raw Engine API client (the request bodies are the
ones cri-dockerd and Nomad's docker driver send, field by field), a unique cgroup prefix,
and cleanup of every container a replay made."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from dockyard_cgroups.detect import host_layout

LAYOUT = host_layout()
#: every hierarchy a container's cgroup goes into on this host
ROOTS = sorted({Path(m) for c, m in LAYOUT.v1.items()
                if c in ("memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices")}
               | ({Path(LAYOUT.unified)} if LAYOUT.unified else set()))


class Engine:
    """The Engine API at one version, as a Go client speaks it: JSON bodies, query params."""

    def __init__(self, daemon: Any, version: str) -> None:
        import docker

        self.api = docker.APIClient(base_url=daemon.url, version=version)
        self.made: list[str] = []

    def call(self, method: str, path: str, body: Any = None, _stream: bool = False, **params: Any) -> Any:
        params = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in params.items()}
        return self.api.request(method, self.api._url(path), params=params or None,
                                json=body, stream=_stream, timeout=120)

    def json(self, method: str, path: str, body: Any = None, expect: int = 200, **params: Any) -> Any:
        r = self.call(method, path, body, **params)
        assert r.status_code == expect, (method, path, r.status_code, r.text)
        return r.json() if r.content else None

    def create(self, name: str, body: dict[str, Any]) -> str:
        cid = self.json("POST", "/containers/create", body, expect=201, name=name)["Id"]
        self.made.append(cid)
        return cid

    def inspect(self, cid: str) -> dict[str, Any]:
        return self.json("GET", f"/containers/{cid}/json")

    def exec(self, cid: str, cmd: list[str]) -> tuple[int, bytes]:
        eid = self.json("POST", f"/containers/{cid}/exec", {"AttachStdout": True, "AttachStderr": True,
                                                            "Tty": False, "Cmd": cmd}, expect=201)["Id"]
        out = self.api.exec_start(eid, detach=False, tty=False)
        return self.json("GET", f"/exec/{eid}/json")["ExitCode"], out

    def close(self) -> None:
        for cid in self.made:
            self.call("DELETE", f"/containers/{cid}", force="1", v="1")
        self.api.close()


@pytest.fixture
def prefix():
    """A unique top-level cgroup name; whatever a replay left under it is removed."""
    name = f"dysched-{secrets.token_hex(4)}"
    yield name
    for root in ROOTS:
        top = root / name
        if top.is_dir():
            for d in sorted((Path(r) for r, _, _ in os.walk(top)), key=lambda p: -len(str(p))):
                d.rmdir()


def cgroup_paths(pid: int) -> dict[str, str]:
    """/proc/<pid>/cgroup as {controllers: path}."""
    out = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctls, path = line.split(":", 2)
        out[ctls] = path
    return out
