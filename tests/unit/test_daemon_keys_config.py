"""dockerd keys in the config loader: values checked at start, with the key in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard import config as cfg
from dockyard.errors import ConfigError


def _load(tmp_path: Path, text: str) -> cfg.DaemonConfig:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return cfg.build({}, path)


def test_values(tmp_path: Path) -> None:
    c = _load(tmp_path, 'bip = "10.9.8.7/16"\ndns = ["1.1.1.1", "2606:4700::1111"]\ndns-search = ["a.test"]\n'
                        'dns-opts = ["ndots:2"]\ndefault-shm-size = "1g"\n'
                        'default-ulimits = {nproc = {Soft = 100, Hard = 200}}\n')
    assert c.bip == "10.9.8.7/16" and c.dns == ("1.1.1.1", "2606:4700::1111")
    assert c.dns_search == ("a.test",) and c.dns_opts == ("ndots:2",)
    assert c.default_shm_size == 1 << 30 and c.default_ulimits == {"nproc": (100, 200)}
    flags = cfg.build({"default_ulimits": ("nofile=10:20", "core=0"), "dns": ("9.9.9.9",)})
    assert flags.default_ulimits == {"nofile": (10, 20), "core": (0, 0)} and flags.dns == ("9.9.9.9",)


@pytest.mark.parametrize("text,message", [
    ('bip = "10.0.0.0/24"', "bip: 10.0.0.0 is the network or broadcast address"),
    ('bip = "10.0.0.1"', "bip: '10.0.0.1' is not an IPv4 address with a prefix"),
    ('bip = "fd00::1/64"', "not an IPv4 address"),
    ('dns = ["resolver.example"]', "dns: 'resolver.example' is not an IP address"),
    ('dns-search = ["a b"]', "dns-search: expected a list of strings without spaces"),
    ('default-shm-size = "lots"', "invalid size"),
    ('default-ulimits = {nofile = {Soft = 10, Hard = 5}}', "default-ulimits.nofile: ulimit soft limit"),
    ('default-ulimits = {bogus = {Soft = 1, Hard = 1}}', "default-ulimits.bogus: invalid ulimit type"),
    ('userland-proxy = false', "userland-proxy: false is not supported: published ports"),
    ('icc = false', "icc: false is not supported: blocking traffic"),
    ('ip-forward = false', "ip-forward: false is not supported"),
    ('iptables = false', "iptables: false is not supported"),
    ('icc = "no"', "icc: expected true or false"),
])
def test_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        _load(tmp_path, text + "\n")
