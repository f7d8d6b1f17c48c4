"""The bridge driver's firewall: one nftables table per daemon instance, rebuilt whole.

The table is a pure function of the networks (:func:`render`), replaced in one transaction
(``add table; delete table; table {...}``), so create, delete and reconcile all end with
exactly the rules the records call for: nothing stale, nothing missing.

* ``postrouting`` (nat): masquerade what leaves a network's subnet through another
  interface, unless the network is ``Internal`` or its masquerade option is off.
* ``prerouting`` (filter, raw priority): nothing to or from 127/8 arrives from a bridge. The
  bridges have ``route_localnet`` (published ports DNAT loopback traffic to containers,
  ports.py), which would otherwise let a container reach the host's loopback services.
* ``forward`` (filter): per network, replies and DNAT'd traffic (published ports) in,
  traffic inside the bridge, no traffic between networks (isolation), nothing in or out of
  an ``Internal`` network, everything else out, nothing else in. The policy stays ``accept``
  so the host's other forwarding is not touched.

nftables base chains of *every* table see a packet, and a drop in any of them wins: on
hosts where the iptables ``filter FORWARD`` policy is DROP (hosts running Docker) our
accepts are not enough. :class:`ForwardAccepts` then adds ``-i BR -j ACCEPT`` and
``-o BR -j ACCEPT`` to that chain (tagged with a comment naming our table) and removes
them again with the network; isolation still holds because our table drops first.

Published ports (the ports engineer's part) keep their rules in a table of their own: this
table is replaced whole on every change.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass

from dockyard.nftables import Nft

log = logging.getLogger("dockyard.net_bridge.firewall")


@dataclass(frozen=True)
class NetRules:
    bridge: str
    subnet: str
    internal: bool
    masquerade: bool
    subnet6: str = ""  # the network's IPv6 subnet, if it has IPv6


def _q(name: str) -> str:
    return json.dumps(name)  # a quoted nft string


def render(table: str, nets: list[NetRules], family: str = "ip") -> str:
    """The ``ip`` table (every network), or with ``family`` ``ip6`` the same for the networks
    with IPv6: the same isolation (the forward rules only name interfaces), NAT66 masquerade
    of their IPv6 subnet, and ``::1`` never arriving from a bridge."""
    if family == "ip6":
        nets = [n for n in nets if n.subnet6]
    forward: list[str] = []
    nat: list[str] = []
    raw: list[str] = []
    bridges = [n.bridge for n in nets]
    for n in nets:
        b = _q(n.bridge)
        if family == "ip6":
            raw += [f"iifname {b} ip6 daddr ::1 drop", f"iifname {b} ip6 saddr ::1 drop"]
        else:
            raw += [f"iifname {b} ip daddr 127.0.0.0/8 drop", f"iifname {b} ip saddr 127.0.0.0/8 drop"]
        others = [_q(o) for o in bridges if o != n.bridge]
        forward.append(f"oifname {b} ct state established,related accept")
        if not n.internal:
            forward.append(f"oifname {b} ct status dnat accept")
        forward.append(f"iifname {b} oifname {b} accept")
        if n.internal:
            forward.append(f"iifname {b} drop")
        else:
            if others:
                forward.append(f"iifname {b} oifname {{ {', '.join(others)} }} drop")
            forward.append(f"iifname {b} accept")
        forward.append(f"oifname {b} drop")
        if not n.internal and n.masquerade:
            if family == "ip6":
                nat.append(f"ip6 saddr {n.subnet6} oifname != {b} masquerade")
            else:
                nat.append(f"ip saddr {n.subnet} oifname != {b} masquerade")
    body = "\n".join(
        [f"table {family} {table} {{",
         "  chain prerouting {", "    type filter hook prerouting priority raw; policy accept;",
         *[f"    {r}" for r in raw], "  }",
         "  chain forward {", "    type filter hook forward priority filter; policy accept;",
         *[f"    {r}" for r in forward], "  }",
         "  chain postrouting {", "    type nat hook postrouting priority srcnat; policy accept;",
         *[f"    {r}" for r in nat], "  }",
         "}"])
    return body


def apply(nft: Nft, table: str, nets: list[NetRules]) -> None:
    """Replace the table with exactly the rules for ``nets`` (one transaction)."""
    script = f"add table ip {table}\ndelete table ip {table}\n{render(table, nets)}\n"
    script += f"add table ip6 {table}\ndelete table ip6 {table}\n"
    if any(n.subnet6 for n in nets):  # IPv6 networks: the same rules in an ip6 table, same transaction
        script += render(table, nets, "ip6") + "\n"
    nft.run(script)


def remove(nft: Nft, table: str) -> None:
    nft.run(f"add table ip {table}\ndelete table ip {table}\nadd table ip6 {table}\ndelete table ip6 {table}\n")


def listed(nft: Nft, table: str) -> str | None:
    """The table as nft lists it, None if it does not exist."""
    return nft.try_run(f"list table ip {table}")


class ForwardAccepts:
    """ACCEPT rules for our bridges in the iptables ``filter FORWARD`` chain, added only while
    that chain's policy is DROP, and removed with their network."""

    def __init__(self, nft: Nft, table: str, family: str = "ip") -> None:
        self.nft = nft
        self.tag = f"dockyard:{table}"
        self.family = family  # "ip6": ip6tables' FORWARD chain, for the bridges of IPv6 networks
        self.command = "ip6tables" if family == "ip6" else "iptables"
        self.maybe_present = True  # unknown until the first sync: an earlier run may have added some

    def needed(self) -> bool:
        out = self.nft.try_run(f"list chain {self.family} filter FORWARD")
        return out is not None and "policy drop" in out

    def _iptables(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.command, "-w", *args], capture_output=True, text=True)

    def current(self) -> list[list[str]]:
        """Our rules as ``iptables -S`` argument lists (without ``-A FORWARD``)."""
        if shutil.which(self.command) is None:
            return []
        proc = self._iptables("-S", "FORWARD")
        rules = []
        for line in proc.stdout.splitlines():
            if self.tag in line and line.startswith("-A FORWARD "):
                import shlex

                rules.append(shlex.split(line)[2:])
        return rules

    @staticmethod
    def wanted_for(bridge: str, tag: str) -> list[list[str]]:
        return [[flag, bridge, "-m", "comment", "--comment", tag, "-j", "ACCEPT"] for flag in ("-i", "-o")]

    def sync(self, bridges: list[str]) -> None:
        """Exactly one pair of accepts per bridge in ``bridges`` when needed; none otherwise."""
        needed = bool(bridges) and self.needed()
        if not needed and not self.maybe_present:
            return  # the common case on hosts without a DROP policy: no iptables call at all
        have = self.current()
        want: list[list[str]] = []
        if needed:
            if shutil.which(self.command) is None:
                log.warning("the %s FORWARD policy is DROP and %s is missing: "
                            "containers may not reach the outside", self.command, self.command)
                return
            for b in bridges:
                want += self.wanted_for(b, self.tag)
        for rule in have:
            if rule not in want:
                self._iptables("-D", "FORWARD", *rule)
        self.maybe_present = bool(want)
        for rule in want:
            if rule not in have:
                proc = self._iptables("-I", "FORWARD", "1", *rule)
                if proc.returncode != 0:
                    log.warning("%s -I FORWARD %s failed: %s", self.command, " ".join(rule), proc.stderr.strip())
