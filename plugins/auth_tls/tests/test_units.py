"""Unprivileged tests: certificates, the policy language, the audit record, config keys."""

from __future__ import annotations

import json
import ssl
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509

from dockyard import config as cfg
from dockyard.identity import Identity
from dockyard_auth_tls import certs, hooks
from dockyard_auth_tls.policy import Policy, PolicyError
from dockyard_auth_tls.transport import server_context

ROOT = Identity(name="uid:0", kind="unix", uid=0, gid=0, groups=("root",))
ALICE = Identity(name="alice", kind="tls", attributes={"subject": "CN=alice"})


def test_tls_init_command_writes_files_with_modes(tmp_path):
    d = tmp_path / "certs"
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "tls", "init", "--dir", str(d),
                        "--hostname", "dockyard.example", "--hostname", "10.1.2.3",
                        "--client", "alice", "--client", "bob"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "DOCKER_CERT_PATH" in r.stdout
    for key in ["ca-key.pem", "key.pem", "client/key.pem", "clients/alice/key.pem", "clients/bob/key.pem"]:
        assert stat.S_IMODE((d / key).stat().st_mode) == 0o600, key
    for cert in ["ca.pem", "cert.pem", "client/ca.pem", "client/cert.pem", "clients/bob/cert.pem"]:
        assert stat.S_IMODE((d / cert).stat().st_mode) == 0o644, cert
    server = x509.load_pem_x509_certificate((d / "cert.pem").read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"dockyard.example", "localhost"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"10.1.2.3", "127.0.0.1"}
    client = x509.load_pem_x509_certificate((d / "client/cert.pem").read_bytes())
    cn = client.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == "alice"  # the first client is the DOCKER_CERT_PATH one
    assert (d / "client/ca.pem").read_bytes() == (d / "ca.pem").read_bytes()
    # a second init must not silently replace the CA
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "tls", "init", "--dir", str(d)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--force" in r.stderr


