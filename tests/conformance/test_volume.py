"""The volume conformance suite against the built-in ``local`` driver (plain directories, and a
tmpfs mounted on first use as ``docker volume create --opt type=tmpfs`` does)."""

import pytest

from dockyard.testing.conformance_volume import VolumeDriverSuite
from dockyard.volumes.local import LocalVolumes


class TestLocal(VolumeDriverSuite):
    mounting_options = {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}
    bad_options = [{"bogus": "1"}, {"type": "tmpfs"}, {"device": "/dev/null"}, {"o": "size=1m"},
                   {"type": "none", "device": "relative/path", "o": "bind"}]

    @pytest.fixture
    def volume_driver_factory(self, tmp_path):
        return lambda: LocalVolumes({}, tmp_path / "volumes", tmp_path / "state")
