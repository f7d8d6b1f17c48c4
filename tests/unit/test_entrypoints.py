"""dockyard.entrypoints finds what importlib.metadata finds (issue 18: the daemon no longer
imports importlib.metadata and stevedore, 1.0 MB of its idle memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from dockyard import entrypoints
from dockyard.plugins import GROUPS, _distribution_of, _load, entry_point_names


def groups() -> set[str]:
    return {ep.group for dist in metadata.distributions() for ep in dist.entry_points}


def test_every_group_of_this_environment_matches_importlib_metadata() -> None:
    seen = groups()
    assert set(GROUPS.values()) <= seen | {"dockyard.volume"}
    for group in sorted(seen):
        theirs = [(ep.name, ep.value, ep.group, ep.dist.metadata["Name"], ep.dist.version)
                  for ep in metadata.entry_points(group=group)]
        ours = [(ep.name, ep.value, ep.group, *entrypoints.distribution_of(ep))
                for ep in entrypoints.entry_points(group)]
        assert ours == theirs, group


def test_names_load_and_distributions() -> None:
    assert "overlay" in entry_point_names(GROUPS["storage"])
    (ext,) = _load(GROUPS["storage"], ["overlay"])
    from dockyard_storage_overlay.overlay import OverlayDriver

    assert ext.name == "overlay" and ext.plugin is OverlayDriver
    assert _distribution_of(GROUPS["storage"], "overlay") == (
        "dockyard-storage-overlay", metadata.version("dockyard-storage-overlay"))
    assert [e.name for e in _load(GROUPS["storage"], ["vfs", "overlay"])] == ["vfs", "overlay"]  # names' order


def test_a_distribution_added_to_the_path_is_found(tmp_path: Path) -> None:
    # a third-party plugin: a dist-info with entry points (and a shadowed copy later on the path)
    for root, value in ((tmp_path / "a", "mod_a:Thing"), (tmp_path / "b", "mod_b:Other")):
        info = root / "dy_third_party-1.2.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: dy-third-party\nVersion: 1.2\n\nbody: x\n")
        (info / "entry_points.txt").write_text(f"# comment\n[dockyard.volume]\nthird = {value}\n\n[other]\nx = y\n")
    (tmp_path / "a" / "mod_a.py").write_text("class Thing:\n    pass\n")
    code = f"""
import json, sys
sys.path[:0] = [{str(tmp_path / 'a')!r}, {str(tmp_path / 'b')!r}]
from importlib import metadata
from dockyard import entrypoints
ours = entrypoints.entry_points("dockyard.volume", "third")
theirs = metadata.entry_points(group="dockyard.volume", name="third")
print(json.dumps({{"ours": [[e.value, *entrypoints.distribution_of(e)] for e in ours],
                  "theirs": [[e.value, e.dist.metadata["Name"], e.dist.version] for e in theirs],
                  "loaded": ours[0].load().__name__}}))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ours"] == out["theirs"] == [["mod_a:Thing", "dy-third-party", "1.2"]]
    assert out["loaded"] == "Thing"


def test_a_failing_plugin_is_a_plugin_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.errors import PluginError

    info = tmp_path / "dy_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Name: dy-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[dockyard.hooks]\nbroken = dy_no_such_module_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin 'broken' .dockyard.hooks. failed to load"):
        _load(GROUPS["hooks"], ["broken"])


def test_other_sources_of_distributions_are_left_to_importlib_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    class Finder:
        def find_spec(self, *args: object) -> None:
            return None

        def find_distributions(self, *args: object) -> list:
            return []

    assert not entrypoints._needs_importlib_metadata()
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert entrypoints._needs_importlib_metadata()
    assert [ep.name for ep in entrypoints.entry_points(GROUPS["storage"])] == \
        [ep.name for ep in metadata.entry_points(group=GROUPS["storage"])]
