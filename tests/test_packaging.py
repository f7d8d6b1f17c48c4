"""Every distribution in the repository builds as a wheel with its entry points.

CI installs the core distribution editable and the plugins from their directories (non-editable),
so both install modes run on every change; this checks the wheels themselves.
"""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
DISTRIBUTIONS = {
    ".": ("dockyard", {"dockyard.transports": {"unix", "tcp"}, "dockyard.hooks": {"builtin_errors"},
                       "console_scripts": {"dockyard", "dockyardd"}}),
    "plugins/cgroups": ("dockyard_cgroups", {"dockyard.cgroups": {"v1", "v2", "auto"}}),
    "plugins/storage_overlay": ("dockyard_storage_overlay", {"dockyard.storage": {"overlay", "vfs"}}),
    "tests/example_plugin": ("dockyard_example_audit", {"dockyard.hooks": {"example_audit"}}),
}


def entry_points(text: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    group = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1]
        elif "=" in line and group:
            out.setdefault(group, set()).add(line.split("=", 1)[0].strip())
    return out


@pytest.mark.parametrize("path", sorted(DISTRIBUTIONS))
def test_wheel_builds_with_entry_points(path, tmp_path):
    package, expected = DISTRIBUTIONS[path]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path), str(ROOT / path)], check=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (ep_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        eps = entry_points(z.read(ep_name).decode())
    assert any(n.startswith(f"{package}/__init__.py") for n in names), names[:10]
    for group, wanted in expected.items():
        assert wanted <= eps.get(group, set()), (group, eps)
    if package == "dockyard":
        assert "dockyard/runtime/shim.c" in names  # the native runtime builds its shim from it
        assert "dockyard_cli/main.py" in names
        for init in (ROOT / "core").rglob("__init__.py"):  # no subpackage forgotten in pyproject
            assert f"dockyard/{init.relative_to(ROOT / 'core')}" in names
