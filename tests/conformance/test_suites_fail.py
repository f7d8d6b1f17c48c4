"""Each conformance suite can fail: a deliberately broken driver fails the test that guards
the broken behaviour (the suites' test methods are called directly, outside pytest's
collection, with the objects their fixtures would give)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

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
