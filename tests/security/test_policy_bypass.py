"""The auth_tls policy decides on the effective container (issue 13, finding 3).

A real daemon with the auth_tls plugin and a policy: root may do anything; uid 1001 has the
classic restricted rule (``privileged = false``, ``binds = false``); uid 1002 may bind one host
directory (``host_paths``). The restricted users speak through the real docker CLI on the Unix
socket (``setpriv`` to their uid), or raw HTTP for what the CLI cannot send. Each road to a
host privilege that once got through is tried here and must be a 403 that leaves nothing
behind; the same requests by root still work, and so does a plain ``docker run`` by uid 1001:

a) ``--security-opt systempaths=unconfined`` (the CLI sends empty ``MaskedPaths`` and
   ``ReadonlyPaths``; /proc/sys writable was a host-root ``core_pattern``);
b) a ``local`` volume with ``type=none,o=bind,device=<host dir>``: inline with ``--mount``,
   created beforehand (by the user, or by root and then mounted by the user);
c) ``docker build --network host`` (and ``--network container:X`` where X has the host's);
d) ``--network/--pid/--ipc container:X`` where X has the host's namespace, directly or through
   another container; also a container that joins X only at ``docker start`` (X replaced);
e) a root-made privileged or host-network container, started, restarted, exec'd or attached
   by uid 1001, an exec created privileged by root and started by uid 1001, ``docker cp``
   through a root-made container's bind of a host directory;
f) path tricks against an allowed host path prefix: ``..``, ``//``, ``/./``, trailing
   slashes, symlinks to ``/`` (outside and inside the allowed directory), a sibling sharing
   the prefix's spelling, relative sources: resolved on the host before matching.

TLS with bad certificates (foreign CA, expired, none): ``test_policy_tls_certs.py``.
Attacks point at a marker directory the test made; nothing on the host is touched.
"""

from __future__ import annotations

import grp
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess

pytestmark = pytest.mark.privileged

DENIED = "may not have host privileges"
GROUP_GID = 100  # "users": the socket's group; the restricted uids' group

POLICY = '''
[[rule]]
name = "root"
uid = 0
action = "allow"

[[rule]]
name = "1001 unprivileged"
uid = 1001
privileged = false
binds = false
action = "allow"

[[rule]]
name = "1002 one host dir"
uid = 1002
privileged = false
host_paths = ["{allowed}"]
action = "allow"

[[rule]]
name = "restricted: nothing else"
uid = [1001, 1002]
action = "deny"
message = "uid 1001/1002 may not have host privileges"
'''

RAW = r"""
import json, socket, sys, http.client
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
method, path, body = sys.argv[2], sys.argv[3], sys.argv[4]
c = C("localhost", timeout=60)
c.request(method, path, body=body or None, headers={"Content-Type": "application/json"} if body else {})
r = c.getresponse()
print(json.dumps({"status": r.status, "body": r.read().decode(errors="replace")}))
"""


