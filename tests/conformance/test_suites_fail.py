"""Each conformance suite can fail: a deliberately broken driver fails the test that guards
the broken behaviour (the suites' test methods are called directly, outside pytest's
collection, with the objects their fixtures would give)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from dockyard.builtin.transports import UnixTransport
from dockyard.config import DaemonConfig
from dockyard.errors import NotFound
from dockyard.networks.drivers import NullDriver
from dockyard.testing.conformance_runtime import RuntimeDriverSuite
from dockyard.testing.fake_runtime import FakeRuntime
from dockyard.testing.conformance_network import NetworkDriverSuite, links
from dockyard.testing.conformance_transport import TransportSuite
from dockyard.testing.conformance_volume import VolumeDriverSuite
from dockyard.volumes.local import LocalVolumes


# -- volume -----------------------------------------------------------------------------------

class EscapingVolumes(LocalVolumes):
    """The local driver without its name check: ``../x`` is a path out of the root."""

    def _dir(self, name: str) -> Path:
        return self.root / name


class ForgetfulVolumes(LocalVolumes):
    """Refuses bad options only after making the volume's directory."""

    def create(self, name, options):
        (self.root / name / "_data").mkdir(parents=True, exist_ok=True)
        super().create(name, options)


def volume_suite() -> VolumeDriverSuite:
    suite = VolumeDriverSuite()
    suite._made, suite._closed = [], False
    return suite


def outside_of(drv) -> Path:
    out = Path(drv.root).resolve().parent / f"outside-{secrets.token_hex(4)}"
    out.mkdir()
    (out / "keep").write_text("keep")
    return out


def test_volume_suite_passes_the_local_driver(tmp_path):
    drv = LocalVolumes({}, tmp_path / "volumes", tmp_path / "state")
    suite = volume_suite()
    suite.test_names_cannot_escape_the_root(drv, outside_of(drv))
    suite.test_refused_options_leave_nothing(drv)


def test_volume_suite_fails_a_driver_that_lets_dotdot_escape(tmp_path):
    drv = EscapingVolumes({}, tmp_path / "volumes", tmp_path / "state")
    outside = outside_of(drv)
    with pytest.raises(AssertionError, match="outside|changed|beside"):
        volume_suite().test_names_cannot_escape_the_root(drv, outside)


def test_volume_suite_fails_a_driver_that_leaves_refused_volumes(tmp_path):
    drv = ForgetfulVolumes({}, tmp_path / "volumes", tmp_path / "state")
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        volume_suite().test_refused_options_leave_nothing(drv)


# -- transport --------------------------------------------------------------------------------

class WorldWritableUnix(UnixTransport):
    """Leaves its socket 0666 (anyone on the host is root through it) and on disk at close."""

    async def site(self, runner, url, daemon):
        site = await super().site(runner, url, daemon)
        os.chmod(self.paths[-1][0], 0o666)
        return site

    async def close(self):
        self.paths.clear()


def unix_suite() -> TransportSuite:
    suite = TransportSuite()
    suite.socket_file = True
    return suite


@pytest.mark.privileged  # the unix transport chowns its socket to root
@pytest.mark.parametrize("driver,fails", [(UnixTransport, False), (WorldWritableUnix, True)])
def test_transport_suite_fails_a_world_writable_socket_left_behind(tmp_path, driver, fails):
    factory = lambda: driver({}, tmp_path / "root", tmp_path / "state")  # noqa: E731
    url, config = f"unix://{tmp_path}/api.sock", DaemonConfig(group="0")
    for test in (unix_suite().test_socket_file_permissions, unix_suite().test_close_stops_listening_and_cleans_up):
        if fails:
            with pytest.raises(AssertionError):
                test(factory, url, config)
            Path(tmp_path, "api.sock").unlink(missing_ok=True)
        else:
            test(factory, url, config)


# -- network ----------------------------------------------------------------------------------

class FragileNull(NullDriver):
    """Deletes only what it remembers creating: a record from before a crash is an error."""

    def __init__(self, *a):
        super().__init__(*a)
        self.made = set()

    def create(self, net):
        self.made.add(net.id)

    def delete(self, net):
        if net.id not in self.made:
            raise NotFound(f"network {net.id} not found")
        self.made.discard(net.id)


def network_suite() -> NetworkDriverSuite:
    suite = NetworkDriverSuite()
    suite.wires, suite._n, suite._nets, suite._eps, suite._host_links = False, 0, [], [], links()
    return suite


@pytest.mark.parametrize("driver,fails", [(NullDriver, False), (FragileNull, True)])
def test_network_suite_fails_a_driver_whose_delete_of_an_unknown_id_fails(tmp_path, driver, fails):
    drv = driver({}, tmp_path / "root", tmp_path / "state")
    test = network_suite().test_delete_of_a_network_never_created_is_fine
    if fails:
        with pytest.raises(NotFound):
            test(drv)
    else:
        test(drv)


# -- runtime ----------------------------------------------------------------------------------

class LeakyStartFake(FakeRuntime):
    """A start that fails leaves its state dir: the daemon would list a container that never ran."""

    async def start(self, spec):
        try:
            return await super().start(spec)
        except Exception:
            self._dir(spec.id).mkdir(parents=True, exist_ok=True)
            raise


@pytest.mark.parametrize("driver,fails", [(FakeRuntime, False), (LeakyStartFake, True)])
def test_runtime_suite_fails_a_runtime_whose_failed_start_leaves_state(tmp_path, driver, fails):
    suite = RuntimeDriverSuite()
    suite.kernel, suite._ids = False, []
    suite._factory = lambda: driver({}, tmp_path / "root", tmp_path / "state")
    drv = suite._factory()
    test = suite.test_start_errors_leave_nothing
    if fails:
        with pytest.raises(AssertionError):
            test(drv, tmp_path, ["no-such-command"], 127)
    else:
        test(drv, tmp_path, ["no-such-command"], 127)


@pytest.mark.parametrize("kind", ["network", "runtime", "transport", "volume", "storage", "cgroups"])
def test_suites_get_pytests_assert_rewriting(kind):
    """The pytest11 plugin registers the suites for rewriting: a failure shows its values."""
    import importlib

    module = importlib.import_module(f"dockyard.testing.conformance_{kind}")
    assert type(module.__loader__).__name__ == "AssertionRewritingHook"


def test_plugin_docs_name_every_group_and_suite():
    """docs/plugins.md covers every entry-point group, every capability and every suite."""
    from dockyard.drivers import contracts
    from dockyard.plugins import GROUPS

    text = (Path(__file__).parents[2] / "docs" / "plugins.md").read_text()
    for group in [*GROUPS.values(), "dockyard.logging"]:
        assert f"`{group}`" in text, group
    for suite in sorted(Path(__file__).parents[2].glob("core/testing/conformance_*.py")):
        assert suite.stem in text, suite.stem
    for kind, contract in contracts.CONTRACTS.items():
        for cap in contract.capabilities:
            assert f"`{cap}`" in text, (kind, cap)
