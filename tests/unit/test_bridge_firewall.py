"""The bridge driver's firewall without root: the ip6 table of IPv6 networks (firewall.render) and
the FORWARD accepts (firewall.ForwardAccepts): which command runs for which family (ip6tables for
the bridges of IPv6 networks), only while the chain's policy is DROP. subprocess and nftables are faked."""

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


def test_ip6_table_mirrors_the_ip_one_for_ipv6_networks():
    nets = [firewall.NetRules("dy-a", "10.1.0.0/24", False, True, "fd00:a::/64"),
            firewall.NetRules("dy-i", "10.2.0.0/24", True, True, "fd00:b::/64"),
            firewall.NetRules("dy-4", "10.3.0.0/24", False, True)]
    text = firewall.render("t", nets, "ip6")
    assert text.startswith("table ip6 t {")
    assert 'ip6 saddr fd00:a::/64 oifname != "dy-a" masquerade' in text
    assert "fd00:b::/64" not in text  # internal: no NAT66
    assert '"dy-4"' not in text  # an IPv4-only network has no IPv6 rules
    assert 'iifname "dy-a" oifname { "dy-i" } drop' in text and 'iifname "dy-i" drop' in text  # isolation
    assert 'iifname "dy-a" ip6 daddr ::1 drop' in text
    v4 = firewall.render("t", nets)
    assert "ip6" not in v4 and 'ip saddr 10.3.0.0/24 oifname != "dy-4" masquerade' in v4
