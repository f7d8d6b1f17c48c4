"""The typed request model (core/api/models.py, core/api/schema.py): Docker's v1.44 types with
Go's decoding rules. Issue 14, finding 9: wrongly typed JSON was stored or became a 500."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from dockyard.api import models
from dockyard.api.models import (CommitRequest, ContainerCreateRequest, ContainerUpdateRequest, ExecConfig,
                                 ExecStartConfig, NetworkConnectRequest, NetworkCreateRequest,
                                 NetworkDisconnectRequest, VolumeCreateRequest)
from dockyard.errors import InvalidArgument

BODIES = json.loads((Path(__file__).parent / "data" / "docker_cli_28_bodies.json").read_text())
TYPES = {
    "container_create_plain": ContainerCreateRequest, "container_create_rich": ContainerCreateRequest,
    "container_create_tty_privileged": ContainerCreateRequest, "container_update": ContainerUpdateRequest,
    "exec_create": ExecConfig, "exec_start": ExecStartConfig, "network_create": NetworkCreateRequest,
    "network_connect": NetworkConnectRequest, "network_disconnect": NetworkDisconnectRequest,
    "volume_create": VolumeCreateRequest,
}

# (type, body, the field the 400 must name): every body of finding 9, and a few more
WRONG = [
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"CpusetCpus": 0}}, "HostConfig.CpusetCpus"),
    (ContainerUpdateRequest, {"CpusetCpus": 0}, "CpusetCpus"),
    (ContainerUpdateRequest, False, "ContainerUpdateRequest"),
    (ContainerUpdateRequest, 0, "ContainerUpdateRequest"),
    (ContainerUpdateRequest, "AAA", "ContainerUpdateRequest"),
    (ContainerUpdateRequest, [1, 2], "ContainerUpdateRequest"),
    (ContainerUpdateRequest, {"RestartPolicy": "AAA"}, "RestartPolicy"),
    (ContainerUpdateRequest, {"RestartPolicy": {"MaximumRetryCount": "x"}}, "RestartPolicy.MaximumRetryCount"),
    (ContainerUpdateRequest, {"RestartPolicy": {"Name": ["x"]}}, "RestartPolicy.Name"),
    (ExecConfig, {"Cmd": ["true"], "ConsoleSize": [[1], 0]}, "ConsoleSize[0]"),
    (ExecStartConfig, {"ConsoleSize": [[1], 0]}, "ConsoleSize[0]"),
    (NetworkCreateRequest, {"Name": "n", "Driver": ["bridge"]}, "Driver"),
    (NetworkCreateRequest, {"Name": "n", "IPAM": []}, "IPAM"),
    (NetworkCreateRequest, {"Name": "n", "IPAM": {"Config": {}}}, "IPAM.Config"),
    (NetworkConnectRequest, {"Container": "c", "EndpointConfig": []}, "EndpointConfig"),
    (NetworkDisconnectRequest, {"Container": 1}, "Container"),
    (VolumeCreateRequest, {"Name": 1}, "Name"),
    (VolumeCreateRequest, {"Labels": {"a": 1}}, "Labels"),
    (ContainerCreateRequest, {"Image": "busybox", "Env": "A=b"}, "Env"),
    (ContainerCreateRequest, {"Image": "busybox", "Cmd": [1]}, "Cmd"),
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"Memory": "1g"}}, "HostConfig.Memory"),
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"Memory": 1.5}}, "HostConfig.Memory"),
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"Memory": 1 << 63}}, "HostConfig.Memory"),
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"Mounts": [{"Type": 1}]}}, "HostConfig.Mounts[0].Type"),
    (ContainerCreateRequest, {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": {}}}},
     "HostConfig.PortBindings"),
    (ContainerCreateRequest, {"Image": "busybox", "ExposedPorts": {"80/tcp": 1}}, "ExposedPorts"),
    (ContainerCreateRequest, {"Image": "busybox", "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": "a"}}}},
     "NetworkingConfig.EndpointsConfig"),
    (CommitRequest, {"Cmd": {"a": 1}}, "Cmd"),
]


@pytest.mark.parametrize(("typ", "body", "field"), WRONG, ids=[f"{t.__name__}-{f}-{i}" for i, (t, _, f) in enumerate(WRONG)])
def test_wrong_type_is_400_naming_the_field(typ, body, field):
    with pytest.raises(InvalidArgument) as err:
        models.decode(json.dumps(body), typ)
    assert err.value.status == 400
    assert field in str(err.value), str(err.value)
    assert str(err.value).startswith("json: "), str(err.value)


def test_go_wording():
    with pytest.raises(InvalidArgument) as err:
        models.decode(b'{"HostConfig": {"CpusetCpus": 0}}', ContainerCreateRequest)
    assert str(err.value) == \
        "json: cannot unmarshal number into Go struct field HostConfig.CpusetCpus of type string"


@pytest.mark.parametrize("raw", [b"{", b'{"a":}', b"nul", b'{"Image": "x"} trailing'])
def test_malformed_json_is_400(raw):
    with pytest.raises(InvalidArgument):
        models.decode(raw, ContainerCreateRequest)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_docker_cli_28_bodies_decode_and_round_trip(name):
    """What the docker CLI 28 sends decodes, and re-encodes to the same JSON minus the fields
    v1.44 does not know (GwPriority, API 1.48): nothing the client sent changes type."""
    body = BODIES[name]
    req = models.decode(json.dumps(body), TYPES[name])
    again = models.plain(req)

    def strip(value, known):
        if isinstance(value, dict) and isinstance(known, dict):
            return {k: strip(v, known[k]) for k, v in value.items() if k in known}
        if isinstance(value, list) and isinstance(known, list):
            return [strip(v, k) for v, k in zip(value, known)]
        return value

    assert again == strip(body, again)
    dropped = json.dumps(body).count('"GwPriority"')
    assert json.dumps(again).count('"GwPriority"') == 0 and (dropped == 0 or name.startswith(("container_create", "network_connect")))


def test_typed_values():
    req = models.decode(json.dumps(BODIES["container_create_rich"]), ContainerCreateRequest)
    assert req.Image == "busybox"
    assert req.HostConfig.RestartPolicy.Name == "on-failure"
    assert req.HostConfig.RestartPolicy.MaximumRetryCount == 3
    assert req.HostConfig.Memory == 100 * 1024 * 1024
    assert req.HostConfig.CpusetCpus == "0"


def test_absent_fields_stay_absent():
    """Re-encoding gives back only what the client sent: defaults stay the services' business."""
    assert models.plain(models.decode(b'{"Image": "busybox"}', ContainerCreateRequest)) == {"Image": "busybox"}
    assert models.plain(models.decode(b"{}", ContainerUpdateRequest)) == {}


