"""Which plugin module the daemon imports is decided by entry-point discovery
(dockyard.entrypoints, issue 18): with the same project installed twice on ``sys.path`` (an
old egg and a new dist-info, or a ``.DIST-INFO`` directory), it must pick the same
distribution importlib.metadata (and stevedore before it) picks, not load the shadowed one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def _dist(directory: Path, name: str, value: str, pkg_info: bool = False) -> None:
    directory.mkdir(parents=True)
    (directory / ("PKG-INFO" if pkg_info else "METADATA")).write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n\n")
    (directory / "entry_points.txt").write_text(f"[dockyard.redteam]\n{value}\n")


def test_shadowed_duplicate_distributions_are_skipped_as_importlib_metadata_does(tmp_path: Path) -> None:
    # an egg of a dotted project name first on the path, the same project as a wheel later
    egg = tmp_path / "p1" / "Dy.Plugin-1.0-py3.11.egg"
    _dist(egg / "EGG-INFO", "Dy.Plugin", "authz = first_mod:Hooks", pkg_info=True)
    _dist(tmp_path / "p2" / "dy_plugin-2.0.dist-info", "dy-plugin", "authz = second_mod:Hooks")
    # a metadata directory whose suffix is not lower case, then the project it names
    _dist(tmp_path / "p3" / "Other-1.0.DIST-INFO", "dy-other", "other = third_mod:Hooks")
    _dist(tmp_path / "p4" / "dy_other-1.0.dist-info", "dy-other", "other = fourth_mod:Hooks")
    roots = [str(egg), str(tmp_path / "p2"), str(tmp_path / "p3"), str(tmp_path / "p4")]
    code = f"""
import json, sys
sys.path[:0] = {roots!r}
from importlib import metadata
from dockyard import entrypoints
print(json.dumps({{
    "ours": [[e.name, e.value] for e in entrypoints.entry_points("dockyard.redteam")],
    "theirs": [[e.name, e.value] for e in metadata.entry_points(group="dockyard.redteam")],
}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                    text=True).stdout)
    assert out["theirs"] == [["authz", "first_mod:Hooks"], ["other", "third_mod:Hooks"]]
    assert out["ours"] == out["theirs"]
