"""The pure parts of option checking: MAC addresses, platforms, runtime names, link variables."""

from types import SimpleNamespace

import pytest

from dockyard.containers import options, startopts
from dockyard.containers.runtimes import RuntimeSet
from dockyard.errors import InvalidArgument
from dockyard.testing.fake_runtime import FakeRuntime


def test_mac_is_normalized_and_checked():
    assert options.normalize_mac("92-D0-C6-0A-29-33") == "92:d0:c6:0a:29:33"
    for bad in ("92:d0:c6:0a:29", "zz:d0:c6:0a:29:33", "92:d0-c6:0a:29:33", 12, "01:00:5e:00:00:01"):
        with pytest.raises(InvalidArgument):
            options.normalize_mac(bad)


def test_settle_mac_uses_the_first_network():
    nets = {"bridge": {"MacAddress": ""}, "other": {"MacAddress": ""}}
    config = {"MacAddress": "02:00:00:00:00:AA"}
    options.settle_mac(config, {"NetworkMode": "default"}, nets)
    assert config["MacAddress"] == nets["bridge"]["MacAddress"] == "02:00:00:00:00:aa"
    with pytest.raises(InvalidArgument, match="must match the endpoint-specific"):
        options.settle_mac({"MacAddress": "02:00:00:00:00:01"}, {}, {"bridge": {"MacAddress": "02:00:00:00:00:02"}})
    nets = {"bridge": {}, "other": {"MacAddress": "02:00:00:00:00:BB"}}  # another network's own
    config = {}
    options.settle_mac(config, {}, nets)
    assert nets["other"]["MacAddress"] == "02:00:00:00:00:bb" and not config.get("MacAddress")
    with pytest.raises(InvalidArgument, match="invalid MAC address"):
        options.settle_mac({}, {}, {"bridge": {}, "other": {"MacAddress": "zz"}})
    with pytest.raises(InvalidArgument, match="conflicting options"):
        options.settle_mac({"MacAddress": "02:00:00:00:00:01"}, {"NetworkMode": "host"}, {"host": {}})


def test_platform_must_match_the_image():
    cfg = {"os": "linux", "architecture": "amd64"}
    options.check_platform(cfg, "linux/amd64")
    options.check_platform(cfg, "linux/x86_64")
    options.check_platform(cfg, "linux")
    with pytest.raises(InvalidArgument, match=r"\(linux/amd64\) does not match .* \(linux/arm64\)"):
        options.check_platform(cfg, "linux/arm64")
    with pytest.raises(InvalidArgument):
        options.check_platform(cfg, "windows/amd64")


class _Native(FakeRuntime):
    name = "native"


class _Multi(FakeRuntime):
    """A runtime driver serving several --runtime names (as the oci plugin does)."""

    name = "multi"
    capabilities = FakeRuntime.capabilities | {"runtime-names"}

    def names(self) -> list[str]:
        return ["multi", "runc"]

    def path_of(self, name: str) -> str | None:
        return "/usr/bin/runc" if name == "runc" else None

    def owns(self, cid: str) -> bool:
        return False


def test_runtime_names(tmp_path):
    rt = RuntimeSet(_Native(root=tmp_path / "r", state=tmp_path / "s"), [])
    options.check({}, {"Runtime": "native"}, runtime=rt)
    hc: dict = {"Runtime": ""}
    options.check({}, hc, runtime=rt)
    assert hc["Runtime"] == "native"  # the default runtime's name is stored, as dockerd
    # runc is no alias of the native runtime: it needs the oci plugin, and says so
    with pytest.raises(InvalidArgument, match=r"runtime runc is not available \(install dockyard-oci-runtime\)"):
        options.check({}, {"Runtime": "runc"}, runtime=rt)
    with pytest.raises(InvalidArgument, match="unknown or invalid runtime name: nosuch"):
        options.check({}, {"Runtime": "nosuch"}, runtime=rt)
    multi = RuntimeSet(rt.default, [_Multi(root=tmp_path / "r2", state=tmp_path / "s2")])
    options.check({}, {"Runtime": "runc"}, runtime=multi)
    assert multi.names() == ["native", "runc"] and multi.path_of("runc") == "/usr/bin/runc"


def test_swappiness_range_is_checked():
    with pytest.raises(InvalidArgument, match="valid memory swappiness range is 0-100"):
        options.check({}, {"MemorySwappiness": 200})
    options.check({}, {"MemorySwappiness": -1})  # Docker's "unset"


def test_parse_link_forms():
    assert startopts.parse_link("web:db") == ("web", "db")
    assert startopts.parse_link("web") == ("web", "web")
    assert startopts.parse_link("/web:/me/db") == ("web", "db")


def test_link_env_is_dockers():
    target = SimpleNamespace(config={"ExposedPorts": {"53/udp": {}, "80/tcp": {}, "53/tcp": {}},
                                     "Env": ["PATH=/bin", "HOME=/root", "A=b=c"]})
    env = startopts.link_env("my-db", "app", target, "10.0.0.2")
    assert env[0] == "MY_DB_PORT=tcp://10.0.0.2:53"  # lowest port, tcp first
    assert "MY_DB_PORT_53_UDP_PROTO=udp" in env and "MY_DB_PORT_80_TCP_PORT=80" in env
    assert "MY_DB_NAME=/app/my-db" in env and "MY_DB_ENV_A=b=c" in env
    assert not any(e.startswith(("MY_DB_ENV_PATH", "MY_DB_ENV_HOME")) for e in env)
