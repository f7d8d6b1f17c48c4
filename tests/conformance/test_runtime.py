"""The runtime conformance suite against the native runtime, the oci runtime plugin with runc,
and the fake runtime (host processes, no isolation, no live-restore)."""

from __future__ import annotations

import shutil

import pytest

from dockyard.testing.conformance_runtime import RuntimeDriverSuite
from dockyard.testing.fake_runtime import FakeRuntime


@pytest.mark.privileged
class TestNative(RuntimeDriverSuite):
    @pytest.fixture
    def runtime_factory(self, tmp_path):
        from dockyard.runtime.native import NativeRuntime

        return lambda: NativeRuntime({}, tmp_path / "root", tmp_path / "state")


@pytest.mark.privileged
@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
class TestOciRunc(RuntimeDriverSuite):
    @pytest.fixture
    def runtime_factory(self, tmp_path):
        oci = pytest.importorskip("dockyard_oci.runtime")
        return lambda: oci.OciRuntime({}, tmp_path / "root", tmp_path / "state")


class TestFake(RuntimeDriverSuite):
    kernel = False
    live_restore = False

    @pytest.fixture
    def runtime_factory(self, tmp_path):
        return lambda: FakeRuntime({}, tmp_path / "root", tmp_path / "state")
