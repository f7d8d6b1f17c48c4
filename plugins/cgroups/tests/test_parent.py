"""Per-container parents on this host's backends: v1 cpuset inheritance along a new path,
and the parent registry that a restarted daemon (same state directory) reads back."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from dockyard.drivers.cgroups import Resources
from dockyard_cgroups.detect import host_layout
from dockyard_cgroups.v1 import CgroupV1

LAYOUT = host_layout()


@pytest.mark.privileged
@pytest.mark.skipif("cpuset" not in LAYOUT.v1, reason="no v1 cpuset hierarchy")
def test_v1_new_ancestors_inherit_cpuset_and_registry_survives_restart(make_driver, tmp_path):
    drv = make_driver(CgroupV1)
    prefix = f"dockyard-ptest-{secrets.token_hex(4)}"
    cpuset = Path(LAYOUT.v1["cpuset"])
    foreign = cpuset / prefix
    foreign.mkdir()  # someone else's, left with empty cpus/mems as a new v1 cpuset starts
    cid = "c" + secrets.token_hex(6)
    try:
        drv.create(cid, Resources(), parent=f"/{prefix}/kubepods/burstable")
        root_cpus = (cpuset / "cpuset.cpus").read_text().strip()
        for d in (foreign, foreign / "kubepods", foreign / "kubepods/burstable", foreign / "kubepods/burstable" / cid):
            assert (d / "cpuset.cpus").read_text().strip() == root_cpus, d
            assert (d / "cpuset.mems").read_text().strip()
        # a restarted daemon: same state directory, no adopt call
        again = CgroupV1({"parent": drv.parent}, tmp_path / "root", tmp_path / "state")
        assert again.path(cid) == f"/{prefix}/kubepods/burstable/{cid}"
        assert cid in again.list() and again.exists(cid)
        again.remove(cid)
        assert not (foreign / "kubepods").exists()  # made by the driver: removed once empty
        assert foreign.is_dir()  # not made by it: kept
    finally:
        for d in sorted((Path(r) for r, _, _ in os.walk(foreign)), key=lambda p: -len(str(p))):
            d.rmdir()
