"""Driver contracts as code (issue 16, part 1): every driver kind is a base Protocol plus optional
capability Protocols, checked once when a driver loads; core asks the record, and a request that
needs a capability the driver lacks is a 400 naming the driver."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from importlib import metadata
from pathlib import Path

import pytest

from dockyard import plugins as P
from dockyard.containers.runtimes import RuntimeSet
from dockyard.drivers import contracts
from dockyard.errors import PluginError
from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.fake_runtime import FakeRuntime
from dockyard.testing.fake_storage import FakeStorage

KINDS = [k for k in P.GROUPS if k != "hooks"]


#: this project's distributions: their drivers declare their capabilities (third parties may
#: leave it to the loader, which then gives them what their methods satisfy)
OURS = {"dockyard", "dockyard-storage-overlay", "dockyard-net-bridge", "dockyard-cgroups", "dockyard-oci-runtime",
        "dockyard-auth-tls"}


def _installed() -> list[tuple[str, str, type]]:
    out = []
    for kind in KINDS:
        for ep in metadata.entry_points(group=P.GROUPS[kind]):
            if ep.dist is not None and ep.dist.name in OURS:
                out.append((kind, ep.name, ep.load()))
    return out


@pytest.mark.parametrize("kind,name,cls", _installed(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_installed_driver_declares_exactly_what_it_implements(kind, name, cls):
    """Built-ins, plugins and fakes: the base contract is whole, and the declared capabilities
    are exactly those whose Protocols the class satisfies (promises, which no method shows,
    are declared only)."""
    contract = contracts.CONTRACTS[kind]
    assert contracts._missing(cls, contract.base) == [], f"{kind} {name} misses base members"
    declared = contracts.declared(cls)
    assert declared is not None, f"{kind} driver {name} does not declare its capabilities"
    promises = {c for c, proto in contract.capabilities.items() if proto is None}
    assert declared - promises == contracts.satisfied(kind, cls), f"{kind} {name}"
    assert declared <= set(contract.capabilities)


def test_the_capabilities_core_relies_on():
    caps = {(k, n): contracts.declared(cls) for k, n, cls in _installed()}
    assert {"exec", "tty", "stdin", "stdin-detach", "exec-stdin-detach"} <= caps[("runtime", "native")]
    assert "exec" not in caps[("runtime", "fake")]
    if ("storage", "overlay") in caps:
        assert {"staging", "reproducible-export", "layer-info", "storage-opts"} <= caps[("storage", "overlay")]
    if ("network", "bridge") in caps:
        assert caps[("network", "bridge")] == {"validate", "forget", "ports"}
    if ("runtime", "oci") in caps:
        assert "runtime-names" in caps[("runtime", "oci")]


def _load(monkeypatch, tmp_path, kind, cls):
    monkeypatch.setattr(P, "entry_point_names", lambda group: ["thirdparty"])
    monkeypatch.setattr(P, "_load", lambda group, names: [types.SimpleNamespace(name=n, plugin=cls) for n in names])
    return P.Plugins().load_driver(kind, "thirdparty", root=tmp_path, state=tmp_path)


def _driver_without(kind: str, missing: str) -> type:
    """A third-party driver class of its own with every base member of ``kind`` but one."""
    members: dict = {"name": "thirdparty", "__init__": lambda self, config, root, state: None}
    for m in contracts.protocol_members(contracts.CONTRACTS[kind].base):
        if m not in members and m != missing:
            members[m] = lambda self, *a, **kw: None
    members.pop(missing, None)
    return type(f"No_{missing}", (), members)


@pytest.mark.parametrize("kind,missing", [("runtime", "exit_status"), ("storage", "close"),
                                          ("network", "reconcile"), ("volume", "size"), ("cgroups", "adopt"),
                                          ("transport", "site")])
def test_a_driver_missing_a_base_method_fails_to_load_naming_it(monkeypatch, tmp_path, kind, missing):
    cls = _driver_without(kind, missing)
    with pytest.raises(PluginError) as err:
        _load(monkeypatch, tmp_path, kind, cls)
    msg = str(err.value)
    assert f"{kind} driver 'thirdparty'" in msg and cls.__name__ in msg
    assert f"{contracts.CONTRACTS[kind].base.__name__} contract: missing {missing}" in msg


def test_a_declared_capability_must_be_implemented(monkeypatch, tmp_path):
    class Claims(FakeRuntime):
        capabilities = frozenset({"tty", "exec"})

    with pytest.raises(PluginError, match=r"declares the 'exec' capability \(ExecRuntime\) but does not implement "
                                          r"exec, exec_wait"):
        _load(monkeypatch, tmp_path, "runtime", Claims)

    class Unknown(FakeStorage):
        capabilities = frozenset({"teleport"})

    with pytest.raises(PluginError, match="declares unknown storage capabilities teleport"):
        _load(monkeypatch, tmp_path, "storage", Unknown)


def test_an_undeclared_driver_gets_what_its_methods_satisfy(monkeypatch, tmp_path):
    class Undeclared(FakeRuntime):
        capabilities = None  # type: ignore[assignment]

    driver = _load(monkeypatch, tmp_path, "runtime", Undeclared)
    assert contracts.record("runtime", driver).capabilities == {"tty", "stdin"}


def test_runtime_set_refuses_what_the_containers_runtime_cannot_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_FAKE_RUNTIME_CAPABILITIES", "stdin")
    rs = RuntimeSet(FakeRuntime(root=tmp_path / "r", state=tmp_path / "s"))
    assert rs.record("c1").capabilities == {"stdin"}
    with pytest.raises(contracts.UnsupportedCapability, match="runtime fake does not support resizing a TTY") as err:
        rs.resize("c1", 10, 10)
    assert err.value.status == 400
    with pytest.raises(contracts.UnsupportedCapability, match="runtime fake does not support exec"):
        rs.exec_logs("c1", "e1")
    rs.stdin_detach("c1")  # no capability: nothing to tell the runtime, no error


def test_the_runtime_contract_does_not_import_the_native_runtime():
    code = ("import sys, dockyard.drivers.runtime, dockyard.drivers.contracts;"
            "print([m for m in sys.modules if m.startswith('dockyard.runtime')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- a real daemon: capabilities reported, unsupported ones refused with a 400 naming the runtime --


@pytest.fixture
def fake_daemon(tmp_path: Path, busybox_tar: Path):
    made = []

    def make(capabilities: str | None = None) -> DaemonProcess:
        base = tmp_path / f"d{len(made)}"
        base.mkdir()
        (base / "d.toml").write_text('runtime = "fake"\nstorage-driver = "fake"\ncgroups = "fake"\n')
        env = {"DOCKYARD_FAKE_RUNTIME_CAPABILITIES": capabilities} if capabilities is not None else None
        d = DaemonProcess(base, "--config-file", str(base / "d.toml"), env=env)
        made.append(d)
        d.start()
        d.load(busybox_tar)
        return d

    yield make
    for d in made:
        d.finish()


def _post(d: DaemonProcess, path: str, body: dict | None = None) -> tuple[int, dict]:
    from dockyard_cli.client import UnixHTTPConnection

    conn = UnixHTTPConnection(str(d.socket), timeout=30)
    conn.request("POST", path, body=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, (json.loads(data) if data else {})


def _running_tty_container(d: DaemonProcess) -> str:
    status, body = _post(d, "/containers/create", {"Image": "busybox", "Cmd": ["sleep", "60"], "Tty": True,
                                                    "OpenStdin": True})
    assert status == 201, body
    cid = body["Id"]
    status, body = _post(d, f"/containers/{cid}/start")
    assert status == 204, body
    return cid


def test_resize_and_exec_on_a_runtime_without_them_are_400_naming_it(fake_daemon):
    d = fake_daemon("stdin")  # the fake runtime without its TTY capability (and it has no exec)
    cid = _running_tty_container(d)
    try:
        status, body = _post(d, f"/containers/{cid}/resize?h=40&w=100")
        assert status == 400, body  # the old code answered 200 and did nothing
        assert "runtime fake does not support resizing a TTY" in body["message"]
        status, body = _post(d, f"/containers/{cid}/exec", {"Cmd": ["true"]})
        assert status == 400, body  # the old code: 501 without naming the runtime
        assert "runtime fake does not support exec" in body["message"]
    finally:
        _post(d, f"/containers/{cid}/kill")


def test_capabilities_are_reported_and_used(fake_daemon):
    d = fake_daemon()
    info = d.docker_client().info()
    plugins = {(p["Group"], p["Name"]): p for p in info["DockyardPlugins"]}
    assert plugins[("dockyard.runtime", "fake")]["Capabilities"] == ["stdin", "tty"]
    assert plugins[("dockyard.storage", "fake")]["Capabilities"] == ["id-mapping"]
    assert "Capabilities" not in plugins[("dockyard.hooks", "builtin_errors")]  # a hook module, no driver
    assert info["DefaultRuntime"] == "fake" and "fake" in info["Runtimes"]  # Docker's shape is kept
    out = d.cli("plugins").stdout.decode()
    assert "CAPABILITIES" in out.splitlines()[0]
    assert any(line.split()[:2] == ["dockyard.runtime", "fake"] and line.split()[-1] == "stdin,tty"
               for line in out.splitlines())
    cid = _running_tty_container(d)
    try:
        status, body = _post(d, f"/containers/{cid}/resize?h=40&w=100")
        assert status == 200, body  # the fake runtime has a TTY: the resize is done
    finally:
        _post(d, f"/containers/{cid}/kill")


@pytest.mark.privileged
def test_overlay_layer_info_and_storage_opts_are_its_capabilities(busybox_daemon):
    """GraphDriver.Data comes from the ``layer-info`` capability (no driver had the attribute
    core read before: Data was always null); StorageOpt is the driver's to refuse."""
    client = busybox_daemon.docker_client()
    try:
        if client.info()["Driver"] != "overlay2":
            pytest.skip("the session daemon does not run overlay2")
        graph = client.api.inspect_image("busybox")["GraphDriver"]
        assert graph["Name"] == "overlay2"
        data = graph["Data"]
        assert set(data) >= {"MergedDir", "UpperDir", "WorkDir"} and Path(data["UpperDir"]).is_dir()
        r = busybox_daemon.docker("create", "--storage-opt", "size=1G", "busybox", "true")
        assert r.returncode != 0
        assert b"--storage-opt is supported only for overlay over xfs with 'pquota' mount option" in r.stderr
    finally:
        client.close()
