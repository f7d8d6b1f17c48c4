"""The network conformance suite against the built-in host and null drivers and the net_bridge
plugin's bridge driver. Everything runs in a private network and mount namespace (a pytest
inside ``unshare --net --mount``): the bridges, veths, namespaces and firewall rules the
drivers make exist only there, and the link counts the suite compares are not disturbed by
anything else running on the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.networks.drivers import HostDriver, NullDriver
from dockyard.testing.conformance_network import NetworkDriverSuite

INNER = os.environ.get("DOCKYARD_NETWORK_CONFORMANCE_INNER") == "1"
inner_only = pytest.mark.skipif(not INNER, reason="run in a private namespace by test_in_a_private_namespace")


@pytest.mark.privileged
@pytest.mark.skipif(INNER, reason="the outer run")
def test_in_a_private_namespace(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    root = Path(__file__).resolve().parents[2]
    pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                  "--basetemp", str(tmp_path / "inner"), str(Path(__file__).resolve())]
    r = subprocess.run(["unshare", "--net", "--mount", "sh", "-c", 'ip link set lo up && exec "$@"', "-", *pytest_cmd],
                       cwd=root, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "DOCKYARD_NETWORK_CONFORMANCE_INNER": "1", "DOCKYARD_SKIP_LEAK_CHECK": "1"})
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-5000:]
    assert " passed" in r.stdout and "failed" not in r.stdout, r.stdout


@inner_only
class TestHost(NetworkDriverSuite):
    wires = False

    @pytest.fixture
    def network_driver_factory(self, tmp_path):
        return lambda: HostDriver({}, tmp_path / "root", tmp_path / "state")


@inner_only
class TestNull(NetworkDriverSuite):
    wires = False

    @pytest.fixture
    def network_driver_factory(self, tmp_path):
        return lambda: NullDriver({}, tmp_path / "root", tmp_path / "state")


@inner_only
class TestBridge(NetworkDriverSuite):
    bad_options = [{"com.docker.network.driver.mtu": "10"}, {"com.docker.network.driver.mtu": "lots"},
                   {"com.docker.network.bridge.name": "a-name-far-too-long"},
                   {"com.docker.network.bridge.no_such_option": "1"}]

    @pytest.fixture
    def network_driver_factory(self, tmp_path):
        bridge = pytest.importorskip("dockyard_net_bridge.bridge")
        (tmp_path / "root").mkdir(exist_ok=True)
        return lambda: bridge.BridgeDriver({"instance": "conf"}, tmp_path / "root", tmp_path / "state")
