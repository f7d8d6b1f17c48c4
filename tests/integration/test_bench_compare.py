"""bench/compare.sh (issue 18's table) in its smallest form, Dockyard's side only: every row of
the table is produced and nothing of the run is left behind. No timing is judged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def test_compare_tiny_pass_fills_every_row():
    from compare import ROWS  # bench/compare.py

    before = {p.name for p in Path("/tmp").glob("dycmp.*")}
    r = subprocess.run(["bash", str(ROOT / "bench" / "compare.sh"), "--tiny", "--engines", "dockyard"],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, "PYTHON": sys.executable})
    assert r.returncode == 0, r.stderr[-3000:]
    table = [line for line in r.stdout.splitlines() if line.startswith("| ")]
    for key, label, *_ in ROWS:
        rows = [line for line in table if line.startswith(f"| {label}")]
        assert len(rows) == 1, (key, table)
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert cells[2] not in ("", "-"), (key, rows[0])  # Dockyard's median
    # the work dir, its mounts (exec root tmpfs, rootfs, netns) and cgroups are gone
    assert {p.name for p in Path("/tmp").glob("dycmp.*")} == before
    assert "dycmp" not in Path("/proc/self/mountinfo").read_text()
    assert not list(Path("/sys/fs/cgroup").glob("*/dycmp-*"))
