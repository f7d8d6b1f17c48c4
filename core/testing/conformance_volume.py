"""VolumeDriverSuite: behavioural tests every volume driver (``dockyard.volume``) runs.

Subclass it in a test module and provide a fixture ``volume_driver_factory``: a callable
that returns a *new* driver instance over the same directories each time it is called (the
suite calls it again to play a daemon restart). The driver's data directory must be its
``root`` attribute (``Path``): the suite checks that nothing escapes it and that no mount is
left under it.

Class attributes tune the suite to a driver:

* ``options``: driver options of an ordinary volume (default none).
* ``mounting_options``: options that make :meth:`mount` do real work (a device or tmpfs
  mounted on first use, unmounted by the last user), or ``None``; the tests that use them
  carry ``@pytest.mark.privileged``.
* ``bad_options``: option sets :meth:`create` must refuse with ``InvalidArgument``.

Example::

    class TestMyDriver(VolumeDriverSuite):
        @pytest.fixture
        def volume_driver_factory(self, tmp_path):
            return lambda: MyDriver({}, tmp_path / "root", tmp_path / "state")
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import pytest

from dockyard.drivers import contracts
from dockyard.errors import InvalidArgument, NotFound

from .conformance_storage import mounts_under

# names a driver must refuse (InvalidArgument) or keep inside its root whatever it does
HOSTILE_NAMES = ["..", ".", "../{outside}", "a/../../{outside}", "/{outside_abs}", "x/../../../{outside}",
                 "a/b", "", "{outside}/../../{outside}"]


def _inside(path: str | Path, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


class VolumeDriverSuite:
    options: ClassVar[dict[str, str]] = {}
    mounting_options: ClassVar[dict[str, str] | None] = None
    bad_options: ClassVar[list[dict[str, str]]] = [{"no-such-option-for-any-driver": "1"}]

    # -- fixtures ------------------------------------------------------------------------------
    @pytest.fixture
    def drv(self, volume_driver_factory: Callable[[], Any]) -> Iterator[Any]:
        driver = volume_driver_factory()
        self._made: list[str] = []
        self._closed = False
        yield driver
        if self._closed:  # the test played a restart: clean up through a new instance
            driver = volume_driver_factory()
        for name in self._made:
            driver.remove(name)
        driver.close()
        assert mounts_under(driver.root) == [], "a mount was left under the driver's root"

    def new(self, drv: Any, options: dict[str, str] | None = None) -> str:
        """Create a volume with a fresh name (removed after the test)."""
        name = f"v{secrets.token_hex(6)}"
        self._made.append(name)
        drv.create(name, dict(self.options if options is None else options))
        return name

    @pytest.fixture
    def outside(self, drv: Any) -> Iterator[Path]:
        """A directory beside the driver's root, with a marker file, that hostile names aim at."""
        out = Path(drv.root).resolve().parent / f"outside-{secrets.token_hex(4)}"
        out.mkdir()
        (out / "keep").write_text("keep")
        yield out
        shutil.rmtree(out, ignore_errors=True)

    # -- the contract ----------------------------------------------------------------------------
    def test_contract(self, drv):
        """The VolumeDriver Protocol's methods are there (the daemon's load-time check)."""
        contracts.check("volume", drv.name, drv)
        assert drv.name and drv.scope in ("local", "global")

    # -- create, mount, remove ---------------------------------------------------------------
    def test_create_mount_write_and_read_back(self, drv):
        name = self.new(drv)
        where = drv.mount(name, "c1")
        assert os.path.isabs(where) and os.path.isdir(where)
        assert _inside(where, drv.root) or os.path.isdir(drv.path(name))
        Path(where, "hello").write_text("world")
        assert os.path.isabs(drv.path(name))
        drv.unmount(name, "c1")
        again = drv.mount(name, "c2")  # the data outlives the user
        assert Path(again, "hello").read_text() == "world"
        drv.unmount(name, "c2")

    def test_volumes_are_separate(self, drv):
        a, b = self.new(drv), self.new(drv)
        pa, pb = drv.mount(a, "c"), drv.mount(b, "c")
        assert os.path.realpath(pa) != os.path.realpath(pb)
        Path(pa, "only-in-a").write_text("a")
        assert not Path(pb, "only-in-a").exists()
        drv.unmount(a, "c")
        drv.unmount(b, "c")

    def test_mount_is_counted_per_ref(self, drv):
        name = self.new(drv)
        first = drv.mount(name, "c1")
        assert drv.mount(name, "c1") == first  # the same ref again: idempotent
        assert drv.mount(name, "c2") == first
        drv.unmount(name, "c1")
        Path(first, "still").write_text("usable")  # c2 still uses it
        drv.unmount(name, "c2")
        drv.unmount(name, "c2")  # unknown refs are fine
        drv.unmount(name, "never-mounted")

    def test_remove_deletes_the_data_and_is_idempotent(self, drv):
        name = self.new(drv)
        where = drv.mount(name, "c")
        Path(where, "f").write_text("x")
        drv.unmount(name, "c")
        drv.remove(name)
        drv.remove(name)  # missing is fine
        drv.remove(f"never-{secrets.token_hex(4)}")
        assert not os.path.exists(os.path.join(where, "f"))
        with pytest.raises(NotFound):
            drv.mount(name, "c")
        if contracts.record("volume", drv).has("list"):
            assert name not in drv.list()

    def test_mount_of_unknown_volume_is_not_found(self, drv):
        with pytest.raises(NotFound):
            drv.mount(f"nope{secrets.token_hex(4)}", "c")

    def test_refused_options_leave_nothing(self, drv):
        before = sorted(os.listdir(drv.root)) if os.path.isdir(drv.root) else []
        for options in self.bad_options:
            name = f"bad{secrets.token_hex(4)}"
            with pytest.raises(InvalidArgument):
                drv.create(name, dict(options))
            with pytest.raises(NotFound):
                drv.mount(name, "c")
            if contracts.record("volume", drv).has("list"):
                assert name not in drv.list()
        after = sorted(os.listdir(drv.root)) if os.path.isdir(drv.root) else []
        assert after == before

    def test_list_shows_created_volumes(self, drv):
        if not contracts.record("volume", drv).has("list"):
            pytest.skip("the driver has no list capability")
        a, b = self.new(drv), self.new(drv)
        assert {a, b} <= set(drv.list())
        drv.remove(a)
        assert a not in drv.list() and b in drv.list()

    def test_status_and_size(self, drv):
        name = self.new(drv)
        where = drv.mount(name, "c")
        Path(where, "data").write_bytes(b"x" * 4096)
        status = drv.status(name)
        assert status is None or isinstance(status, dict)
        size = drv.size(name)
        assert size == -1 or size >= 4096
        drv.unmount(name, "c")

    def test_data_survives_a_daemon_restart(self, drv, volume_driver_factory):
        name = self.new(drv)
        Path(drv.mount(name, "c"), "kept").write_text("kept")
        drv.unmount(name, "c")
        drv.close()
        self._closed = True
        again = volume_driver_factory()
        try:
            assert Path(again.mount(name, "c2"), "kept").read_text() == "kept"
            again.unmount(name, "c2")
        finally:
            again.close()

    # -- hostile names -----------------------------------------------------------------------
    def _names(self, outside: Path) -> list[str]:
        return [n.format(outside=outside.name, outside_abs=str(outside).lstrip("/")) for n in HOSTILE_NAMES]

    def test_names_cannot_escape_the_root(self, drv, outside):
        """``create``/``mount``/``path``/``remove`` of ``../x``-like names are refused or stay
        inside the driver's root; what lies outside is never created, shown or deleted."""
        keep = sorted(os.listdir(outside))
        sibling = sorted(os.listdir(outside.parent))
        for name in self._names(outside):
            try:
                drv.create(name, dict(self.options))
            except (InvalidArgument, NotFound):
                pass
            else:
                self._made.append(name)
                where = drv.mount(name, "c")
                assert _inside(where, drv.root), f"volume {name!r} mounted from {where}, outside {drv.root}"
                drv.unmount(name, "c")
            try:
                shown = drv.path(name)
            except (InvalidArgument, NotFound):
                pass
            else:
                assert _inside(shown, drv.root), f"volume {name!r} has its Mountpoint {shown} outside {drv.root}"
            try:
                where = drv.mount(name, "c")
            except (InvalidArgument, NotFound):
                pass
            else:
                drv.unmount(name, "c")
                assert _inside(where, drv.root), f"volume {name!r} mounted from {where}, outside {drv.root}"
            try:
                drv.remove(name)
            except (InvalidArgument, NotFound):
                pass
            assert sorted(os.listdir(outside)) == keep, f"{name!r} changed {outside}"
            assert sorted(os.listdir(outside.parent)) == sibling, f"{name!r} created beside the root"
        assert (outside / "keep").read_text() == "keep"
        assert os.path.isdir(drv.root), "a hostile name removed the driver's root"

    # -- drivers whose mount does real work --------------------------------------------------
    def _mounting(self, drv: Any) -> str:
        if self.mounting_options is None:
            pytest.skip("no options that make this driver mount")
        if os.geteuid() != 0:
            pytest.skip("mounting needs root")
        return self.new(drv, self.mounting_options)

    @pytest.mark.privileged
    def test_first_user_mounts_last_user_unmounts(self, drv):
        name = self._mounting(drv)
        assert mounts_under(drv.root) == []  # created, not yet used
        where = drv.mount(name, "c1")
        drv.mount(name, "c2")
        assert len(mounts_under(drv.root)) == 1
        Path(where, "f").write_text("on the device")
        drv.unmount(name, "c1")
        assert len(mounts_under(drv.root)) == 1 and Path(where, "f").exists()
        drv.unmount(name, "c2")
        assert mounts_under(drv.root) == []

    @pytest.mark.privileged
    def test_remove_of_a_mounted_volume_unmounts(self, drv):
        name = self._mounting(drv)
        drv.mount(name, "c1")
        assert mounts_under(drv.root) != []
        drv.remove(name)
        assert mounts_under(drv.root) == []
