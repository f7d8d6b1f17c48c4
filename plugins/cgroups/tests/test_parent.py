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


@pytest.mark.privileged
@pytest.mark.skipif(not LAYOUT.v1, reason="no v1 hierarchies")
def test_v1_default_parent_removed_between_creates_is_made_again(make_driver):
    """The driver makes its default parent once, not at every start: one removed meanwhile
    (remove_parent, or by hand) is made again, with the devices rules applied as before."""
    from dockyard.drivers.cgroups import DeviceRule

    drv = make_driver(CgroupV1)
    rules = [DeviceRule(False, "a"), DeviceRule(True, "c", 1, 3, "rwm"), DeviceRule(True, "c", 1, 5, "rwm")]
    first, second = "c" + secrets.token_hex(6), "c" + secrets.token_hex(6)
    drv.create(first, Resources(devices=rules))
    drv.remove(first)
    for base in drv._bases():  # by hand: the driver does not know
        Path(base, drv.parent).rmdir()
    drv.create(second, Resources(devices=rules))
    assert drv.exists(second)
    if "devices" in LAYOUT.v1:
        allowed = (Path(LAYOUT.v1["devices"], drv.parent, second) / "devices.list").read_text().split("\n")
        assert sorted(filter(None, allowed)) == ["c 1:3 rwm", "c 1:5 rwm"]
