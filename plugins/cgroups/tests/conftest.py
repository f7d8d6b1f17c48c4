"""Fixtures: real drivers under a unique parent cgroup per test, removed afterwards."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from dockyard_cgroups.detect import host_layout


def leftovers(parent: str) -> list[str]:
    """Every directory named ``parent`` in any cgroup hierarchy on this host."""
    layout = host_layout()
    mounts = set(layout.v1.values()) | ({layout.unified} if layout.unified else set())
    return [str(Path(m, parent)) for m in mounts if Path(m, parent).exists()]


@pytest.fixture
def make_driver(tmp_path):
    """``make_driver(cls, **kw)``: a driver with parent ``dockyard-test-<hex>``; on teardown
    removes every container cgroup and the parent, then checks nothing is left anywhere."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made = []

    def make(cls, **kw):
        parent = f"dockyard-test-{secrets.token_hex(4)}"
        drv = cls({"parent": parent}, tmp_path / "root", tmp_path / "state", **kw)
        made.append((drv, parent))
        return drv

    yield make
    for drv, parent in made:
        for cid in drv.list():
            drv.remove(cid)
        drv.remove_parent()
        assert leftovers(parent) == []
