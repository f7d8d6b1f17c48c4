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
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess, free_port, wait_for
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
    """Start a daemon; DaemonProcess waits for its Unix socket, this also for its TCP ports."""
    d = DaemonProcess(base / "d", *flags)
    daemons.append(d)
    d.start()
    for flag, value in zip(flags, flags[1:]):
        if flag == "-H" and value.startswith(("tcp://", "tls://")):
            port = int(value.rsplit(":", 1)[1])
            wait_for(lambda port=port: _accepts(port))
    return d


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False


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
    status, body = unix_request(d, "POST", "/v1.44/containers/create?name=denied",
                                {"Image": "busybox", "Cmd": ["true"]})
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
    wait_for(lambda: "keeping the previous policy" in d.log())  # the reload is logged once done
    assert str(tmp_path / "policy.toml") in d.log()
    assert d.proc.poll() is None
    assert unix_request(d, "GET", "/info")[0] == 200  # old policy still in force
    assert unix_request(d, "POST", "/containers/create", {"Image": "busybox"})[0] == 403
    (tmp_path / "policy.toml").write_text('[[rule]]\nmethods = ["HEAD"]\naction = "allow"\n'
                                          '[[rule]]\nroutes = ["/_ping"]\naction = "allow"\n')
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "policy reloaded" in d.log())
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


# -- refused at the handshake; real clients over TLS ----------------------------------------


@pytest.fixture(scope="module")
def foreign_pki(tmp_path_factory) -> Path:
    """A second CA with its own client certificate: the daemon must not trust it."""
    d = tmp_path_factory.mktemp("foreign")
    certs.init(d, clients=["mallory"])
    return d


