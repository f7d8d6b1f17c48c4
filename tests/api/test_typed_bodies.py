"""Wrongly typed request bodies against a real dockyardd (issue 14, finding 9): a 400 naming the
field, never a 500, never stored; inspect answers the spec's types, even for a record an older
daemon wrote with a wrong type."""

from __future__ import annotations

import json

import msgspec
import pytest

from dockyard.api import schema
from dockyard_cli.client import UnixHTTPConnection

pytestmark = pytest.mark.privileged  # containers need the real storage driver (root)


def call(daemon, method, path, body=None, raw=None):
    conn = UnixHTTPConnection(str(daemon.socket), timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    out = r.read()
    conn.close()
    try:
        return r.status, json.loads(out) if out else None
    except ValueError:
        return r.status, out


@pytest.fixture
def daemon(busybox_daemon):
    before = {c["Id"] for c in call(busybox_daemon, "GET", "/containers/json?all=1")[1]}
    nets = {n["Id"] for n in call(busybox_daemon, "GET", "/networks")[1]}
    yield busybox_daemon
    for c in call(busybox_daemon, "GET", "/containers/json?all=1")[1]:
        if c["Id"] not in before:
            call(busybox_daemon, "DELETE", f"/containers/{c['Id']}?force=1&v=1")
    for n in call(busybox_daemon, "GET", "/networks")[1]:
        if n["Id"] not in nets:
            call(busybox_daemon, "DELETE", f"/networks/{n['Id']}")


@pytest.fixture
def container(daemon):
    status, body = call(daemon, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"]})
    assert status == 201, body
    return body["Id"]


def _ids(daemon):
    return {c["Id"] for c in call(daemon, "GET", "/containers/json?all=1")[1]}


def test_create_with_numeric_cpuset_is_400_and_creates_nothing(daemon):
    before = _ids(daemon)
    status, body = call(daemon, "POST", "/containers/create?name=typed-cpuset",
                        {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"CpusetCpus": 0}})
    assert status == 400, body
    assert body["message"] == \
        "json: cannot unmarshal number into Go struct field HostConfig.CpusetCpus of type string"
    assert _ids(daemon) == before
    assert call(daemon, "GET", "/containers/typed-cpuset/json")[0] == 404


@pytest.mark.parametrize(("body", "field"), [
    (False, "ContainerUpdateRequest"), (0, "ContainerUpdateRequest"), ("AAA", "ContainerUpdateRequest"),
    ([1, {"a": 2}], "ContainerUpdateRequest"), ({"RestartPolicy": "AAA"}, "RestartPolicy"),
    ({"RestartPolicy": {"MaximumRetryCount": "x"}}, "RestartPolicy.MaximumRetryCount"),
    ({"RestartPolicy": {"Name": ["x"]}}, "RestartPolicy.Name"), ({"CpusetCpus": 0}, "CpusetCpus"),
])
def test_update_wrong_types_are_400(daemon, container, body, field):
    status, answer = call(daemon, "POST", f"/containers/{container}/update", body)
    assert status == 400, answer
    assert field in answer["message"]
    _, inspect = call(daemon, "GET", f"/containers/{container}/json")
    assert inspect["HostConfig"].get("CpusetCpus", "") == ""  # nothing stored
    assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "no"


def test_update_null_body_is_an_empty_update(daemon, container):
    """Go decodes ``null`` into the zero value: nothing to change, 200 (never a 500)."""
    status, answer = call(daemon, "POST", f"/containers/{container}/update", raw=b"null")
    assert status == 200, answer


def test_exec_console_size_of_wrong_type_is_400(daemon, container):
    status, answer = call(daemon, "POST", f"/containers/{container}/exec", {"Cmd": ["true"], "ConsoleSize": [[1], 0]})
    assert status == 400, answer
    assert "ConsoleSize" in answer["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"Name": "typed-net", "Driver": ["bridge"]}, "Driver"),
    ({"Name": "typed-net", "IPAM": []}, "IPAM"),
    ({"Name": "typed-net", "Labels": ["a"]}, "Labels"),
])
def test_network_create_wrong_types_are_400(daemon, body, field):
    status, answer = call(daemon, "POST", "/networks/create", body)
    assert status == 400, answer
    assert field in answer["message"]
    assert call(daemon, "GET", "/networks/typed-net")[0] == 404


def test_network_connect_and_volume_create_wrong_types_are_400(daemon, container):
    status, answer = call(daemon, "POST", "/networks/bridge/connect", {"Container": container, "EndpointConfig": [1]})
    assert status == 400 and "EndpointConfig" in answer["message"], answer
    status, answer = call(daemon, "POST", "/volumes/create", {"Name": "typed-vol", "DriverOpts": {"o": 1}})
    assert status == 400 and "DriverOpts" in answer["message"], answer
    assert call(daemon, "GET", "/volumes/typed-vol")[0] == 404


def test_wait_condition_and_resize_are_checked_before_answering(daemon, container):
    status, answer = call(daemon, "POST", f"/containers/{container}/wait?condition=bogus")
    assert status == 400, answer
    status, answer = call(daemon, "POST", f"/containers/{container}/resize?h=99999999999&w=1")
    assert status == 400, answer


def test_inspect_decodes_into_the_spec_types(daemon):
    """The inspect answer of a normal container (created by the docker CLI) has the spec's types;
    Docker's [] / {} / null where Docker sends them."""
    out = daemon.docker("create", "--name", "typed-inspect", "--memory", "64m", "-e", "A=b", "busybox", "sleep", "1")
    assert out.returncode == 0, out.stderr
    status, data = call(daemon, "GET", "/containers/typed-inspect/json")
    assert status == 200
    msgspec.convert(data, schema.ContainerInspectResponse)  # strict: any wrong type raises
    hc = data["HostConfig"]
    assert hc["MemorySwappiness"] is None  # the CLI's -1 means unset: Docker answers null
    assert isinstance(hc["MaskedPaths"], list) and hc["MaskedPaths"]
    assert data["GraphDriver"]["Data"] is not None
    assert isinstance(data["Mounts"], list)


def test_old_record_with_a_wrong_type_still_inspects(make_daemon, busybox_tar):
    """A record an older daemon stored with ``CpusetCpus: 0``: the Go CLI can still inspect it,
    also after a restart."""
    d = make_daemon()
    d.load(busybox_tar)
    out = d.docker("create", "--name", "old", "busybox", "sleep", "1")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.decode().strip()
    d.stop()
    record = d.data_root / "containers" / cid / "config.v2.json"
    data = json.loads(record.read_text())
    data["host_config"]["CpusetCpus"] = 0
    data["host_config"]["MemorySwappiness"] = -1
    data["host_config"]["Ulimits"] = None
    record.write_text(json.dumps(data))
    d.start()
    out = d.docker("inspect", "old")
    assert out.returncode == 0, out.stderr
    hc = json.loads(out.stdout)[0]["HostConfig"]
    assert hc["CpusetCpus"] == "0" and hc["MemorySwappiness"] is None and hc["Ulimits"] == []
    out = d.docker("inspect", "--format", "{{.HostConfig.CpusetCpus}}", "old")
    assert out.returncode == 0 and out.stdout.strip() == b"0", out.stderr


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_archive_path_with_a_nul_byte_is_400(daemon, container, method):
    """Found by the spec fuzz: ``path=/etc%00x`` was a 500 (ValueError: embedded null byte)."""
    status, _ = call(daemon, method, f"/containers/{container}/archive?path=/etc%00x")
    assert status == 400