class Env:
    def __init__(self, d: DaemonProcess, base: Path, marker_dir: Path, allowed: Path) -> None:
        self.d, self.base, self.marker_dir, self.allowed = d, base, marker_dir, allowed
        self.config_dirs: dict[int, Path] = {}

    def as_user(self, uid: int, *args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cfg = self.config_dirs.get(uid)
        if cfg is None:
            cfg = self.config_dirs[uid] = self.base / f"docker-{uid}"
            cfg.mkdir()
            os.chown(cfg, uid, GROUP_GID)
        e = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        e.update({"DOCKER_CONFIG": str(cfg), "HOME": str(cfg), **(env or {})})
        return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(GROUP_GID), "--clear-groups",
                               "docker", "-H", self.d.url, *args], capture_output=True, text=True,
                              timeout=timeout, env=e, cwd=str(cfg))

    def raw(self, uid: int, method: str, path: str, body: dict | None = None) -> tuple[int, str]:
        out = subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(GROUP_GID), "--clear-groups",
                              sys.executable, "-c", RAW, str(self.d.socket), method, path,
                              json.dumps(body) if body is not None else ""],
                             capture_output=True, text=True, timeout=120, check=True)
        answer = json.loads(out.stdout)
        return answer["status"], answer["body"]

    def root(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        return self.d.docker(*args, timeout=timeout)

    def ids(self, kind: str = "ps") -> set[str]:
        cmd = {"ps": ["ps", "-aq", "--no-trunc"], "volume": ["volume", "ls", "-q"],
               "image": ["images", "-q", "--no-trunc"]}[kind]
        r = self.root(*cmd)
        assert r.returncode == 0, r.stderr
        return set(r.stdout.decode().split())

    def denied(self, r: subprocess.CompletedProcess[str]) -> None:
        assert r.returncode != 0, (r.stdout, r.stderr)
        assert DENIED in r.stderr, r.stderr

    def cleanup(self) -> None:
        ids = self.ids()
        if ids:
            self.root("rm", "-f", *ids)


@pytest.fixture(scope="module")
def env(busybox_tar):
    base = Path(tempfile.mkdtemp(prefix="dockyard-policy-"))
    base.chmod(0o711)  # uid 1001/1002 reach the socket; pytest's tmp dirs are root-only
    marker_dir = base / "hostdata"
    marker_dir.mkdir()
    (marker_dir / "marker").write_text("host secret\n")
    allowed = base / "allowed"
    allowed.mkdir()
    allowed.chmod(0o755)
    (allowed / "ok").write_text("allowed\n")
    (allowed / "inner-link").symlink_to("/")  # inside the allowed prefix, pointing out of it
    (base / "allowedx").mkdir()  # shares the allowed prefix's spelling
    (base / "link").symlink_to("/")
    conf = base / "conf"
    conf.mkdir()
    (conf / "policy.toml").write_text(POLICY.format(allowed=allowed))
    (conf / "dockyardd.toml").write_text(f'[plugins.auth_tls]\npolicy = "{conf / "policy.toml"}"\n')
    group = grp.getgrgid(GROUP_GID).gr_name
    d = DaemonProcess(base / "d", "--config-file", str(conf / "dockyardd.toml"), "-G", group)
    d.start()
    try:
        d.load(busybox_tar)
        yield Env(d, base, marker_dir, allowed)
    finally:
        try:
            ids = set(d.docker("ps", "-aq").stdout.decode().split())
            if ids:
                d.docker("rm", "-f", *ids)
            vols = set(d.docker("volume", "ls", "-q").stdout.decode().split())
            if vols:
                d.docker("volume", "rm", "-f", *vols)
        finally:
            d.stop()
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def e(env):
    yield env
    env.cleanup()
    vols = env.ids("volume")
    if vols:
        env.root("volume", "rm", "-f", *vols)


def _name() -> str:
    return "pb-" + secrets.token_hex(4)


def test_the_restricted_user_still_runs_a_plain_container(e):
    r = e.as_user(1001, "run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    assert e.ids() == set()


def test_unmasked_system_paths_are_refused(e):
    """a) systempaths=unconfined: the CLI sends empty MaskedPaths/ReadonlyPaths only."""
    before = e.ids()
    e.denied(e.as_user(1001, "run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "true"))
    e.denied(e.as_user(1001, "create", "--security-opt", "systempaths=unconfined", "busybox", "true"))
    # the raw API, each list alone, or a list that keeps some defaults
    for hc in ({"MaskedPaths": []}, {"ReadonlyPaths": []}, {"MaskedPaths": ["/proc/kcore"]},
               {"ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"]}):
        status, body = e.raw(1001, "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
        assert status == 403 and DENIED in body, (hc, status, body)
    for opt in ("seccomp=unconfined", "apparmor=unconfined", "label=disable", "label:type:spc_t"):
        e.denied(e.as_user(1001, "run", "--rm", "--security-opt", opt, "busybox", "true"))
    assert e.ids() == before
    # root may: /proc/sys is writable there (only looked at, not written)
    r = e.root("run", "--rm", "--security-opt", "systempaths=unconfined", "busybox",
               "sh", "-c", "grep -c ' /proc/sys .*rw' /proc/mounts || true")
    assert r.returncode == 0, r.stderr


def test_a_volume_that_binds_a_host_path_is_a_host_path(e):
    """b) the local driver's o=bind: inline, created by the user, created by root and used."""
    device = str(e.marker_dir)
    before_vols = e.ids("volume")
    mount = f"type=volume,dst=/h,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device={device}"
    e.denied(e.as_user(1001, "run", "--rm", "--mount", mount, "busybox", "cat", "/h/marker"))
    e.denied(e.as_user(1001, "run", "--rm", "--mount", mount.replace("dst=/h", "src=named,dst=/h"),
                       "busybox", "cat", "/h/marker"))
    for opts in (["--opt", "type=none", "--opt", "o=bind", "--opt", f"device={device}"],
                 ["--opt", "type=tmpfs", "--opt", "o=bind", "--opt", f"device={device}"],
                 ["--opt", "type=ext4", "--opt", "device=/dev/loop0"],
                 ["--opt", "type=overlay", "--opt", "device=overlay", "--opt", f"o=lowerdir={device}"]):
        e.denied(e.as_user(1001, "volume", "create", *opts, "uservol"))
    assert e.ids("volume") == before_vols and e.ids() == set()
    # root makes one; uid 1001 cannot mount it, by -v or --mount
    r = e.root("volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", f"device={device}", "hostvol")
    assert r.returncode == 0, r.stderr
    e.denied(e.as_user(1001, "run", "--rm", "-v", "hostvol:/h", "busybox", "cat", "/h/marker"))
    e.denied(e.as_user(1001, "run", "--rm", "--mount", "type=volume,src=hostvol,dst=/h", "busybox", "cat", "/h/marker"))
    assert e.ids() == set()
    # a tmpfs volume and a plain named volume are no host path
    r = e.as_user(1001, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m", "tvol")
    assert r.returncode == 0, r.stderr
    r = e.as_user(1001, "run", "--rm", "-v", "tvol:/t", "-v", "plainvol:/p", "busybox", "true")
    assert r.returncode == 0, r.stderr
    # root reads the marker through the bind volume
    r = e.root("run", "--rm", "-v", "hostvol:/h", "busybox", "cat", "/h/marker")
    assert r.returncode == 0 and r.stdout == b"host secret\n", r.stderr


def test_a_build_with_the_host_network_is_refused(e):
    """c) the build's network mode is its RUN containers'."""
    dockerfile = "FROM busybox\nRUN echo built > /built\n"
    before = e.ids("image")
    e.denied(_build(e, 1001, dockerfile, "--network", "host", "-t", "pb-hostnet"))
    x = _name()
    assert e.root("run", "-d", "--name", x, "--network", "host", "busybox", "sleep", "300").returncode == 0
    e.denied(_build(e, 1001, dockerfile, "--network", f"container:{x}", "-t", "pb-joined"))
    assert e.ids("image") == before
    assert e.ids() == {e.root("inspect", "-f", "{{.Id}}", x).stdout.decode().strip()}  # no RUN container left
    r = _build(e, 1001, dockerfile, "-t", "pb-plain")
    assert r.returncode == 0, r.stderr
    r = _build(e, 0, dockerfile, "--network", "host", "-t", "pb-root")
    assert r.returncode == 0, r.stderr
    e.root("rmi", "-f", "pb-plain", "pb-root")


def _build(e: Env, uid: int, dockerfile: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["build", *args, "-"]
    if uid == 0:
        r = subprocess.run(["docker", "-H", e.d.url, *cmd], input=dockerfile, capture_output=True, text=True,
                           timeout=180, env={**os.environ, "DOCKER_BUILDKIT": "0",
                                             "DOCKER_CONFIG": str(e.d.base / "docker-config")})
        return r
    cfg = e.base / f"docker-{uid}"
    cfg.mkdir(exist_ok=True)
    os.chown(cfg, uid, GROUP_GID)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update({"DOCKER_CONFIG": str(cfg), "HOME": str(cfg), "DOCKER_BUILDKIT": "0"})
    return subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(GROUP_GID), "--clear-groups",
                           "docker", "-H", e.d.url, *cmd], input=dockerfile, capture_output=True, text=True,
                          timeout=180, env=env, cwd=str(cfg))


def test_joining_a_container_that_has_host_namespaces_is_refused(e):
    """d) container:X resolved to what X has, transitively, and again at start."""
    net, pid, ipc, via, plain = (_name() for _ in range(5))
    for name, flags in ((net, ["--network", "host"]), (pid, ["--pid", "host"]), (ipc, ["--ipc", "host"]),
                        (plain, ["--ipc", "shareable"])):
        r = e.root("run", "-d", "--name", name, *flags, "busybox", "sleep", "300")
        assert r.returncode == 0, r.stderr
    r = e.root("run", "-d", "--name", via, "--network", f"container:{net}", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    before = e.ids()
    for flags in (["--network", f"container:{net}"], ["--pid", f"container:{pid}"], ["--ipc", f"container:{ipc}"],
                  ["--network", f"container:{via}"]):
        e.denied(e.as_user(1001, "run", "--rm", *flags, "busybox", "true"))
        e.denied(e.as_user(1001, "create", *flags, "busybox", "true"))
    assert e.ids() == before
    # joining a container without host namespaces is fine
    for flags in (["--network", f"container:{plain}"], ["--pid", f"container:{plain}"],
                  ["--ipc", f"container:{plain}"]):
        r = e.as_user(1001, "run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 0, (flags, r.stderr)
    # X is checked again at start: created against a harmless X, which is then replaced
    joiner = _name()
    r = e.as_user(1001, "create", "--name", joiner, "--network", f"container:{plain}", "busybox", "true")
    assert r.returncode == 0, r.stderr
    assert e.root("rm", "-f", plain).returncode == 0
    assert e.root("run", "-d", "--name", plain, "--network", "host", "busybox", "sleep", "300").returncode == 0
    e.denied(e.as_user(1001, "start", joiner))
    state = e.root("inspect", "-f", "{{.State.Status}}", joiner).stdout.decode().strip()
    assert state == "created"
    # no other road: the host network cannot be connected, update applies no privilege
    own = _name()
    assert e.as_user(1001, "run", "-d", "--name", own, "busybox", "sleep", "300").returncode == 0
    r = e.as_user(1001, "network", "connect", "host", own)
    assert r.returncode != 0, r.stdout
    status, body = e.raw(1001, "POST", f"/containers/{own}/update",
                         {"Privileged": True, "CapAdd": ["ALL"], "NetworkMode": "host", "PidMode": "host",
                          "Binds": [f"{e.marker_dir}:/h"], "SecurityOpt": ["seccomp=unconfined"]})
    hc = json.loads(e.root("inspect", "-f", "{{json .HostConfig}}", own).stdout)
    assert not hc["Privileged"] and not hc["CapAdd"] and hc["NetworkMode"] != "host", (status, body, hc)
    assert hc["PidMode"] != "host" and not hc["Binds"] and not hc["SecurityOpt"], hc
    # root may join all of them
    for flags in (["--network", f"container:{net}"], ["--pid", f"container:{pid}"], ["--ipc", f"container:{ipc}"]):
        r = e.root("run", "--rm", *flags, "busybox", "true")
        assert r.returncode == 0, (flags, r.stderr)


def test_starting_or_entering_a_privileged_container_is_refused(e):
    """e) start, restart and exec give the container's privileges: the same rule applies."""
    made, priv, plain = _name(), _name(), _name()
    assert e.root("create", "--name", made, "--network", "host", "busybox", "sleep", "300").returncode == 0
    e.denied(e.as_user(1001, "start", made))
    e.denied(e.as_user(1001, "restart", made))
    assert e.root("inspect", "-f", "{{.State.Status}}", made).stdout.decode().strip() == "created"
    # a denied start changes nothing: root's --rm container is not removed by it
    rm_me = _name()
    assert e.root("create", "--rm", "--name", rm_me, "--pid", "host", "busybox", "true").returncode == 0
    e.denied(e.as_user(1001, "start", rm_me))
    assert e.root("inspect", "-f", "{{.State.Status}}", rm_me).stdout.decode().strip() == "created"
    assert e.root("run", "-d", "--name", priv, "--privileged", "busybox", "sleep", "300").returncode == 0
    assert e.root("run", "-d", "--name", plain, "busybox", "sleep", "300").returncode == 0
    e.denied(e.as_user(1001, "exec", priv, "true"))
    e.denied(e.as_user(1001, "exec", "--privileged", plain, "true"))
    r = e.as_user(1001, "exec", plain, "echo", "in")
    assert r.returncode == 0 and r.stdout == "in\n", r.stderr
    # an exec made privileged by root cannot be started by uid 1001
    cid = e.root("inspect", "-f", "{{.Id}}", plain).stdout.decode().strip()
    client = e.d.docker_client()
    try:
        exec_id = client.api.exec_create(cid, ["touch", "/started"], privileged=True)["Id"]
    finally:
        client.close()
    status, body = e.raw(1001, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 403 and DENIED in body, (status, body)
    assert e.root("exec", plain, "test", "-e", "/started").returncode == 1  # it never ran
    r = e.root("exec", "--privileged", plain, "true")
    assert r.returncode == 0, r.stderr


def test_host_path_tricks_resolve_before_matching(e):
    """f) the allowed prefix holds after realpath: no way around it by spelling."""
    allowed = str(e.allowed)
    r = e.as_user(1002, "run", "--rm", "-v", f"{allowed}:/a", "busybox", "cat", "/a/ok")
    assert r.returncode == 0 and r.stdout == "allowed\n", r.stderr
    r = e.as_user(1002, "run", "--rm", "-v", f"{allowed}//./:/a", "busybox", "cat", "/a/ok")
    assert r.returncode == 0 and r.stdout == "allowed\n", r.stderr
    before = e.ids()
    marker = str(e.marker_dir)
    tricks = [f"{allowed}/..", f"{allowed}/../hostdata", f"{allowed}/../../", "/etc/../", "//", "/./",
              f"{allowed}/inner-link", f"{allowed}/inner-link/{marker.lstrip('/')}", str(e.base / "link"),
              f"{allowed}x", f"{e.base}/./allowed/../hostdata/"]
    for source in tricks:
        e.denied(e.as_user(1002, "run", "--rm", "-v", f"{source}:/h", "busybox", "cat", "/h/marker"))
        e.denied(e.as_user(1002, "run", "--rm", "--mount", f"type=bind,source={source},target=/h",
                           "busybox", "true"))
    for source in ("../../../", "etc", "./", "hostdata/../.."):  # relative: never a bind of the daemon's cwd
        for hc in ({"Binds": [f"{source}:/h"]}, {"Mounts": [{"Type": "bind", "Source": source, "Target": "/h"}]}):
            status, body = e.raw(1002, "POST", "/containers/create",
                                 {"Image": "busybox", "Cmd": ["true"], "HostConfig": hc})
            if status == 201:  # "etc:/h" names a volume called etc
                mounts = json.loads(e.root("inspect", "-f", "{{json .Mounts}}", json.loads(body)["Id"]).stdout)
                assert [m["Type"] for m in mounts] == ["volume"], (hc, mounts)
                e.cleanup()
            else:
                assert status in (400, 403), (hc, status, body)
    # a volume binding the allowed dir through a trick is the trick's target
    e.denied(e.as_user(1002, "volume", "create", "--opt", "type=none", "--opt", "o=bind",
                       "--opt", f"device={allowed}/inner-link", "trickvol"))
    assert e.ids() == before and "trickvol" not in e.ids("volume")
    # uid 1001 (binds = false) gets no host path at all, root gets any
    e.denied(e.as_user(1001, "run", "--rm", "-v", f"{allowed}:/a", "busybox", "true"))
    r = e.root("run", "--rm", "-v", f"{marker}:/h", "busybox", "cat", "/h/marker")
    assert r.returncode == 0 and r.stdout == b"host secret\n", r.stderr


def test_attach_and_cp_reach_what_the_container_has(e):
    """e') attach gives the container's process, cp the host paths its mounts bind."""
    binder, priv, own = _name(), _name(), _name()
    r = e.root("run", "-d", "--name", binder, "-v", f"{e.marker_dir}:/h", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    assert e.root("run", "-d", "--name", priv, "--privileged", "busybox", "sleep", "300").returncode == 0
    e.denied(e.as_user(1001, "cp", f"{binder}:/h/marker", "-"))
    e.denied(e.as_user(1001, "cp", "/etc/hostname", f"{binder}:/h/planted"))
    assert not (e.marker_dir / "planted").exists()
    r = e.as_user(1001, "attach", "--no-stdin", priv)
    assert r.returncode != 0 and "403" in r.stderr, r.stderr  # the CLI shows only the status of an upgrade
    # the user's own container: cp both ways and attach work
    assert e.as_user(1001, "run", "-d", "--name", own, "busybox", "sleep", "300").returncode == 0
    r = e.as_user(1001, "cp", f"{own}:/etc/passwd", "-")
    assert r.returncode == 0 and "root" in r.stdout, r.stderr
    # root copies the marker out of the binder
    r = e.root("cp", f"{binder}:/h/marker", "-")
    assert r.returncode == 0 and b"host secret" in r.stdout, r.stderr