def test_server_context_requires_client_certs_and_tls12(tmp_path):
    certs.init(tmp_path)
    ctx = server_context(tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem", verify=True)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert server_context(tmp_path / "cert.pem", tmp_path / "key.pem", None, verify=False).verify_mode == ssl.CERT_NONE
    from dockyard.errors import ConfigError

    with pytest.raises(ConfigError, match="tlscert"):
        server_context(tmp_path / "nope.pem", tmp_path / "key.pem", None, verify=False)


def test_config_tls_keys_from_file_and_defaults(tmp_path):
    c = cfg.build({})
    assert not c.tls_enabled and c.tlscacert == Path("/etc/dockyard/ca.pem")
    f = tmp_path / "d.toml"
    f.write_text('tlsverify = true\ntlscacert = "/x/ca.pem"\ntlscert = "/x/c.pem"\ntlskey = "/x/k.pem"\n')
    c = cfg.build({}, f)
    assert c.tlsverify and c.tls_enabled and c.tlskey == Path("/x/k.pem")
    with pytest.raises(Exception, match="tlsverify"):
        cfg.build({"tlsverify": True}, f)  # flag and file: an error, as in dockerd


def _policy(tmp_path, text) -> Policy:
    p = tmp_path / "policy.toml"
    p.write_text(text)
    return Policy.load(p)


POLICY = '''
default-message = "nope"

[[rule]]
name = "root reads"
uid = 0
methods = ["get", "HEAD"]
action = "allow"

[[rule]]
name = "alice creates busybox"
cn = "alice"
routes = ["/containers/create", "/containers/{id}/start", "/images/*"]
images = ["busybox"]
privileged = false
binds = false
action = "allow"

[[rule]]
name = "wheel group"
group = ["wheel"]
action = "deny"
message = "wheel is not enough"
'''


def test_policy_rules_match_in_order(tmp_path):
    p = _policy(tmp_path, POLICY)
    d = p.decide("GET", "/containers/json", "/v1.44/containers/json", None, ROOT)
    assert d.allow and d.rule == "root reads"
    d = p.decide("POST", "/containers/create", "/containers/create", {"Image": "busybox"}, ROOT)
    assert not d.allow and d.message == "nope" and d.rule == "default"
    ok = {"Image": "busybox:latest", "HostConfig": {"Privileged": False}}
    assert p.decide("POST", "/containers/create", "/v1.44/containers/create", ok, ALICE).allow
    assert p.decide("POST", "/containers/{id}/start", "/containers/abc/start", None, ALICE).allow
    assert p.decide("GET", "/images/{name}/json", "/images/busybox/json", None, ALICE).allow  # glob
    for bad in ({"Image": "alpine"}, {"Image": "busybox", "HostConfig": {"Privileged": True}},
                {"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}},
                {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/", "Target": "/h"}]}}):
        assert not p.decide("POST", "/containers/create", "/containers/create", bad, ALICE).allow, bad
    vol = {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v"}]}}
    assert p.decide("POST", "/containers/create", "/containers/create", vol, ALICE).allow
    assert not p.decide("DELETE", "/containers/{id}", "/containers/x", None, ALICE).allow
    # cn only matches TLS identities, uid only identities with that uid
    assert not p.decide("GET", "/_ping", "/_ping", None, Identity(name="alice", kind="unix", uid=5)).allow
    wheel = Identity(name="uid:5", kind="unix", uid=5, groups=("users", "wheel"))
    d = p.decide("GET", "/_ping", "/_ping", None, wheel)
    assert not d.allow and d.message == "wheel is not enough" and d.rule == "wheel group"


@pytest.mark.parametrize("text, error", [
    ("[[rule]\naction = 'allow'", "policy.toml"),
    ("[[rule]]\naction = 'maybe'", "action must be"),
    ("[[rule]]\naction = 'allow'\nuser = 'x'", "unknown key"),
    ("[[rule]]\naction = 'allow'\nprivileged = true", "may only be false"),
    ("[[rule]]\naction = 'allow'\nuid = 'root'", "uid must be"),
    ("rules = []", "unknown key"),
])
def test_policy_errors_name_the_file(tmp_path, text, error):
    with pytest.raises(PolicyError, match=error) as exc:
        _policy(tmp_path, text)
    assert str(tmp_path / "policy.toml") in str(exc.value)


def test_reload_keeps_old_policy_on_error(tmp_path, caplog):
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    try:
        hooks.configure({"policy": str(path)})
        assert len(hooks.STATE.policy.rules) == 3
        path.write_text("[[rule]]\naction = 'allow'\nbogus = 1\n")
        assert hooks.STATE.reload() is False
        assert len(hooks.STATE.policy.rules) == 3
        assert "keeping the previous policy" in caplog.text
        path.write_text("[[rule]]\naction = 'allow'\n")
        assert hooks.STATE.reload() is True and len(hooks.STATE.policy.rules) == 1
    finally:
        hooks.STATE.close()


def test_bad_plugin_config_is_a_plugin_error(tmp_path):
    from dockyard.errors import PluginError

    with pytest.raises(PluginError, match="unknown option"):
        hooks.configure({"polcy": "/x"})
    (tmp_path / "p.toml").write_text("nonsense =")
    with pytest.raises(PluginError, match=str(tmp_path / "p.toml")):
        hooks.configure({"policy": str(tmp_path / "p.toml")})
    hooks.STATE.close()


def test_authenticate_request_identities():
    from dockyard.identity import Peer

    ident = hooks.authenticate_request(None, Peer("unix", uid=0, gid=0, pid=1))
    assert ident.name == "uid:0" and ident.kind == "unix" and ident.uid == 0 and "root" in ident.groups
    cert = {"subject": ((("organizationName", "Acme"),), (("commonName", "alice"),)),
            "issuer": ((("commonName", "Dockyard CA"),),)}
    ident = hooks.authenticate_request(None, Peer("tls", address="127.0.0.1", cert=cert))
    assert ident.name == "alice" and ident.kind == "tls"
    assert ident.attributes["subject"] == "O=Acme,CN=alice" and ident.attributes["issuer"] == "CN=Dockyard CA"
    assert hooks.authenticate_request(None, Peer("tls", cert={})) is None  # --tls without a client cert
    assert hooks.authenticate_request(None, Peer("tcp")) is None


def test_audit_record_summarizes_and_never_copies_headers():
    from dockyard.identity import Decision

    request = {"route": "/containers/{id}/start", "body_json": {"Image": "x", "Env": ["PASSWORD=hunter2"]},
               hooks.DECISION_KEY: Decision.permit("root reads")}

    class Req(dict):
        method = "POST"
        path = "/v1.44/containers/abc/start"
        match_info = {"id": "abc"}
        headers = {"X-Registry-Auth": "c2VjcmV0"}

    rec = hooks.audit_record(Req(request), ROOT, SimpleNamespace(status=204), 0.0123)
    line = json.dumps(rec)
    assert rec["principal"] == "uid:0" and rec["route"] == "/containers/{id}/start"
    assert rec["object"] == "abc" and rec["status"] == 204 and rec["decision"] == "allow"
    assert rec["rule"] == "root reads" and rec["body_keys"] == ["Env", "Image"]
    assert rec["duration_ms"] == pytest.approx(12.3)
    assert "c2VjcmV0" not in line and "hunter2" not in line


def test_cli_tls_config_like_docker(tmp_path, monkeypatch):
    """`dockyard --tls...`: flags, DOCKYARD_/DOCKER_ environment, ~/.docker defaults."""
    from dockyard_cli.client import Client, ClientError, TLSConfig

    for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKYARD_TLS_VERIFY", "DOCKYARD_CERT_PATH",
                 "DOCKER_HOST", "DOCKYARD_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert TLSConfig.resolve() is None
    assert Client("tcp://127.0.0.1").addr == ("127.0.0.1", 2375)
    home = tmp_path / "home" / ".docker"
    certs.init(tmp_path / "pki")
    home.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (home / name).write_bytes((tmp_path / "pki" / "client" / name).read_bytes())
    cfg = TLSConfig.resolve(tlsverify=True)
    assert cfg == TLSConfig(True, str(home / "ca.pem"), str(home / "cert.pem"), str(home / "key.pem"))
    assert cfg.context().verify_mode == ssl.CERT_REQUIRED
    c = Client("tcp://127.0.0.1", tls=cfg)
    assert c.addr == ("127.0.0.1", 2376)  # docker's TLS port by default
    assert Client("unix:///x.sock", tls=cfg).tls is None  # TLS never applies to the Unix socket
    # DOCKER_CERT_PATH, overridden by DOCKYARD_CERT_PATH; DOCKER_TLS_VERIFY turns verification on
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "pki" / "client"))
    assert TLSConfig.resolve().cacert == str(tmp_path / "pki" / "client" / "ca.pem")
    monkeypatch.setenv("DOCKYARD_CERT_PATH", str(tmp_path / "pki"))
    assert TLSConfig.resolve().cacert == str(tmp_path / "pki" / "ca.pem")
    # --tls alone: encrypted, the daemon is not verified
    monkeypatch.delenv("DOCKER_TLS_VERIFY")
    assert TLSConfig.resolve(tls=True).context().verify_mode == ssl.CERT_NONE
    # errors are ClientErrors the CLI prints, not tracebacks
    with pytest.raises(ClientError, match="needs the daemon's CA"):
        TLSConfig(True).context()
    with pytest.raises(ClientError, match="cannot load CA certificate"):
        TLSConfig(True, str(tmp_path / "missing.pem")).context()
    with pytest.raises(ClientError, match="needs its key"):
        TLSConfig(False, None, str(home / "cert.pem"), None).context()


def test_audit_file_rotates_without_splitting_lines(tmp_path):
    from dockyard_auth_tls.audit import AuditFile

    f = AuditFile(tmp_path / "audit.log", max_bytes=100, backups=2)
    for i in range(12):
        f.write(json.dumps({"n": i, "pad": "x" * 20}).encode() + b"\n")
    f.close()
    files = [tmp_path / "audit.log", tmp_path / "audit.log.1", tmp_path / "audit.log.2"]
    assert all(p.exists() for p in files) and not (tmp_path / "audit.log.3").exists()
    assert all(p.stat().st_size <= 100 and stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    kept = [json.loads(line)["n"] for p in reversed(files) for line in p.read_text().splitlines()]
    assert kept == list(range(12 - len(kept), 12))  # the newest records, in order


@pytest.mark.parametrize("host_config, privileged", [
    ({}, False),
    ({"Privileged": False, "CapAdd": [], "NetworkMode": "bridge", "SecurityOpt": ["no-new-privileges"]}, False),
    ({"Privileged": True}, True), ({"Privileged": 1}, True), ({"Privileged": "false"}, True),
    ({"CapAdd": ["NET_RAW"]}, False),  # in Docker's default set: no privilege beyond a default container
    ({"CapAdd": ["NET_ADMIN"]}, True), ({"CapAdd": "ALL"}, True), ({"MaskedPaths": []}, True),
    ({"ReadonlyPaths": ["/proc/sys"]}, True), ({"Devices": [{"PathOnHost": "/dev/kmsg"}]}, True),
    ({"DeviceCgroupRules": ["c *:* rwm"]}, True), ({"PidMode": "host"}, True), ({"NetworkMode": "HOST"}, True),
    ({"UsernsMode": "host"}, True), ({"IpcMode": "host"}, True), ({"SecurityOpt": ["seccomp=unconfined"]}, True),
    ({"SecurityOpt": ["apparmor:unconfined"]}, True), ({"SecurityOpt": ["label:disable"]}, True),
    ({"SecurityOpt": "seccomp=unconfined"}, True), ({"SecurityOpt": [3]}, True),
])
def test_privileged_false_covers_host_privileges(host_config, privileged):
    from dockyard_auth_tls.policy import host_privileges

    assert host_privileges(host_config) is privileged


def test_privilege_keys_name_privileges(tmp_path):
    """The rule keys name privileges; legacy keys map onto them; paths compare after realpath."""
    from dockyard.containers.effective import Privileges

    (tmp_path / "srv").mkdir()
    (tmp_path / "link").symlink_to("/")
    p = _policy(tmp_path, f'''
[[rule]]
name = "ci"
cn = "alice"
privileged = false
capabilities = ["net_admin"]
host_paths = ["{tmp_path}/srv"]
action = "allow"
''')
    route, path = "/containers/{id}/start", "/containers/x/start"

    def ok(**kw):
        return p.decide("POST", route, path, None, ALICE, privileges=Privileges(**kw)).allow

    assert ok() and ok(capabilities=frozenset({"CAP_NET_ADMIN"}))
    assert ok(host_paths=(str(tmp_path / "srv"),), ) and ok(host_paths=(str(tmp_path / "srv" / "a"),))
    assert not ok(host_paths=(str(tmp_path / "srvx"),)) and not ok(host_paths=("/",))
    assert not ok(capabilities=frozenset({"CAP_SYS_ADMIN"})) and not ok(privileged=True)
    assert not ok(host_namespaces=frozenset({"net"})) and not ok(unconfined=frozenset({"systempaths"}))
    assert not ok(devices=("/dev/kmsg",))
    create = "/containers/create"
    for bind in ("/etc/../:/h", "//:/h", f"{tmp_path}/link:/h", f"{tmp_path}/srv/../..:/h", "/etc/:/h"):
        body = {"Image": "busybox", "HostConfig": {"Binds": [bind]}}
        assert not p.decide("POST", create, create, body, ALICE).allow, bind
    body = {"Image": "busybox", "HostConfig": {"Binds": [f"{tmp_path}//srv/./:/h"], "CapAdd": ["NET_ADMIN"]}}
    assert p.decide("POST", create, create, body, ALICE).allow
    with pytest.raises(PolicyError, match="unknown namespace"):
        _policy(tmp_path, "[[rule]]\naction = 'allow'\nhost_namespaces = ['network']")
    with pytest.raises(PolicyError, match="conflict"):
        _policy(tmp_path, "[[rule]]\naction = 'allow'\nbinds = false\nhost_paths = ['/srv']")