def expired_client(pki: Path, dest: Path) -> Path:
    """A client certificate signed by the right CA, expired yesterday."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key((pki / "ca-key.pem").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    key = certs._key()
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30)).not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    dest.mkdir(parents=True, exist_ok=True)
    certs._write_key(dest / "key.pem", key)
    certs._write_cert(dest / "cert.pem", cert)
    certs._write_cert(dest / "ca.pem", ca_cert)
    return dest


def tls_answer(port: int, cacert: Path, client_dir: Path | None) -> bytes:
    """What comes back for a GET /_ping with this client certificate: b"" when the TLS
    handshake was refused (the server's alert ends the connection before any HTTP)."""
    ctx = ssl.create_default_context(cafile=str(cacert))
    if client_dir is not None:
        # the client side must not judge its own certificate: only the daemon decides
        ctx.load_cert_chain(str(client_dir / "cert.pem"), str(client_dir / "key.pem"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
                t.sendall(b"GET /_ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                return t.recv(100)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return b""


def test_foreign_ca_and_expired_client_certificates_are_refused_at_the_handshake(pki, foreign_pki, tmp_path,
                                                                                 daemons):
    port = free_port()
    conf = write_config(tmp_path, audit=True)
    d = start(daemons, tmp_path, *tls_flags(pki, port), "--config-file", str(conf))
    expired = expired_client(pki, tmp_path / "expired")
    assert tls_answer(port, pki / "ca.pem", pki / "client").startswith(b"HTTP/1.1 200")
    for bad in (foreign_pki / "client", expired):
        assert tls_answer(port, pki / "ca.pem", bad) == b""
        # the docker CLI fails too, with a TLS error and no server answer
        r = subprocess.run(["docker", "--tlsverify", "--tlscacert", str(pki / "ca.pem"), "--tlscert",
                            str(bad / "cert.pem"), "--tlskey", str(bad / "key.pem"),
                            "-H", f"tcp://127.0.0.1:{port}", "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, timeout=60, env=docker_env(tmp_path))
        assert r.returncode != 0 and not r.stdout.strip(), r.stdout  # Go reports the TLS 1.3 alert as EOF
        # ... and the daemon keeps serving the others, on TLS and on the Unix socket
        assert tls_answer(port, pki / "ca.pem", pki / "clients" / "bob").startswith(b"HTTP/1.1 200")
        assert unix_request(d, "GET", "/_ping")[0] == 200
    assert d.proc.poll() is None
    # refused handshakes never reached the API: no audit record names mallory or came over TLS
    # without a principal
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert {r["principal"] for r in records if r["kind"] == "tls"} == {"alice", "bob"}  # not mallory, expired


def test_docker_run_over_tls_with_env_and_flags(pki, tmp_path, daemons, busybox_tar, monkeypatch):
    port = free_port()
    d = start(daemons, tmp_path, *tls_flags(pki, port))
    d.load(busybox_tar)
    url = f"tcp://127.0.0.1:{port}"
    client = pki / "client"
    r = subprocess.run(["docker", "--tlsverify", "--tlscacert", str(client / "ca.pem"), "--tlscert",
                        str(client / "cert.pem"), "--tlskey", str(client / "key.pem"), "-H", url,
                        "run", "--rm", "busybox", "echo", "hi"],
                       capture_output=True, text=True, timeout=120, env=docker_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    # DOCKER_HOST/DOCKER_TLS_VERIFY/DOCKER_CERT_PATH, as `dockyard tls init` prints them
    r = subprocess.run(["docker", "run", "--rm", "-i", "busybox", "cat"], input="over tls\n",
                       capture_output=True, text=True, timeout=120,
                       env=docker_env(tmp_path, DOCKER_HOST=url, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(client)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "over tls\n"
    # exec, hijacked over TLS too, with stdin and its half-close
    tls_env = docker_env(tmp_path, DOCKER_HOST=url, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(client))
    r = subprocess.run(["docker", "run", "-d", "--name", "tlsexec", "busybox", "sleep", "60"],
                       capture_output=True, text=True, timeout=120, env=tls_env)
    assert r.returncode == 0, r.stderr
    try:
        r = subprocess.run(["docker", "exec", "-i", "tlsexec", "sh", "-c", "cat; echo done"], input="in\n",
                           capture_output=True, text=True, timeout=120, env=tls_env)
        assert r.returncode == 0 and r.stdout == "in\ndone\n", (r.stdout, r.stderr)
    finally:
        subprocess.run(["docker", "rm", "-f", "tlsexec"], capture_output=True, timeout=120, env=tls_env)
    # docker-py's TLSConfig runs a container too (requests must not swap in another CA bundle)
    import docker

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    tls = docker.tls.TLSConfig(client_cert=(str(client / "cert.pem"), str(client / "key.pem")),
                               ca_cert=str(client / "ca.pem"), verify=True)
    dc = docker.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls)
    try:
        # (run() itself returns no output for a log driver other than json-file/journald/local)
        c = dc.containers.run("busybox", ["echo", "py"], detach=True)
        assert c.wait()["StatusCode"] == 0
        assert c.logs() == b"py\n"
        c.remove()
    finally:
        dc.close()
    assert unix_request(d, "GET", "/containers/json?all=1") == (200, [])


def dockyard_cli(*args: str, env: dict[str, str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run([sys.executable, "-m", "dockyard_cli", *args], capture_output=True, text=True,
                          timeout=120, env=env, input=input)


def test_dockyard_cli_over_tls(pki, tmp_path, daemons, busybox_tar):
    """Our own CLI: the docker flags and environment, ~/.docker by default, hijacked streams."""
    port = free_port()
    d = start(daemons, tmp_path, *tls_flags(pki, port))
    d.load(busybox_tar)
    url = f"tcp://127.0.0.1:{port}"
    client = pki / "client"
    home = tmp_path / "home"
    env = {**docker_env(tmp_path), "HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("DOCKYARD_")}
    flags = ["--tlsverify", "--tlscacert", str(client / "ca.pem"), "--tlscert", str(client / "cert.pem"),
             "--tlskey", str(client / "key.pem")]
    r = dockyard_cli("-H", url, *flags, "version", env=env)
    assert r.returncode == 0, r.stderr
    # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, and the DOCKYARD_ names
    for prefix in ("DOCKER", "DOCKYARD"):
        r = dockyard_cli("ps", env={**env, f"{prefix}_HOST": url, f"{prefix}_TLS_VERIFY": "1",
                                    f"{prefix}_CERT_PATH": str(client)})
        assert r.returncode == 0, r.stderr
    # ~/.docker is the default certificate directory, as for docker
    (home / ".docker").mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (home / ".docker" / name).write_bytes((client / name).read_bytes())
    r = dockyard_cli("-H", url, "--tlsverify", "run", "--rm", "busybox", "echo", "hi over tls", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi over tls\n"
    # stdin through the hijacked TLS connection, then its half-close, then the output
    r = dockyard_cli("-H", url, "--tlsverify", "run", "--rm", "-i", "busybox", "cat", env=env, input="echoed\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "echoed\n"
    # without a client certificate the daemon refuses; with the wrong CA the CLI refuses the daemon
    r = dockyard_cli("-H", url, "--tlsverify", "--tlscacert", str(client / "ca.pem"), "--tlscert", "",
                     "ps", env={**env, "HOME": str(tmp_path / "nohome")})
    assert r.returncode != 0
    other = tmp_path / "other-ca"
    certs.init(other)
    r = dockyard_cli("-H", url, "--tlsverify", "--tlscacert", str(other / "ca.pem"), "ps", env=env)
    assert r.returncode != 0 and "certificate_verify_failed" in r.stderr.lower(), r.stderr
    # --tls alone does not check the daemon, but still presents the client certificate
    r = dockyard_cli("-H", url, "--tls", "--tlscacert", str(other / "ca.pem"), "ps", env=env)
    assert r.returncode == 0, r.stderr
    assert unix_request(d, "GET", "/containers/json?all=1") == (200, [])


STREAMS_POLICY = '''
[[rule]]
name = "no streams"
routes = ["/containers/{id}/attach", "/exec/{id}/start", "/containers/{id}/logs", "/events"]
action = "deny"
message = "streams are off for you"

[[rule]]
name = "root"
uid = 0
action = "allow"
'''


def test_hijacked_and_streaming_requests_are_denied(tmp_path, daemons, busybox_tar):
    conf = write_config(tmp_path, STREAMS_POLICY, audit=True)
    d = start(daemons, tmp_path, "--config-file", str(conf))
    d.load(busybox_tar)
    r = d.docker("run", "-d", "--name", "streamer", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        for args in (["attach", "streamer"], ["exec", "streamer", "echo", "no"], ["logs", "-f", "streamer"],
                     ["logs", "streamer"],
                     ["events", "--since", "0", "--until", "1"], ["run", "--rm", "busybox", "echo", "no"]):
            r = d.docker(*args, timeout=60)
            assert r.returncode != 0, (args, r.stdout)
            # docker attach prints only the status of a refused upgrade
            assert b"streams are off for you" in r.stderr or b"received 403" in r.stderr, (args, r.stderr)
            assert b"no" not in r.stdout
        # the raw hijack, as docker sends it: 403 and no 101
        conn = UnixHTTPConnection(str(d.socket), timeout=30)
        conn.request("POST", "/v1.41/containers/streamer/attach?stream=1&stdout=1",
                     headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        resp = conn.getresponse()
        assert resp.status == 403 and json.loads(resp.read())["message"] == "streams are off for you"
        conn.close()
    finally:
        assert d.docker("rm", "-f", "streamer").returncode == 0
    # `docker run` above created a container before its attach was refused: the CLI removes it
    records = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    denied = {r["route"] for r in records if r["decision"] == "deny"}
    assert {"/containers/{id}/attach", "/exec/{id}/start", "/containers/{id}/logs", "/events"} <= denied
    assert all(r["status"] == 403 and r["rule"] == "no streams" for r in records if r["decision"] == "deny")


PRIVILEGED_POLICY = '''
[[rule]]
name = "root"
uid = 0
action = "allow"

[[rule]]
name = "1001 runs unprivileged busybox"
uid = 1001
images = ["busybox"]
privileged = false
binds = false
action = "allow"

[[rule]]
name = "1001 nothing else"
uid = 1001
action = "deny"
message = "uid 1001 may only run unprivileged busybox containers"
'''


@pytest.fixture
def shared_dir():
    """A directory uid 1001 can traverse (pytest's tmp dirs are root-only)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="dockyard-authz-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_privileged_denied_to_uid_1001_on_the_unix_socket_and_allowed_to_root(shared_dir, daemons, busybox_tar):
    import grp

    group = grp.getgrgid(100).gr_name  # "users": the socket's group, and uid 1001's for this test
    conf = write_config(shared_dir / "conf", PRIVILEGED_POLICY, audit=True)
    d = start(daemons, shared_dir, "--config-file", str(conf), "-G", group)
    d.load(busybox_tar)
    assert stat_mode(d.socket) == 0o660 and d.socket.stat().st_gid == 100
    config_dir = shared_dir / "docker-1001"
    config_dir.mkdir()
    os.chown(config_dir, 1001, 100)
    env = {**docker_env(shared_dir), "DOCKER_CONFIG": str(config_dir), "HOME": str(config_dir)}

    def as_1001(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["setpriv", "--reuid", "1001", "--regid", "100", "--clear-groups",
                               "docker", "-H", d.url, *args], capture_output=True, text=True, timeout=120, env=env)

    r = as_1001("run", "--privileged", "--name", "p1001", "busybox", "true")
    assert r.returncode != 0
    assert "uid 1001 may only run unprivileged busybox containers" in r.stderr, r.stderr
    assert d.docker("ps", "-aq").stdout == b""  # nothing was created
    r = as_1001("run", "-v", "/:/host", "busybox", "true")
    assert r.returncode != 0 and "uid 1001 may only" in r.stderr
    assert d.docker("ps", "-aq").stdout == b""
    # the policy is not deny-all: uid 1001 runs an unprivileged container ...
    r = as_1001("run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    # ... and root runs the privileged one
    r = d.docker("run", "--rm", "--privileged", "busybox", "echo", "root")
    assert r.returncode == 0 and r.stdout == b"root\n", r.stderr
    assert d.docker("ps", "-aq").stdout == b""
    records = [json.loads(line) for line in (shared_dir / "conf" / "audit.log").read_text().splitlines()]
    denied = [r for r in records if r["decision"] == "deny"]
    assert denied and {(r["principal"], r["uid"], r["route"], r["status"]) for r in denied} == {
        ("uid:1001", 1001, "/containers/create", 403)}
    assert any(r["principal"] == "uid:0" and r["route"] == "/containers/create" and r["status"] == 201
               for r in records)


def test_audit_one_line_per_request_no_credentials_and_rotation(tmp_path, daemons):
    base = tmp_path
    (base / "dockyardd.toml").write_text(f'[plugins.auth_tls]\naudit_log = "{base / "audit.log"}"\n'
                                         'audit_max_size = "2k"\naudit_backups = 30\n')
    d = start(daemons, base, "--config-file", str(base / "dockyardd.toml"))
    secret = "eyJwYXNzd29yZCI6Imh1bnRlcjIifQ=="
    for i in range(40):
        assert unix_request(d, "GET", f"/v1.41/version?i={i}", headers={"X-Registry-Auth": secret})[0] == 200
    unix_request(d, "POST", "/auth", {"username": "u", "password": "hunter2", "serveraddress": "127.0.0.1:1"},
                 headers={"X-Registry-Auth": secret})
    unix_request(d, "GET", "/containers/nope/json", headers={"Authorization": "Bearer tok3n"})
    files = sorted(base.glob("audit.log*"))
    assert len(files) > 3 and not (base / "audit.log.31").exists()  # rotated, backups kept
    text = "".join(f.read_text() for f in files)
    for leaked in (secret, "hunter2", "tok3n"):
        assert leaked not in text
    records = [json.loads(line) for line in text.splitlines()]  # every line parses
    assert all(f.stat().st_size <= 2048 for f in files)
    versions = [r for r in records if r["route"] == "/version"]
    assert len(versions) == 40  # one line per request, none lost across rotations
    for r in versions:
        assert r["principal"] == "uid:0" and r["status"] == 200 and r["kind"] == "unix"
        assert {"time", "method", "decision", "rule", "duration_ms", "uid", "pid"} <= set(r)
    auth = [r for r in records if r["route"] == "/auth"]
    assert len(auth) == 1 and auth[0]["body_keys"] == ["password", "serveraddress", "username"]


def test_info_lists_the_authorization_plugins(tmp_path, daemons):
    """auth_tls is listed when a policy is configured, not when its authorization hooks are
    inactive under the config (no policy), as dockerd lists only the authz plugins configured."""
    conf = write_config(tmp_path / "policy", policy='[[rule]]\nname = "all"\naction = "allow"\n')
    d = start(daemons, tmp_path / "policy", "--config-file", str(conf))
    status, info = unix_request(d, "GET", "/info")
    assert status == 200 and "auth_tls" in info["Plugins"]["Authorization"]
    r = d.docker("info", "--format", "{{json .Plugins.Authorization}}")
    assert r.returncode == 0 and "auth_tls" in json.loads(r.stdout)
    bare = start(daemons, tmp_path / "bare")
    status, info = unix_request(bare, "GET", "/info")
    assert status == 200 and "auth_tls" not in (info["Plugins"]["Authorization"] or [])
    r = bare.docker("info", "--format", "{{json .Plugins.Authorization}}")
    assert r.returncode == 0 and "auth_tls" not in (json.loads(r.stdout) or [])


def test_plain_tcp_off_loopback_needs_the_insecure_flag_and_then_warns(pki, tmp_path, daemons):
    port = free_port()
    refused = DaemonProcess(tmp_path / "refused", "-H", f"tcp://0.0.0.0:{port}")
    r = subprocess.run(refused.command(), capture_output=True, timeout=30)
    assert r.returncode == 1 and b"refusing to serve plain TCP" in r.stderr
    d = start(daemons, tmp_path / "insecure", "-H", f"tcp://0.0.0.0:{port}", "--insecure-tcp")
    assert "serving the API WITHOUT TLS on 0.0.0.0" in d.log()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/_ping")
    assert conn.getresponse().status == 200
    conn.close()
    # with --tlsverify the same address is fine without the flag, and nothing is plain
    port2 = free_port()
    start(daemons, tmp_path / "tls", "-H", f"tcp://0.0.0.0:{port2}", "--tlsverify", "--tlscacert",
          str(pki / "ca.pem"), "--tlscert", str(pki / "cert.pem"), "--tlskey", str(pki / "key.pem"))
    assert https_request(port2, pki, "alice", "GET", "/_ping")[0] == 200


def test_docker_save_over_tls_is_the_archive_saved_over_unix(pki, tmp_path, daemons, busybox_tar):
    """Over TLS the bytes on the socket are not the body's: save goes through the event loop
    (not straight to the socket), with its Content-Length, and gives the same archive."""
    port = free_port()
    d = start(daemons, tmp_path, *tls_flags(pki, port))
    d.load(busybox_tar)
    client = pki / "client"
    tls_env = docker_env(tmp_path, DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_TLS_VERIFY="1",
                         DOCKER_CERT_PATH=str(client))
    for _ in range(2):  # the second one from the layer tar cache (overlay), sent without sendfile
        r = subprocess.run(["docker", "save", "-o", str(tmp_path / "tls.tar"), "busybox"],
                           capture_output=True, text=True, timeout=120, env=tls_env)
        assert r.returncode == 0, r.stderr
        r = d.docker("save", "-o", str(tmp_path / "unix.tar"), "busybox", timeout=120)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "tls.tar").read_bytes() == (tmp_path / "unix.tar").read_bytes()