def test_null_is_go_zero_value():
    """Go leaves the zero value for null: "" / 0 / false for scalars, nil for pointers, slices, maps."""
    req = models.decode(b'{"Image": null, "Env": null, "StopTimeout": null, "HostConfig": {"CpusetCpus": null,'
                        b'"Memory": null, "Privileged": null, "PidsLimit": null, "MemorySwappiness": null,'
                        b'"Binds": null, "RestartPolicy": null}}', ContainerCreateRequest)
    assert models.plain(req) == {"Image": "", "Env": None, "StopTimeout": None, "HostConfig": {
        "CpusetCpus": "", "Memory": 0, "Privileged": False, "PidsLimit": None, "MemorySwappiness": None,
        "Binds": None, "RestartPolicy": None}}


@pytest.mark.parametrize("raw", [b"null", b"", b"  "])
def test_null_or_empty_body_is_the_empty_object(raw):
    assert models.plain(models.decode(raw, ContainerUpdateRequest)) == {}


def test_unknown_fields_are_ignored():
    req = models.decode(b'{"Image": "busybox", "Bogus": [1], "HostConfig": {"Nope": {"x": 1}}}', ContainerCreateRequest)
    assert models.plain(req) == {"Image": "busybox", "HostConfig": {}}


def test_strslice_takes_a_string_or_a_list():
    assert models.decode(b'{"Cmd": "sh"}', ContainerCreateRequest).Cmd == "sh"
    assert models.decode(b'{"Entrypoint": ["sh", "-c"]}', ContainerCreateRequest).Entrypoint == ["sh", "-c"]


