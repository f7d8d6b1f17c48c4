"""The FORWARD accepts of the bridge driver (firewall.ForwardAccepts) without root: which command
runs for which family (ip6tables for the bridges of IPv6 networks), only while the chain's
policy is DROP. subprocess and nftables are faked."""

from __future__ import annotations

import subprocess

from dockyard_net_bridge import firewall


class FakeNft:
    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.asked: list[str] = []

    def try_run(self, text: str) -> str:
        self.asked.append(text)
        return f"table {text.split()[2]} filter {{ chain FORWARD {{ type filter hook forward priority filter; policy {self.policy}; }} }}"


def test_ip6_accepts_use_ip6tables_while_the_ipv6_forward_policy_is_drop(monkeypatch):
    calls: list[list[str]] = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="-P FORWARD DROP\n", stderr="")

    monkeypatch.setattr(firewall.subprocess, "run", run)
    monkeypatch.setattr(firewall.shutil, "which", lambda name: f"/usr/sbin/{name}")
    nft = FakeNft("drop")
    acc = firewall.ForwardAccepts(nft, "dockyard_t", "ip6")
    acc.sync(["dy-v6"])
    assert nft.asked == ["list chain ip6 filter FORWARD"]
    inserted = [c for c in calls if "-I" in c]
    assert {c[0] for c in calls} == {"ip6tables"}
    assert ["ip6tables", "-w", "-I", "FORWARD", "1", "-i", "dy-v6", "-m", "comment", "--comment",
            "dockyard:dockyard_t", "-j", "ACCEPT"] in inserted and len(inserted) == 2
    # a policy ACCEPT needs none (and removes what an earlier run left)
    calls.clear()
    acc = firewall.ForwardAccepts(FakeNft("accept"), "dockyard_t", "ip6")
    acc.sync(["dy-v6"])
    assert not [c for c in calls if "-I" in c]
