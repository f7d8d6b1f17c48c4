"""Every storage driver of this distribution (and the core fake) runs the conformance suite."""

import pytest

from dockyard.testing.conformance_storage import StorageDriverSuite
from dockyard.testing.fake_storage import FakeStorage
from dockyard_storage_overlay import OverlayDriver, VfsDriver


@pytest.mark.privileged
class TestOverlay(StorageDriverSuite):
    @pytest.fixture
    def storage_driver(self, tmp_path):
        return OverlayDriver({}, tmp_path / "root", tmp_path / "state")


@pytest.mark.privileged
class TestOverlayLegacyMount(StorageDriverSuite):
    """The mount(2) fallback for kernels without ``lowerdir+``."""

    @pytest.fixture
    def storage_driver(self, tmp_path):
        return OverlayDriver({"mount_api": "legacy"}, tmp_path / "root", tmp_path / "state")


class TestVfs(StorageDriverSuite):
    kernel = False

    @pytest.fixture
    def storage_driver(self, tmp_path):
        return VfsDriver({}, tmp_path / "root", tmp_path / "state")


class TestFake(StorageDriverSuite):
    kernel = False

    @pytest.fixture
    def storage_driver(self, tmp_path):
        return FakeStorage({}, tmp_path / "root", tmp_path / "state")