def test_struct_values_are_objects_of_any_content():
    """ExposedPorts/Volumes values are Go's struct{}: any object, content ignored."""
    req = models.decode(b'{"ExposedPorts": {"80/tcp": {"x": 1}}, "Volumes": {"/v": {}}}', ContainerCreateRequest)
    assert models.plain(req) == {"ExposedPorts": {"80/tcp": {}}, "Volumes": {"/v": {}}}


def test_render_inspect_conforms_old_records():
    """A record written by an old daemon (CpusetCpus: 0, MemorySwappiness: -1, nulls where
    Docker answers [] / {}) renders as the spec's types: the Go client can unmarshal it."""
    data = {"Id": "x", "Name": "/x", "RestartCount": "2", "State": {"Running": 1, "Pid": "12"},
            "HostConfig": {"CpusetCpus": 0, "MemorySwappiness": -1, "Devices": None, "Ulimits": None, "Tmpfs": None,
                           "MaskedPaths": None, "ReadonlyPaths": None, "RestartPolicy": "always", "Privileged": False,
                           "Binds": "oops"},
            "GraphDriver": {"Name": "overlay2", "Data": None}, "Mounts": None, "Config": {"Cmd": "sh", "Env": None}}
    out = models.render_inspect(data)
    hc = out["HostConfig"]
    assert hc["CpusetCpus"] == "0"
    assert hc["MemorySwappiness"] is None
    assert hc["Devices"] == [] and hc["Ulimits"] == []
    assert "Tmpfs" not in hc
    assert "/proc/kcore" in hc["MaskedPaths"] and "/proc/sys" in hc["ReadonlyPaths"]
    assert hc["RestartPolicy"] is None and hc["Binds"] is None
    assert out["RestartCount"] == 2 and out["State"] == {"Running": True, "Pid": 12}
    assert out["GraphDriver"]["Data"] == {} and out["Mounts"] == []
    assert out["Config"]["Cmd"] == ["sh"] or out["Config"]["Cmd"] == "sh"
    # and the result decodes strictly into the spec's response type
    msgspec.convert(out, models.schema.ContainerInspectResponse)


def test_render_inspect_privileged_keeps_null_paths():
    out = models.render_inspect({"HostConfig": {"Privileged": True, "MaskedPaths": None}})
    assert out["HostConfig"]["MaskedPaths"] is None


@pytest.mark.parametrize(("value", "expected"), [("5", 5), ("", None), (None, None)])
def test_query_int(value, expected):
    class R:
        query = {} if value is None else {"t": value}
    assert models.query_int(R(), "t") == expected


@pytest.mark.parametrize("value", ["x", "1.5", "99999999999999999999"])
def test_query_int_rejects(value):
    class R:
        query = {"t": value}
    with pytest.raises(InvalidArgument, match="t"):
        models.query_int(R(), "t")


def test_schema_module_is_what_the_generator_makes_of_dockers_spec():
    """core/api/schema.py is generated (scripts/gen_models.py) from the vendored v1.44 spec."""
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parent.parent.parent
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_models", root / "scripts" / "gen_models.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    source = yaml.load((root / "tests" / "fuzz" / "docker-engine-api-v1.44.yaml").read_text(),
                       Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert gen.Gen(source).run() == (root / "core" / "api" / "schema.py").read_text()


def test_null_map_values_are_go_nil():
    """map[string][]PortBinding, map[string]*EndpointSettings, map[string]struct{}: a null value
    is Go's nil (accepted); a null where a string is expected in a map stays a 400."""
    req = models.decode(b'{"ExposedPorts": {"80/tcp": null}, "HostConfig": {"PortBindings": {"80/tcp": null}},'
                        b'"NetworkingConfig": {"EndpointsConfig": {"bridge": null}}}', ContainerCreateRequest)
    assert req.HostConfig.PortBindings == {"80/tcp": None}
    with pytest.raises(InvalidArgument, match="Labels"):
        models.decode(b'{"Labels": {"a": null}}', ContainerCreateRequest)
