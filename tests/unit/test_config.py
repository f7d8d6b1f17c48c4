from pathlib import Path

import pytest

from dockyard import config as cfg
from dockyard.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "d.toml"
    p.write_text(text)
    return p


def test_defaults_match_dockerd_layout():
    c = cfg.build({})
    assert c.hosts == ("unix:///run/dockyard.sock",)
    assert c.data_root == Path("/var/lib/dockyard")
    assert c.exec_root == Path("/run/dockyard")
    assert c.pidfile_path == Path("/run/dockyard/dockyardd.pid")
    assert c.live_restore is True


def test_file_uses_daemon_json_names_and_plugin_sections(tmp_path):
    p = write(tmp_path, '''
hosts = ["unix:///tmp/x.sock", "tcp://127.0.0.1:2375"]
data-root = "/srv/dy"
log-level = "debug"
storage-driver = "vfs"
[log-opts]
max-size = "5m"
[plugins.overlay]
opt = 1
''')
    c = cfg.build({}, p)
    assert c.hosts == ("unix:///tmp/x.sock", "tcp://127.0.0.1:2375")
    assert c.data_root == Path("/srv/dy")
    assert c.storage_driver == "vfs"
    assert c.log_opts == {"max-size": "5m"}
    assert c.plugin_config("overlay") == {"opt": 1}
    assert c.plugin_config("missing") == {}


def test_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown option.*data_root"):
        cfg.build({}, write(tmp_path, 'data_root = "/x"\n'))


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="d.toml"):
        cfg.build({}, write(tmp_path, "hosts = [\n"))


def test_flag_and_file_clash_like_dockerd(tmp_path):
    with pytest.raises(ConfigError, match="both as a flag and in the configuration file: data-root"):
        cfg.build({"data_root": "/a"}, write(tmp_path, 'data-root = "/b"\n'))


@pytest.mark.parametrize("text,match", [
    ('log-level = "loud"', "log-level"),
    ('debug = "yes"', "debug"),
    ('hosts = [1]', "hosts"),
    ('plugins = {overlay = 3}', "plugins"),
])
def test_bad_values(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        cfg.build({}, write(tmp_path, text + "\n"))


def test_debug_implies_debug_level():
    assert cfg.build({"debug": True}).log_level == "debug"


@pytest.mark.parametrize("text,n", [("10m", 10 << 20), ("512k", 512 << 10), ("1g", 1 << 30), ("100", 100), ("2MB", 2 << 20)])
def test_parse_size(text, n):
    assert cfg.parse_size(text) == n


def test_parse_size_rejects_garbage():
    with pytest.raises(ConfigError):
        cfg.parse_size("ten")
