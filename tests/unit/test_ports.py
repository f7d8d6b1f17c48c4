"""Published ports without sockets: docker's -p forms, the API's PortBindings, the shapes of
inspect/list/`docker port`, and the DNAT ruleset text."""

from __future__ import annotations

import click
import pytest

from dockyard.containers import ports
from dockyard.drivers.network import PortBinding
from dockyard.errors import InvalidArgument
from dockyard_cli import ports as cli_ports


@pytest.mark.parametrize("spec, exposed, bindings", [
    ("80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("8080:80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("127.0.0.1:8080:80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
    ("127.0.0.1::80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ("53/udp", {"53/udp": {}}, {"53/udp": [{"HostIp": "", "HostPort": ""}]}),
    ("5353:53/udp", {"53/udp": {}}, {"53/udp": [{"HostIp": "", "HostPort": "5353"}]}),
    ("8000-8001:80-81", {"80/tcp": {}, "81/tcp": {}},
     {"80/tcp": [{"HostIp": "", "HostPort": "8000"}], "81/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    ("8000-8010:80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    ("[::1]:8080:80", {"80/tcp": {}}, {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
])
def test_parse_publish(spec, exposed, bindings):
    assert cli_ports.parse_publish([spec]) == (exposed, bindings)


@pytest.mark.parametrize("spec", ["", "x", "1.2.3:80:80", "70000", "8000-8002:80-81", "a:b:c:d", "81-80"])
def test_parse_publish_rejects(spec):
    with pytest.raises(click.BadParameter):
        cli_ports.parse_publish([spec])


def test_parse_expose_and_apply():
    body = {"HostConfig": {}}
    cli_ports.apply(body, {"publish": ("8080:80",), "expose": ("90-91/udp",), "publish_all": True})
    assert body["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}, "91/udp": {}}
    assert body["HostConfig"] == {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                                  "PublishAllPorts": True}


def test_requested_bindings():
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}}
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostPort": "0"}],
                           "81": None, "7000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "7000-7005"}]},
          "PublishAllPorts": True}
    got = ports.requested(config, hc)
    assert got == [
        PortBinding(7000, "tcp", "", 7000, 7005),
        PortBinding(80, "tcp", "127.0.0.1", 8080),
        PortBinding(80, "tcp", "", 0),
        PortBinding(81, "tcp", "", 0),
        PortBinding(9000, "tcp", "", 0),
        PortBinding(53, "udp", "", 0),
    ]
    # without PublishAllPorts only the bindings
    assert len(ports.requested(config, {**hc, "PublishAllPorts": False})) == 4


@pytest.mark.parametrize("hc, message", [
    ({"PortBindings": {"80/sctp": []}}, "invalid proto"),
    ({"PortBindings": {"0/tcp": []}}, "containerPort"),
    ({"PortBindings": {"http": []}}, "containerPort"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}, "hostPort"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "9-8"}]}}, "hostPort range"),
    ({"PortBindings": {"80/tcp": [{"HostIp": "localhost"}]}}, "invalid IP address"),
    ({"PortBindings": {"80/tcp": [{"HostIp": "fe80::1::2"}]}}, "invalid IP address"),
    ({"PortBindings": {"80/tcp": "8080"}}, "must be a list"),
    ({"PortBindings": ["80/tcp"]}, "must be an object"),
    ({"PortBindings": {"80/tcp": []}, "NetworkMode": "container:abc"}, "conflicting options: port publishing"),
])
def test_bad_bindings_are_400(hc, message):
    with pytest.raises(InvalidArgument, match=message):
        ports.validate({}, hc)


def test_ipv6_host_addresses_are_published():
    hc = {"PortBindings": {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}], "81/tcp": [{"HostIp": "::"}]}}
    ports.validate({}, hc)
    got = {b.host_ip for b in ports.requested({}, hc)}
    assert got == {"::1", "::"}  # "::" stays: IPv6 only, unlike "" / 0.0.0.0 (both families)


def test_bad_exposed_ports_are_400():
    with pytest.raises(InvalidArgument):
        ports.validate({"ExposedPorts": {"eighty/tcp": {}}}, {})


