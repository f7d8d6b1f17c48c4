"""Fuzzing the authorization path with hypothesis: malformed JSON, odd paths, percent-encoding,
version prefixes, nested and huge bodies, wrong content types, chunked bodies.

The policy allows reads and *unprivileged, bind-free* containers only. Whatever
is sent, the daemon never answers 500, and nothing it refused to allow ever exists afterwards:
no container is privileged or has a bind mount, whatever the request looked like."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dockyard.identity import Identity
from dockyard.testing.daemon import DaemonProcess
from dockyard_auth_tls.policy import UNREADABLE, Policy

POLICY = '''
[[rule]]
name = "reads"
methods = ["GET", "HEAD"]
action = "allow"

[[rule]]
name = "load images"
methods = ["POST"]
routes = ["/images/load"]
action = "allow"

[[rule]]
name = "clean up"
methods = ["DELETE"]
routes = ["/containers/{id}"]
action = "allow"

[[rule]]
name = "unprivileged"
methods = ["POST"]
routes = ["/containers/create", "/containers/{id}/exec"]
privileged = false
binds = false
action = "allow"
'''
# No image condition on purpose: with one, a body the policy failed to see would be denied for
# its missing Image anyway, and the fuzz could not catch a policy that sees no body.

ROOT = Identity(name="uid:0", kind="unix", uid=0, gid=0, pid=1)

# -- strategies ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
truthy = st.sampled_from([True, 1, "true", "false", "0", [0], {"a": 1}, 1.5, -1])
falsy = st.sampled_from([False, 0, None, "", [], {}])
mount = st.fixed_dictionaries({"Type": st.sampled_from(["bind", "volume", "tmpfs", "BIND", "", None, 7]),
                               "Source": st.sampled_from(["/", "/etc", "vol"]), "Target": st.just("/mnt")})
host_config = st.one_of(
    st.none(), json_values,
    st.fixed_dictionaries({}, optional={
        "Privileged": truthy | falsy,
        "Binds": st.one_of(falsy, st.just(["/:/host"]), st.just("/:/host"), json_values),
        "Mounts": st.one_of(falsy, st.lists(mount | json_values, max_size=3), json_values),
        "NetworkMode": st.sampled_from(["none", "host", "default", "HOST"]),
        "PidMode": st.sampled_from(["", "host", "Host", "container:x"]),
        "CapAdd": st.sampled_from([None, [], ["SYS_ADMIN"], ["ALL"], "ALL", [1]]),
        "Devices": st.sampled_from([None, [], [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]]),
        "SecurityOpt": st.sampled_from([None, [], ["seccomp=unconfined"], ["label:disable"], ["no-new-privileges"],
                                        "seccomp=unconfined"]),
        "VolumesFrom": st.sampled_from([None, [], ["other"]]),
    }),
)
create_body = st.fixed_dictionaries(
    {"Image": st.sampled_from(["busybox", "busybox:latest", "alpine", "", 5, None]),
     "Cmd": st.sampled_from([["true"], "true", None, 3])},
    optional={"HostConfig": host_config, "Privileged": truthy | falsy, "hostconfig": host_config,
              "Tty": st.booleans()},
)


def deep(n: int) -> bytes:
    return b'{"HostConfig":' * n + b"{}" + b"}" * n


raw_bodies = st.one_of(
    create_body.map(lambda b: json.dumps(b).encode()),
    json_values.map(lambda b: json.dumps(b).encode()),
    st.binary(max_size=64),
    st.sampled_from([b"", b"{", b"null", b"[]", b'"x"', b"{\"HostConfig\": {\"Privileged\": true}",
                     b"\xff\xfe{}", deep(5000), b"[" * 100000,
                     b'{"Image":"busybox","Cmd":["true"],"HostConfig":{"Privileged":true,"Privileged":false}}',
                     b'{"Image":"busybox","Cmd":["true"],"HostConfig":{"Privileged":false,"Privileged":true}}',
                     b'\xef\xbb\xbf{"Image":"busybox","Cmd":["true"],"HostConfig":{"Privileged":true}}']),
)
content_types = st.sampled_from([None, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
                                 "text/plain", "application/x-tar", "application/octet-stream",
                                 "application/vnd.docker+json", "multipart/form-data; boundary=x", "", "json"])
versions = st.sampled_from(["", "/v1.41", "/v1.44", "/v1.12", "/v9.99", "/V1.41", "/v1.41/", "/v1", "/v1.41.0",
                            "/vx", "//v1.41"])
bases = st.sampled_from(["/containers/create", "/containers/x/exec", "/containers/x/start", "/info", "/_ping",
                         "/containers/x/attach", "/exec/x/start", "/images/load", "/containers/../containers/create",
                         "/containers/./create", "/containers//create", "/containers/create/", "/containers%2Fcreate",
                         "/%63ontainers/create", "/containers/create/..", "/containers/create%00", "/"])
methods = st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "post", "BREW"])
queries = st.sampled_from(["", "?name=fz", "?name=", "?a=%ff", "?privileged=1", "?name=%2e%2e", "?" + "x" * 3000])


@st.composite
def paths(draw) -> str:
    path = draw(versions) + draw(bases)
    # percent-encode some characters of the path (what a client could do to confuse matching)
    chars = list(path)
    for i in draw(st.lists(st.integers(0, max(len(chars) - 1, 0)), max_size=3)):
        if chars and chars[i] != "%":
            chars[i] = quote(chars[i], safe="") if chars[i] != "/" else "%2F"
            if chars[i] == chars[i].lower() and len(chars[i]) == 1:
                chars[i] = f"%{ord(chars[i]):02X}"
    return "".join(chars) + draw(queries)


# -- the daemon ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, busybox_tar) -> Any:
    base = tmp_path_factory.mktemp("fuzz")
    (base / "policy.toml").write_text(POLICY)
    (base / "dockyardd.toml").write_text(f'[plugins.auth_tls]\npolicy = "{base / "policy.toml"}"\n'
                                         f'audit_log = "{base / "audit.log"}"\n')
    d = DaemonProcess(base / "d", "-s", "fake", "--runtime", "fake", "--config-file", str(base / "dockyardd.toml"))
    d.start()
    d.load(busybox_tar)
    d.audit_path = base / "audit.log"
    yield d
    d.stop()


def send(d: DaemonProcess, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(str(d.socket))
        s.sendall(head + body)
        r = http.client.HTTPResponse(s, method="HEAD" if head.startswith(b"HEAD ") else None)
        r.begin()
        data = r.read()
        return r.status, data


def build(method: str, path: str, body: bytes, content_type: str | None, chunked: bool) -> tuple[bytes, bytes]:
    lines = [f"{method} {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), payload


def containers(d: DaemonProcess) -> list[dict]:
    status, data = send(d, *build("GET", "/containers/json?all=1", b"", None, False))
    assert status == 200
    out = []
    for c in json.loads(data):
        status, data = send(d, *build("GET", f"/containers/{c['Id']}/json", b"", None, False))
        assert status == 200
        out.append(json.loads(data))
    return out


def check_nothing_forbidden_exists(d: DaemonProcess) -> None:
    for c in containers(d):
        hc = c["HostConfig"]
        assert not hc.get("Privileged"), f"privileged container created: {c['Id']}"
        assert not hc.get("CapAdd") and not hc.get("Devices"), hc
        assert all(str(hc.get(k) or "").lower() != "host" for k in ("PidMode", "NetworkMode", "IpcMode")), hc
        assert not any("unconfined" in o or "disable" in o for o in hc.get("SecurityOpt") or []), hc
        assert not hc.get("Binds") and not hc.get("VolumesFrom"), f"container with binds created: {c['Id']}"
        assert all(m.get("Type") != "bind" for m in c.get("Mounts") or []), c["Mounts"]
        status, _ = send(d, *build("DELETE", f"/containers/{c['Id']}?force=1", b"", None, False))
        assert status == 204


@settings(max_examples=250, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(method=methods, path=paths(), body=raw_bodies, content_type=content_types, chunked=st.booleans())
def test_fuzz_authorization_never_500_and_never_allows_by_error(fuzzed, method, path, body, content_type, chunked):
    head, payload = build(method, path, body, content_type, chunked)
    status, data = send(fuzzed, head, payload)
    event(f"status {status}")
    assert status < 500, (status, data[:300])
    if status == 403:
        assert "message" in json.loads(data)
    check_nothing_forbidden_exists(fuzzed)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(version=st.sampled_from(["", "/v1.41", "/v1.44"]), body=create_body, content_type=content_types,
       chunked=st.booleans())
def test_fuzz_create_bodies(fuzzed, version, body, content_type, chunked):
    """Well-formed create requests with every shape of HostConfig: the ones that pass are clean."""
    status, data = send(fuzzed, *build("POST", f"{version}/containers/create", json.dumps(body).encode(),
                                       content_type, chunked))
    event(f"status {status}")
    assert status < 500, (status, data[:300])
    if _privileged(body) or (isinstance(body.get("HostConfig"), dict) and body["HostConfig"].get("Binds")):
        assert status != 201, data
    check_nothing_forbidden_exists(fuzzed)


def test_fuzz_left_a_parseable_audit_trail(fuzzed):
    send(fuzzed, *build("POST", "/containers/create", b'{"Image":"busybox","HostConfig":{"Privileged":1}}',
                        "text/plain", False))
    # JSON lines are split on "\n" only: str.splitlines() also splits on U+0085/U+2028/\x1c...,
    # which a valid JSON string may hold raw (a fuzzed body key did)
    records = [json.loads(line) for line in fuzzed.audit_path.read_text().split("\n") if line]
    assert records and all({"principal", "decision", "rule", "status", "duration_ms"} <= set(r) for r in records)
    assert records[-1]["decision"] == "deny" and records[-1]["status"] == 403
    assert not [r for r in records if r["status"] >= 500]


@pytest.mark.parametrize("content_type", ["text/plain", None, "application/x-www-form-urlencoded"])
def test_json_sent_as_another_content_type_is_still_checked(fuzzed, content_type):
    """The handler parses any body as JSON, so the policy must see it whatever its type."""
    body = b'{"Image":"busybox","Cmd":["true"],"HostConfig":{"Privileged":true}}'
    status, data = send(fuzzed, *build("POST", "/v1.41/containers/create", body, content_type, False))
    assert status == 403, data
    check_nothing_forbidden_exists(fuzzed)


def test_binary_upload_types_are_not_parsed_as_json_by_handlers(fuzzed):
    body = b'{"Image":"busybox","Cmd":["true"],"HostConfig":{"Privileged":true}}'
    status, data = send(fuzzed, *build("POST", "/containers/create", body, "application/x-tar", False))
    assert status == 400 and b"must be 'application/json'" in data, data  # the handler will not parse it
    body = b'{"Cmd":["sh"],"Privileged":true}'
    status, data = send(fuzzed, *build("POST", "/containers/x/exec", body, "application/x-tar", False))
    assert status == 400 and b"must be 'application/json'" in data, data
    check_nothing_forbidden_exists(fuzzed)


def test_truthy_privileged_values_are_privileged(fuzzed):
    for value in (1, "yes", [1], {"a": 1}):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Privileged": value}}).encode()
        status, data = send(fuzzed, *build("POST", "/containers/create", body, "application/json", False))
        assert status in (400, 403), (value, status, data)
    check_nothing_forbidden_exists(fuzzed)


def test_a_body_too_large_to_inspect_is_refused(fuzzed):
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "Labels": {"x": "y" * (5 << 20)}}).encode()
    for chunked in (False, True):
        status, data = send(fuzzed, *build("POST", "/containers/create", body, "application/json", chunked))
        assert status == 413, data
    check_nothing_forbidden_exists(fuzzed)


def test_an_unprivileged_busybox_container_is_allowed(fuzzed):
    """The policy is not simply deny-all: the fuzz above could otherwise not fail."""
    body = json.dumps({"Image": "busybox", "Cmd": ["true"], "HostConfig": {"Privileged": False}}).encode()
    status, data = send(fuzzed, *build("POST", "/containers/create", body, "application/json", False))
    assert status == 201, data
    assert len(containers(fuzzed)) == 1
    check_nothing_forbidden_exists(fuzzed)


# -- the policy alone, many more cases -------------------------------------------------------


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Policy:
    path = tmp_path_factory.mktemp("policy") / "policy.toml"
    path.write_text(POLICY)
    return Policy.load(path)


def _privileged(body: Any) -> bool:
    """What the daemon would do with this body (configure.normalize_host_config, execs)."""
    if not isinstance(body, dict):
        return False
    hc = body.get("HostConfig")
    return bool(isinstance(hc, dict) and hc.get("Privileged"))


@settings(max_examples=2000, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(create_body, json_values, st.just(UNREADABLE)), version=versions,
       route=st.sampled_from(["/containers/create", "/containers/{id}/exec", "/info", "/images/load"]),
       name=st.sampled_from(["x", "..", ".", "", "%2e", "a/b", "create"]), method=methods)
def test_policy_decide_never_raises_and_denies_privileged(policy, body, version, route, name, method):
    """``path`` is what the request said, ``route`` the template the router matched it to."""
    decision = policy.decide(method, route, version + route.replace("{id}", name), body, ROOT)
    if method == "POST" and route == "/containers/create" and (_privileged(body) or body is UNREADABLE):
        assert not decision.allow, (body, decision)
    if method == "POST" and route == "/containers/{id}/exec" and isinstance(body, dict) and body.get("Privileged"):
        assert not decision.allow
    if decision.allow and method == "POST" and route == "/containers/create":
        assert body is None or isinstance(body, dict)
