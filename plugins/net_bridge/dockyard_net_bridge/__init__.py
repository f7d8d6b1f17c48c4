"""Dockyard's bridge network driver: a Linux bridge per network, a veth pair per endpoint,
and the engine's firewall rules in an nftables table of its own."""