def test_inspect_and_list_shapes():
    config = {"ExposedPorts": {"80/tcp": {}, "81/tcp": {}}}
    published = [PortBinding(80, "tcp", "", 32768), PortBinding(80, "tcp", "127.0.0.1", 8080)]
    got = ports.inspect_ports(config, {}, published)
    assert got == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}, {"HostIp": "127.0.0.1", "HostPort": "8080"}],
                   "81/tcp": None}
    assert ports.inspect_ports(config, {}, None) == {}
    assert ports.list_ports(got) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 32768, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 81, "Type": "tcp"},
    ]
    assert cli_ports.port_lines(got, None) == ["80/tcp -> 0.0.0.0:32768", "80/tcp -> 127.0.0.1:8080"]
    assert cli_ports.port_lines(got, "80") == ["0.0.0.0:32768", "127.0.0.1:8080"]
    with pytest.raises(click.ClickException, match="No public port '81/tcp'"):
        cli_ports.port_lines(got, "81/tcp")


def test_ruleset_text():
    from dockyard_net_bridge.ports import Published, ruleset

    text = ruleset("dy_ports", [Published("tcp", 80, "", 8080, "10.1.0.2"),
                                Published("udp", 53, "10.0.0.5", 5353, "10.1.0.3")], ["dyb*"])
    assert "tcp dport 8080 dnat to 10.1.0.2:80" in text
    assert "ip daddr 10.0.0.5 udp dport 5353 dnat to 10.1.0.3:53" in text
    assert 'iifname != "dyb*" fib daddr type local jump ports' in text
    assert "ip daddr != 127.0.0.0/8 fib daddr type local jump ports" in text
    assert "table ip6" not in text.replace("add table ip6", "").replace("delete table ip6", "")
    # nothing published: the batch only removes the tables (ip, and ip6 for IPv6 networks)
    assert ruleset("dy_ports", [], ["dyb*"]) == ("add table ip dy_ports\ndelete table ip dy_ports\n"
                                                 "add table ip6 dy_ports\ndelete table ip6 dy_ports\n")


def test_ruleset_ipv6_dnat_and_loopback_left_to_the_proxy():
    from dockyard_net_bridge.ports import Published, ruleset

    text = ruleset("dy_ports", [Published("tcp", 80, "", 8080, "10.1.0.2"),
                                Published("tcp", 80, "::", 8080, "fd00:db8:1::2"),
                                Published("tcp", 81, "::1", 8081, "fd00:db8:1::2"),
                                Published("tcp", 82, "::1", 8082, "10.1.0.2")], ["dyb*"])
    v4 = text.split("table ip dy_ports {", 1)[1].split("\n}", 1)[0]
    v6 = text.split("table ip6 dy_ports {", 1)[1].split("\n}", 1)[0]
    assert "tcp dport 8080 dnat to 10.1.0.2:80" in v4 and "8082" not in v4  # [::1] to IPv4: proxy only
    assert "tcp dport 8080 dnat to [fd00:db8:1::2]:80" in v6
    assert "ip6 daddr ::1 tcp dport 8081 dnat to [fd00:db8:1::2]:81" in v6
    assert "ip6 daddr != ::1 fib daddr type local jump ports" in v6  # ::1 is never DNATed: the proxy serves it


def test_run_flags_reach_the_create_body():
    from dockyard_cli import containers as C

    body = C.create_body("busybox", ["true"], {"publish": ("127.0.0.1::80", "53/udp"), "publish_all": True,
                                               "expose": ("90",)})
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "90/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
                                                  "53/udp": [{"HostIp": "", "HostPort": ""}]}
    assert body["HostConfig"]["PublishAllPorts"] is True


def test_network_alias_flag():
    from dockyard_cli import containers as C

    body = C.create_body("busybox", [], {"network": "front", "network_alias": ("web", "www")})
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"front": {"Aliases": ["web", "www"]}}}
    with pytest.raises(click.UsageError):
        C.create_body("busybox", [], {"network_alias": ("web",)})


def test_publish_and_expose_filters():
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}
    running = {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "53/udp": None}}
    assert ports.matches({"publish": ["80"]}, config, {}, running)
    assert ports.matches({"publish": ["79-81/tcp"]}, config, {}, running)
    assert not ports.matches({"publish": ["53/udp"]}, config, {}, running)
    assert ports.matches({"expose": ["53/udp"]}, config, {}, running)
    assert not ports.matches({"expose": ["53"]}, config, {}, running)
    assert not ports.matches({"publish": ["80"]}, config, {}, {})
    with pytest.raises(InvalidArgument, match="invalid filter 'publish=x'"):
        ports.matches({"publish": ["x"]}, config, {}, running)
