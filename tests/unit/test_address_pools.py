"""dockerd's ``default-address-pools``: config parsing and the subnets networks get from it."""

from __future__ import annotations

import ipaddress

import pytest

from dockyard import config as cfg
from dockyard.networks import ipam


def test_config_file_pools(tmp_path):
    p = tmp_path / "d.toml"
    p.write_text('default-address-pools = [{base = "10.213.0.0/16", size = 24}, {base = "10.214.0.0/20", size = 26}]\n')
    c = cfg.build({}, p)
    assert c.default_address_pools == (("10.213.0.0/16", 24), ("10.214.0.0/20", 26))
    assert cfg.build({}).default_address_pools == ()


@pytest.mark.parametrize("text", ['default-address-pools = [{base = "10.0.0.0/16", size = 8}]',
                                  'default-address-pools = [{base = "nope", size = 24}]',
                                  'default-address-pools = [{base = "10.0.0.0/16"}]',
                                  'default-address-pools = "10.0.0.0/16"'])
def test_bad_pools_are_config_errors(tmp_path, text):
    p = tmp_path / "d.toml"
    p.write_text(text + "\n")
    with pytest.raises(cfg.ConfigError):
        cfg.build({}, p)


def test_networks_come_from_the_configured_pool(monkeypatch):
    monkeypatch.setattr(ipam, "host_routes", lambda: [ipaddress.ip_network("10.213.0.0/24")])
    pools = (("10.213.0.0/16", 24),)
    first = ipam.pick_subnet([], 0, pools)
    assert first == ipaddress.ip_network("10.213.1.0/24")  # .0/24 is a host route
    second = ipam.pick_subnet([first], 0, pools)
    assert second == ipaddress.ip_network("10.213.2.0/24")
    # without the setting: Docker's default pools
    assert ipam.pick_subnet([], 0).subnet_of(ipaddress.ip_network("172.16.0.0/12")) or \
        ipam.pick_subnet([], 0).subnet_of(ipaddress.ip_network("192.168.0.0/16"))
