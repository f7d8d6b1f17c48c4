"""The third-party volume driver of tests/example_volume_driver/ (what docs/plugins.md walks
through): pip-installed into the venv, it passes the volume conformance suite and serves
``docker volume create -d exampledriver`` and ``docker run -v`` on a real daemon."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.testing.conformance_volume import VolumeDriverSuite

EXAMPLE_DIR = Path(__file__).parent.parent / "example_volume_driver"


@pytest.fixture(scope="module")
def example_driver():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", str(EXAMPLE_DIR)], check=True)
    importlib.invalidate_caches()
    yield importlib.import_module("dockyard_example_volume").ExampleVolumeDriver
    subprocess.run([*pip, "uninstall", "-y", "dockyard-example-volume"], check=True)


class TestExampleDriver(VolumeDriverSuite):
    bad_options = [{"bogus": "1"}, {"mode": "rwx"}, {"mode": "99999"}, {"uid": "me"}]

    @pytest.fixture
    def volume_driver_factory(self, example_driver, tmp_path):
        return lambda: example_driver({}, tmp_path / "root", tmp_path / "state")


def test_installed_entry_point(example_driver):
    from dockyard.plugins import entry_point_names

    assert "exampledriver" in entry_point_names("dockyard.volume")


@pytest.mark.privileged
def test_docker_cli_uses_the_driver(example_driver, make_daemon, busybox_tar):
    d = make_daemon()
    d.load(busybox_tar)

    def docker(*args, ok=True):
        r = d.docker(*args)
        assert (r.returncode == 0) == ok, r.stderr.decode()
        return r

    docker("volume", "create", "-d", "exampledriver", "--opt", "mode=0700", "private")
    (info,) = json.loads(docker("volume", "inspect", "private").stdout)
    assert info["Driver"] == "exampledriver"
    assert info["Mountpoint"] == str(d.data_root / "volume" / "exampledriver" / "private" / "data")
    assert info["Status"] == {"Mode": "0700", "Users": 0}
    out = docker("run", "--rm", "-v", "private:/data", "busybox", "sh", "-c",
                 "echo kept > /data/f; stat -c %a /data").stdout
    assert out == b"700\n"
    assert docker("run", "--rm", "-v", "private:/data:ro", "busybox", "cat", "/data/f").stdout == b"kept\n"
    assert Path(info["Mountpoint"], "f").read_text() == "kept\n"
    ls = docker("volume", "ls", "--filter", "driver=exampledriver", "--format", "{{.Name}} {{.Driver}}").stdout
    assert ls == b"private exampledriver\n"
    # the driver's own validation is the API's 400
    r = docker("volume", "create", "-d", "exampledriver", "--opt", "colour=blue", "bad", ok=False)
    assert b'exampledriver: invalid option: "colour"' in r.stderr
    assert b"bad" not in docker("volume", "ls", "-q").stdout
    # the daemon lists the loaded driver with its distribution and version
    loaded = {(p["Group"], p["Name"]): p for p in json.loads(d.cli("plugins", "--format", "json", check=True).stdout)}
    mine = loaded[("dockyard.volume", "exampledriver")]
    assert (mine["Distribution"], mine["Version"]) == ("dockyard-example-volume", "0.3.0")
    assert mine["Capabilities"] == ["list"]
    docker("volume", "rm", "private")
    assert not Path(info["Mountpoint"]).exists()
