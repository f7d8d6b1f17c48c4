"""The bridge driver against the real kernel, each scenario in a private network and mount
namespace (see scenarios.py), plus the firewall renderer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard_net_bridge import firewall

HERE = Path(__file__).parent


def run_scenario(name: str, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    r = subprocess.run(["unshare", "--net", "--mount", sys.executable, str(HERE / "scenarios.py"), name, str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


@pytest.mark.privileged
@pytest.mark.parametrize("name", ["wiring_isolation_and_teardown", "reconcile_restores_rules_and_removes_stale",
                                  "forward_policy_drop", "bad_options_leave_nothing"])
def test_scenario(name, tmp_path):
    run_scenario(name, tmp_path)


def test_render_isolates_networks_and_skips_nat_for_internal():
    text = firewall.render("dockyard_x", [
        firewall.NetRules("br-a", "10.1.0.0/24", internal=False, masquerade=True),
        firewall.NetRules("br-b", "10.2.0.0/24", internal=True, masquerade=True),
        firewall.NetRules("br-c", "10.3.0.0/24", internal=False, masquerade=False),
    ])
    assert 'iifname "br-a" oifname { "br-b", "br-c" } drop' in text
    assert 'iifname "br-b" drop' in text
    assert "ip saddr 10.1.0.0/24 oifname != \"br-a\" masquerade" in text
    assert "10.2.0.0/24" not in text and "10.3.0.0/24" not in text
    assert text.index('oifname "br-a" ct state established,related accept') < text.index('oifname "br-a" drop')
