"""The shared CgroupDriverSuite against every driver this host can run, and the fake."""

import pytest

from dockyard.testing.conformance_cgroups import CgroupDriverSuite
from dockyard.testing.fake_cgroups import FakeCgroups
from dockyard_cgroups.auto import AutoCgroups
from dockyard_cgroups.detect import host_layout
from dockyard_cgroups.v1 import CgroupV1
from dockyard_cgroups.v2 import CgroupV2

LAYOUT = host_layout()


@pytest.mark.privileged
class TestAuto(CgroupDriverSuite):
    @pytest.fixture
    def cgroup_driver(self, make_driver):
        return make_driver(AutoCgroups)


@pytest.mark.privileged
@pytest.mark.skipif("memory" not in LAYOUT.v1, reason="no cgroup v1 on this host")
class TestV1(CgroupDriverSuite):
    @pytest.fixture
    def cgroup_driver(self, make_driver):
        return make_driver(CgroupV1)


@pytest.mark.privileged
@pytest.mark.skipif(LAYOUT.unified is None, reason="no cgroup2 mount")
class TestV2(CgroupDriverSuite):
    """On a hybrid host the unified tree has no controllers: limits skip (NotSupported), but
    tracking, freeze, kill-all, CPU usage and removal run for real."""

    @pytest.fixture
    def cgroup_driver(self, make_driver):
        return make_driver(CgroupV2)


class TestFake(CgroupDriverSuite):
    kernel = False

    @pytest.fixture
    def cgroup_driver(self, tmp_path):
        drv = FakeCgroups({"parent": "dockyard-test"}, tmp_path / "root", tmp_path / "state")
        yield drv
        for cid in drv.list():
            drv.remove(cid)
        drv.remove_parent()
