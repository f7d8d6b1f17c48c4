"""A real third-party plugin: pip-installed, discovered through entry points, called by the daemon.

Each ``test_hook_<name>`` proves that hook is called (tests/test_plugin_surface.py checks they exist).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess
from dockyard_cli.client import UnixHTTPConnection

PLUGIN_DIR = Path(__file__).parent.parent / "example_plugin"


@pytest.fixture(scope="module")
def example_plugin():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", str(PLUGIN_DIR)], check=True)
    yield
    subprocess.run([*pip, "uninstall", "-y", "dockyard-example-audit"], check=True)


@pytest.fixture(scope="module")
def audited(example_plugin, tmp_path_factory):
    base = tmp_path_factory.mktemp("audited")
    log = base / "audit.jsonl"
    d = DaemonProcess(base / "d", env={"DOCKYARD_EXAMPLE_AUDIT": str(log)})
    d.start()
    d.audit_log = log
    yield d
    d.stop()


def records(d):
    return [json.loads(line) for line in d.audit_log.read_text().splitlines()]


def get(d, path, headers=None):
    conn = UnixHTTPConnection(str(d.socket), timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, json.loads(body) if body else None


def test_plugin_is_discovered_with_its_distribution(audited):
    r = audited.cli("plugins", "--format", "json")
    plugins = {p["Name"]: p for p in json.loads(r.stdout)}
    p = plugins["example_audit"]
    assert p["Distribution"] == "dockyard-example-audit" and p["Version"] == "1.2.3"
    assert {"on_event", "authorize_request", "register_routes"} <= set(p["Hooks"])


def test_hook_startup(audited):
    assert {"hook": "startup", "data_root": str(audited.data_root)} in records(audited)


def test_hook_on_event(audited):
    events = [r["event"] for r in records(audited) if r["hook"] == "on_event"]
    assert any(e["Type"] == "daemon" and e["Action"] == "start" for e in events)


def test_hook_register_routes(audited):
    for path in ("/example/hello", "/v1.44/example/hello"):
        status, body = get(audited, path)
        assert status == 200 and "hello" in body


def test_an_aiohttp_routedef_still_registers(audited):
    """A plugin written against aiohttp.web: its RouteDef (method, path, handler) is taken
    duck-typed, the handler gets the daemon's Request (the middleware's identity and route),
    and the aiohttp response it returns, or exception it raises, is answered Docker-style."""
    status, headers, body = get_full(audited, "/v1.44/example/legacy")
    assert status == 200 and json.loads(body) == {"legacy": "uid:0", "route": "/example/legacy"}
    assert headers["Api-Version"] == "1.44" and headers["Content-Type"].startswith("application/json")
    status, headers, body = get_full(audited, "/example/legacy?conflict=1")
    assert status == 409 and json.loads(body) == {"message": "Conflict"}


def get_full(d, path):
    conn = UnixHTTPConnection(str(d.socket), timeout=10)
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r.headers, body


def test_hook_authenticate_request(audited):
    status, body = get(audited, "/example/hello")
    assert body == {"hello": "uid:0", "uid": 0}  # SO_PEERCRED of this (root) test process


def test_hook_authorize_request(audited):
    status, body = get(audited, "/version", headers={"X-Example-Deny": "not today"})
    assert status == 403 and body == {"message": "example policy: not today"}
    assert {"hook": "authorize_request", "denied": "/version", "who": "uid:0"} in records(audited)
    assert get(audited, "/version")[0] == 200


def test_hook_handle_exception(audited):
    status, body = get(audited, "/nope", headers={"X-Example-Teapot": "1"})
    assert status == 418 and body == {"message": "teapot: page not found"}
    assert get(audited, "/nope")[0] == 404  # the built-in renderer answers otherwise


def test_hook_register_commands(audited):
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "-H", audited.url, "example-hello"],
                       capture_output=True, env={**audited.env})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"hello": "uid:0", "uid": 0}


@pytest.mark.privileged
def test_hook_container_spec(audited, busybox_tar):
    audited.load(busybox_tar)
    r = audited.docker("create", "--name", "labelled", "--label", "mine=1", "busybox", "true")
    assert r.returncode == 0, r.stderr
    labels = json.loads(audited.docker("inspect", "labelled").stdout)[0]["Config"]["Labels"]
    assert labels == {"mine": "1", "example.audit": "yes"}
    assert audited.docker("rm", "labelled").returncode == 0


def test_hook_shutdown(example_plugin, tmp_path):
    log = tmp_path / "audit.jsonl"
    d = DaemonProcess(tmp_path / "d", env={"DOCKYARD_EXAMPLE_AUDIT": str(log)}).start()
    assert d.stop() == 0
    assert json.loads(log.read_text().splitlines()[-1]) == {"hook": "shutdown"}


def test_disable_switch_blocks_the_plugin(example_plugin, tmp_path):
    d = DaemonProcess(tmp_path, env={"DOCKYARD_DISABLE_PLUGINS": "example_audit"}).start()
    try:
        names = [p["Name"] for p in json.loads(d.cli("plugins", "--format", "json").stdout)]
        assert "example_audit" not in names and "builtin_errors" in names
    finally:
        d.stop()


def test_a_plugin_that_cannot_load_stops_the_daemon(example_plugin, tmp_path):
    d = DaemonProcess(tmp_path, env={"DOCKYARD_EXAMPLE_BREAK": "1"})
    r = subprocess.run(d.command(), capture_output=True, env=d.env, timeout=30)
    assert r.returncode == 1
    assert b"plugin 'example_audit' (dockyard.hooks) failed to load: example plugin broken on purpose" in r.stderr


def test_example_policy_next_to_auth_tls(example_plugin, tmp_path):
    """Two authorization plugins at once: auth_tls's policy file and the example's header rule.
    Either can deny; the audit record (auth_tls) names the decision that counted."""
    (tmp_path / "policy.toml").write_text('[[rule]]\nname = "root reads"\nuid = 0\nmethods = ["GET"]\n'
                                          'action = "allow"\n')
    (tmp_path / "d.toml").write_text(f'[plugins.auth_tls]\npolicy = "{tmp_path / "policy.toml"}"\n'
                                     f'audit_log = "{tmp_path / "audit.log"}"\n')
    d = DaemonProcess(tmp_path / "d", "--config-file", str(tmp_path / "d.toml"),
                      env={"DOCKYARD_EXAMPLE_AUDIT": str(tmp_path / "example.jsonl")}).start()
    try:
        assert get(d, "/version")[0] == 200  # both allow (the example abstains)
        status, body = get(d, "/version", headers={"X-Example-Deny": "not now"})
        assert status == 403 and body["message"] == "example policy: not now"  # auth_tls allowed it
        conn = UnixHTTPConnection(str(d.socket), timeout=10)
        conn.request("POST", "/containers/create", body=b"{}", headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 403 and b"no rule allows" in r.read()  # auth_tls denies, the example abstains
        conn.close()
        info = get(d, "/info")[1]
        assert {"auth_tls", "example_audit"} <= set(info["Plugins"]["Authorization"])
    finally:
        d.stop()
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    version = [(r["status"], r["decision"], r["rule"]) for r in records if r["route"] == "/version"]
    assert version == [(200, "allow", "root reads"), (403, "deny", "x-example-deny")]
    create = [r for r in records if r["route"] == "/containers/create"]
    assert [(r["status"], r["decision"], r["rule"]) for r in create] == [(403, "deny", "default")]


@pytest.mark.privileged
def test_hook_authorize_container(audited, busybox_tar):
    audited.load(busybox_tar)
    r = audited.docker("create", "--name", "hostpid", "--pid", "host", "busybox", "true")
    assert r.returncode != 0 and b"example policy: no host pid namespace" in r.stderr, r.stderr
    assert audited.docker("ps", "-aq", "--filter", "name=hostpid").stdout.split() == []
    assert audited.docker("create", "--name", "plain", "busybox", "true").returncode == 0
    audited.docker("rm", "plain")
    denied = [rec for rec in records(audited) if rec.get("hook") == "authorize_container"]
    assert denied == [{"hook": "authorize_container", "action": "create", "denied": ["pid"]}]
