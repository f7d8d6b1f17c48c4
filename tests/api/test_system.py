"""The system API against a real dockyardd on a temporary socket, with real clients."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import docker
import pytest

from dockyard.testing.daemon import DaemonProcess, free_port
from dockyard_cli.client import UnixHTTPConnection


def raw(daemon, method, path, headers=None, body=None):
    conn = UnixHTTPConnection(str(daemon.socket), timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.headers), data


def test_ping_has_dockers_headers(dockyard_daemon):
    for method in ("GET", "HEAD"):
        status, headers, body = raw(dockyard_daemon, method, "/_ping")
        assert status == 200
        assert headers["Api-Version"] == "1.44"
        assert headers["Ostype"] == "linux"
        assert headers["Server"].startswith("Dockyard/")
        assert headers["Builder-Version"] == "1"
        assert headers["Swarm"] == "inactive"
        assert headers["Cache-Control"].startswith("no-cache")
        assert body == (b"OK" if method == "GET" else b"")


def test_versioned_and_unversioned_routes(dockyard_daemon):
    for path in ("/version", "/v1.24/version", "/v1.44/version"):
        status, headers, body = raw(dockyard_daemon, "GET", path)
        assert status == 200, path
        assert json.loads(body)["ApiVersion"] == "1.44"


@pytest.mark.parametrize("version,word", [("1.10", "too old"), ("1.99", "too new")])
def test_out_of_range_version_is_a_docker_style_400(dockyard_daemon, version, word):
    status, headers, body = raw(dockyard_daemon, "GET", f"/v{version}/_ping")
    assert status == 400
    message = json.loads(body)["message"]
    assert f"client version {version} is {word}" in message
    assert headers["Api-Version"] == "1.44"


def test_unknown_route_is_a_json_404(dockyard_daemon):
    for path in ("/nope", "/v1.44/nope"):
        status, headers, body = raw(dockyard_daemon, "GET", path)
        assert status == 404
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"message": "page not found"}


def test_info_lists_plugins_and_host_facts(dockyard_daemon):
    status, _, body = raw(dockyard_daemon, "GET", "/info")
    info = json.loads(body)
    assert info["OSType"] == "linux" and info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    names = {(p["Group"], p["Name"]) for p in info["DockyardPlugins"]}
    assert ("dockyard.transports", "unix") in names
    assert ("dockyard.hooks", "builtin_errors") in names
    assert all(p["Distribution"] for p in info["DockyardPlugins"])
    # Go's RFC3339Nano in local time (time.Now()): "+01:00" or "Z", never strftime's "+0100"
    import re
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)", info["SystemTime"]), info


def test_docker_py_ping_version_info(dockyard_daemon):
    client = docker.DockerClient(base_url=dockyard_daemon.url)  # version=auto: negotiates over /version
    try:
        assert client.ping() is True
        assert client.version()["ApiVersion"] == "1.44"
        assert client.info()["OSType"] == "linux"
        assert client.api.api_version == "1.44"
    finally:
        client.close()


def test_real_docker_cli_version_and_info(dockyard_daemon):
    r = dockyard_daemon.docker("version", "--format", "{{.Server.APIVersion}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == b"1.44"
    r = dockyard_daemon.docker("info", "--format", "{{.OSType}} {{.ServerVersion}}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"linux ")


def test_events_since_until_and_filters(dockyard_daemon):
    t0 = time.time()
    time.sleep(0.01)
    # the daemon's own start event is older; the event bus replays history from `since`
    status, _, body = raw(dockyard_daemon, "GET", f"/events?since=0&until={time.time():.6f}&filters=" +
                          '%7B%22type%22%3A%5B%22daemon%22%5D%7D')
    assert status == 200
    events = [json.loads(line) for line in body.splitlines()]
    assert events and all(e["Type"] == "daemon" for e in events)
    assert events[0]["Action"] == "start"
    status, _, body = raw(dockyard_daemon, "GET", f"/events?since={t0:.3f}&until={t0 + 0.2:.3f}")
    assert status == 200 and body == b""
    status, _, body = raw(dockyard_daemon, "GET", "/events?since=10&until=5")
    assert status == 400
    status, _, body = raw(dockyard_daemon, "GET", '/events?filters={"bogus":["x"]}'.replace('"', "%22").replace("{", "%7B").replace("}", "%7D").replace("[", "%5B").replace("]", "%5D"))
    assert status == 400 and b"invalid filter" in body


def test_cli_version_info_plugins_and_json(dockyard_daemon):
    r = dockyard_daemon.cli("version")
    assert r.returncode == 0, r.stderr
    assert b"1.44" in r.stdout
    r = dockyard_daemon.cli("info", "--format", "json")
    assert json.loads(r.stdout)["OSType"] == "linux"
    r = dockyard_daemon.cli("plugins", "--format", "json")
    plugins = json.loads(r.stdout)
    assert {"Group": "dockyard.transports", "Name": "unix"}.items() <= {**plugins[[p["Name"] for p in plugins].index("unix")]}.items()
    r = dockyard_daemon.cli("plugins")
    assert b"GROUP" in r.stdout and b"builtin_errors" in r.stdout


def test_cli_says_what_to_do_when_the_daemon_is_not_there(tmp_path):
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "-H", f"unix://{tmp_path}/none.sock", "info"],
                       capture_output=True)
    assert r.returncode == 1
    assert b"none.sock not found" in r.stderr and b"Is dockyardd running?" in r.stderr


def test_cli_honours_docker_host_env(dockyard_daemon):
    env = {**os.environ, "DOCKER_HOST": dockyard_daemon.url}
    env.pop("DOCKYARD_HOST", None)
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "version", "--format", "{{.Server.APIVersion}}"],
                       capture_output=True, env=env)
    assert r.stdout.strip() == b"1.44", r.stderr


def test_two_daemons_cannot_share_a_data_root(make_daemon, tmp_path):
    first = make_daemon(base=tmp_path / "a")
    second = DaemonProcess(tmp_path / "b")
    second.data_root = first.data_root
    r = subprocess.run(second.command(), capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"another dockyardd" in r.stderr and str(first.data_root).encode() in r.stderr
    assert first.ping()


def test_sigterm_removes_socket_and_pidfile(make_daemon):
    d = make_daemon()
    pidfile = d.exec_root / "dockyardd.pid"
    assert pidfile.read_text().strip() == str(d.proc.pid)
    assert d.stop(signal.SIGTERM) == 0
    assert not d.socket.exists()
    assert not pidfile.exists()


def test_sigint_is_a_clean_shutdown_too(make_daemon):
    d = make_daemon()
    assert d.stop(signal.SIGINT) == 0
    assert not d.socket.exists()


def test_stale_socket_is_replaced(make_daemon, tmp_path):
    d = make_daemon(start=False)
    d.base.mkdir(parents=True)
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d.socket))  # bound but not listening: a leftover from a crash
    s.close()
    d.start()
    assert d.ping()


def test_missing_storage_driver_lists_installed(tmp_path):
    d = DaemonProcess(tmp_path, "--storage-driver", "zfs")
    r = subprocess.run(d.command(), capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"storage driver 'zfs' is not installed; installed storage drivers:" in r.stderr
    assert b"fake" in r.stderr


def test_socket_is_0660(dockyard_daemon):
    assert oct(dockyard_daemon.socket.stat().st_mode & 0o777) == "0o660"


def test_unknown_group_is_a_clear_error(tmp_path):
    d = DaemonProcess(tmp_path, "--group", "no-such-group-xyz")
    r = subprocess.run(d.command(), capture_output=True, timeout=30)
    assert r.returncode == 1 and b"group 'no-such-group-xyz' not found" in r.stderr
    assert not d.socket.exists()


def test_tcp_on_loopback_works(make_daemon):
    port = free_port()
    d = make_daemon("-H", f"tcp://127.0.0.1:{port}")
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}")
    try:
        assert client.ping()
    finally:
        client.close()
    assert d.ping()  # the unix socket still answers too


def test_plain_tcp_off_loopback_is_refused(tmp_path):
    d = DaemonProcess(tmp_path, "-H", f"tcp://0.0.0.0:{free_port()}")
    r = subprocess.run(d.command(), capture_output=True, timeout=30)
    assert r.returncode == 1
    assert b"refusing to serve plain TCP" in r.stderr and b"--insecure-tcp" in r.stderr
    assert not d.socket.exists(), "a refused start must not leave the unix socket behind"


def test_config_file_with_unknown_key_stops_the_daemon(tmp_path):
    conf = tmp_path / "d.toml"
    conf.write_text('colour = "blue"\n')
    d = DaemonProcess(tmp_path, "--config-file", str(conf))
    r = subprocess.run(d.command(), capture_output=True, timeout=30)
    assert r.returncode == 1 and b"unknown option(s): colour" in r.stderr


def test_json_logs(make_daemon):
    d = make_daemon("--log-format", "json")
    d.stop()
    lines = [json.loads(line) for line in d.log().splitlines() if line.startswith("{")]
    assert any(line["msg"].startswith("API listening on") for line in lines)
    assert {"time", "level", "logger", "msg"} <= set(lines[0])


def test_swarm_and_managed_plugins_answer_as_an_inactive_dockerd(dockyard_daemon):
    for method, path in (("GET", "/v1.44/nodes"), ("GET", "/services"), ("GET", "/secrets/abc"),
                         ("POST", "/configs/create"), ("GET", "/swarm"), ("DELETE", "/tasks/x")):
        status, _, body = raw(dockyard_daemon, method, path)
        assert status == 503 and json.loads(body)["message"].startswith("This node is not a swarm manager."), path
    status, _, body = raw(dockyard_daemon, "POST", "/swarm/init", {"Content-Type": "application/json"}, b"{}")
    assert status == 501 and "swarm mode is not supported" in json.loads(body)["message"]
    status, _, body = raw(dockyard_daemon, "POST", "/swarm/leave")
    assert status == 503 and json.loads(body)["message"] == "This node is not part of a swarm"
    client = docker.DockerClient(base_url=dockyard_daemon.url)
    try:
        assert client.plugins.list() == []
        with pytest.raises(docker.errors.NotFound, match='plugin "vieux/sshfs:latest" not found'):
            client.plugins.get("vieux/sshfs:latest")
        with pytest.raises(docker.errors.APIError, match="managed plugins are not supported"):
            client.plugins.install("vieux/sshfs")
    finally:
        client.close()


def test_cli_events_times_are_rfc3339_nano_fixed_with_the_zone(dockyard_daemon):
    """As ``docker events``: local time, nine digits and the zone (``Z`` or ``+01:00``)."""
    import re

    r = dockyard_daemon.cli("system", "events", "--since", "0", "--until", str(int(time.time()) + 1))
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.decode().splitlines() if " daemon start " in x)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) daemon start ", line), line
