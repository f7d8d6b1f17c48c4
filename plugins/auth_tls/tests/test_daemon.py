"""A real dockyardd with the auth_tls plugin: TLS with client certificates (docker CLI and
docker-py), identity over Unix and TLS, the policy, SIGHUP reload and the audit log."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess, free_port
from dockyard_auth_tls import certs
from dockyard_cli.client import UnixHTTPConnection

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    certs.init(d, clients=["alice", "bob"])
    return d


def write_config(base: Path, policy: str | None = None, audit: bool = False) -> Path:
    base.mkdir(parents=True, exist_ok=True)
    lines = ["[plugins.auth_tls]"]
    if policy is not None:
        (base / "policy.toml").write_text(policy)
        lines.append(f'policy = "{base / "policy.toml"}"')
    if audit:
        lines.append(f'audit_log = "{base / "audit.log"}"')
    (base / "dockyardd.toml").write_text("\n".join(lines) + "\n")
    return base / "dockyardd.toml"


def tls_flags(pki: Path, port: int) -> list[str]:
    return ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
            "--tlscert", str(pki / "cert.pem"), "--tlskey", str(pki / "key.pem")]


@pytest.fixture
def daemons():
    made: list[DaemonProcess] = []
    yield made
    for d in made:
        d.stop()


def start(daemons, base: Path, *flags: str) -> DaemonProcess:
    d = DaemonProcess(base / "d", *flags)
    daemons.append(d)
    return d.start()


def _decode(raw: bytes):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def unix_request(d: DaemonProcess, method: str, path: str, body=None, headers=None):
    conn = UnixHTTPConnection(str(d.socket), timeout=30)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    return r.status, _decode(raw)


def https_request(port: int, pki: Path, client: str | None, method: str, path: str, body=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if client:
        ctx.load_cert_chain(str(pki / "clients" / client / "cert.pem"), str(pki / "clients" / client / "key.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    headers = {}
    data = None
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    raw = r.read()
    conn.close()
    return r.status, _decode(raw)


def docker_env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return {**env, "DOCKER_CONFIG": str(base / "docker-config"), **extra}


# -- the tls transport -------------------------------------------------------------------


def test_docker_cli_and_docker_py_over_tlsverify(pki, tmp_path, daemons, monkeypatch):
    port = free_port()
    start(daemons, tmp_path, *tls_flags(pki, port))
    url = f"tcp://127.0.0.1:{port}"
    client = pki / "client"
    r = subprocess.run(["docker", "--tlsverify", "--tlscacert", str(client / "ca.pem"), "--tlscert",
                        str(client / "cert.pem"), "--tlskey", str(client / "key.pem"), "-H", url,
                        "version", "--format", "{{.Server.Version}}"],
                       capture_output=True, text=True, timeout=60, env=docker_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    r = subprocess.run(["docker", "-H", url, "version", "--format", "{{.Server.APIVersion}}"],
                       capture_output=True, text=True, timeout=60,
                       env=docker_env(tmp_path, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(client)))
    assert r.returncode == 0, r.stderr
    # no client certificate: the daemon closes the connection, the CLI fails
    r = subprocess.run(["docker", "--tlsverify", "--tlscacert", str(pki / "ca.pem"), "-H", url, "version"],
                       capture_output=True, text=True, timeout=60, env=docker_env(tmp_path))
    assert r.returncode != 0
    assert "Server:" not in r.stdout
    # ... and at the TLS level, no HTTP answer comes back
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    answer = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
                answer = t.recv(100)
    except (ssl.SSLError, OSError):
        pass
    assert not answer.startswith(b"HTTP/")
    # plain HTTP on the TLS port gets no API answer either
    with pytest.raises((http.client.HTTPException, OSError)):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_ping")
        assert conn.getresponse().status != 200
        raise OSError("not an API answer")
    # docker-py; requests lets REQUESTS_CA_BUNDLE override the client's ca_cert, so clear it
    import docker

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tls = docker.tls.TLSConfig(client_cert=(str(client / "cert.pem"), str(client / "key.pem")),
                               ca_cert=str(client / "ca.pem"), verify=True)
    dc = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls)
    try:
        assert dc.ping()
    finally:
        dc.close()


def test_tls_scheme_and_missing_certs(pki, tmp_path, daemons):
    port = free_port()
    start(daemons, tmp_path, "-H", f"tls://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(pki / "ca.pem"),
          "--tlscert", str(pki / "cert.pem"), "--tlskey", str(pki / "key.pem"))
    assert https_request(port, pki, "alice", "GET", "/_ping")[0] == 200
    # --tls without --tlsverify: encrypted, no client certificate needed, caller is anonymous
    port2 = free_port()
    conf = write_config(tmp_path / "tlsonly", audit=True)
    start(daemons, tmp_path / "tlsonly", "-H", f"tcp://127.0.0.1:{port2}", "--tls", "--tlscert",
          str(pki / "cert.pem"), "--tlskey", str(pki / "key.pem"), "--config-file", str(conf))
    assert https_request(port2, pki, None, "GET", "/version")[0] == 200
    records = [json.loads(line) for line in (tmp_path / "tlsonly" / "audit.log").read_text().splitlines()]
    assert {"anonymous"} == {r["principal"] for r in records if r["route"] == "/version"}
    d = DaemonProcess(tmp_path / "nocert", "-H", f"tcp://127.0.0.1:{free_port()}", "--tlsverify",
                      "--tlscacert", str(pki / "ca.pem"), "--tlscert", str(tmp_path / "missing.pem"),
                      "--tlskey", str(pki / "key.pem"))
    with pytest.raises(RuntimeError, match="missing.pem"):
        d.start()
    assert d.proc.returncode == 1


# -- identity and policy -----------------------------------------------------------------


UNIX_POLICY = '''
[[rule]]
name = "root reads"
uid = 0
methods = ["GET", "HEAD"]
action = "allow"

[[rule]]
name = "read only"
action = "deny"
message = "this daemon is read-only for you"
'''


def test_unix_identity_policy_denies_create(tmp_path, daemons):
    conf = write_config(tmp_path, UNIX_POLICY, audit=True)
    d = start(daemons, tmp_path, "--config-file", str(conf))
    status, body = unix_request(d, "POST", "/v1.44/containers/create?name=denied", {"Image": "busybox", "Cmd": ["true"]})
    assert status == 403
    assert body["message"] == "this daemon is read-only for you"
    status, body = unix_request(d, "GET", "/containers/json?all=1")
    assert status == 200 and body == []
    status, _ = unix_request(d, "GET", "/containers/denied/json")
    assert status == 404
    # the real docker CLI sees the message too
    r = d.docker("create", "--name", "x", "busybox", "true")
    assert r.returncode != 0 and b"this daemon is read-only for you" in r.stderr
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    denied = [r for r in records if r["route"] == "/containers/create" and r["method"] == "POST"]
    assert denied and all(r["status"] == 403 and r["decision"] == "deny" and r["rule"] == "read only"
                          for r in denied)
    assert denied[0]["principal"] == "uid:0" and denied[0]["kind"] == "unix"


CN_POLICY = '''
[[rule]]
name = "local root"
kind = "unix"
uid = 0
action = "allow"

[[rule]]
name = "alice"
cn = ["alice"]
action = "allow"

[[rule]]
name = "bob reads"
cn = "bob"
methods = ["GET", "HEAD"]
routes = ["/_ping", "/version", "/containers/*"]
action = "allow"
'''


def test_tls_identity_cn_rules(pki, tmp_path, daemons):
    port = free_port()
    conf = write_config(tmp_path, CN_POLICY, audit=True)
    start(daemons, tmp_path, *tls_flags(pki, port), "--config-file", str(conf))
    assert https_request(port, pki, "alice", "GET", "/info")[0] == 200
    assert https_request(port, pki, "bob", "GET", "/version")[0] == 200
    assert https_request(port, pki, "bob", "GET", "/containers/json")[0] == 200
    status, body = https_request(port, pki, "bob", "GET", "/info")
    assert status == 403 and "no rule allows" in body["message"]
    status, body = https_request(port, pki, "bob", "POST", "/containers/create", {"Image": "busybox"})
    assert status == 403
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    bob = [r for r in records if r["principal"] == "bob"]
    assert {r["kind"] for r in bob} == {"tls"}
    assert {(r["route"], r["status"], r["rule"]) for r in bob} >= {
        ("/info", 403, "default"), ("/version", 200, "bob reads"), ("/containers/create", 403, "default")}


def test_policy_that_does_not_parse_stops_the_daemon(tmp_path):
    conf = write_config(tmp_path, "[[rule]]\naction = 'allow'\nmethod = 'GET'\n")
    d = DaemonProcess(tmp_path / "d", "--config-file", str(conf))
    with pytest.raises(RuntimeError) as exc:
        d.start()
    assert d.proc.returncode == 1
    assert str(tmp_path / "policy.toml") in str(exc.value) and "unknown key" in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_sighup_reloads_policy_and_keeps_old_one_on_error(tmp_path, daemons):
    conf = write_config(tmp_path, UNIX_POLICY)
    d = start(daemons, tmp_path, "--config-file", str(conf))
    assert unix_request(d, "GET", "/info")[0] == 200
    (tmp_path / "policy.toml").write_text("this is = = not toml")
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "keeping the previous policy" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "keeping the previous policy" in d.log() and str(tmp_path / "policy.toml") in d.log()
    assert d.proc.poll() is None
    assert unix_request(d, "GET", "/info")[0] == 200  # old policy still in force
    assert unix_request(d, "POST", "/containers/create", {"Image": "busybox"})[0] == 403
    (tmp_path / "policy.toml").write_text('[[rule]]\nmethods = ["HEAD"]\naction = "allow"\n'
                                          '[[rule]]\nroutes = ["/_ping"]\naction = "allow"\n')
    d.proc.send_signal(signal.SIGHUP)
    while "policy reloaded" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "policy reloaded" in d.log()
    status, body = unix_request(d, "GET", "/info")
    assert status == 403 and "no rule allows" in body["message"]


# -- audit -------------------------------------------------------------------------------


def test_hook_request_finished(tmp_path, daemons):
    """The audit log is written from request_finished: one line per request, with status."""
    conf = write_config(tmp_path, audit=True)
    d = start(daemons, tmp_path, "--config-file", str(conf))
    secret = "eyJ1c2VybmFtZSI6InUiLCJwYXNzd29yZCI6InMzY3JldCJ9"
    status, _ = unix_request(d, "GET", "/v1.44/version", headers={"X-Registry-Auth": secret})
    assert status == 200
    status, _ = unix_request(d, "GET", "/containers/nosuch/json", headers={"X-Registry-Auth": secret})
    assert status == 404
    status, _ = unix_request(d, "POST", "/containers/create?name=audited-nope",
                             {"Image": "no-such-image:never", "Env": ["PASSWORD=hunter2"]},
                             headers={"X-Registry-Auth": secret})
    assert status == 404
    text = (tmp_path / "audit.log").read_text()
    assert secret not in text and "hunter2" not in text
    records = [json.loads(line) for line in text.splitlines()]
    by_route = {(r["method"], r["route"]): r for r in records}
    v = by_route[("GET", "/version")]
    assert v["principal"] == "uid:0" and v["status"] == 200 and v["decision"] is None
    assert isinstance(v["duration_ms"], (int, float)) and v["time"].endswith("Z")
    j = by_route[("GET", "/containers/{id}/json")]
    assert j["status"] == 404 and j["object"] == "nosuch"
    c = by_route[("POST", "/containers/create")]
    assert c["status"] == 404 and c["body_keys"] == ["Env", "Image"]
    assert stat_mode(tmp_path / "audit.log") == 0o600


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
