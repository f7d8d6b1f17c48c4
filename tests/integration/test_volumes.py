"""Volumes and mounts end to end: the real docker CLI, docker-py and the dockyard CLI against
dockyardd, real mounts. Every test removes the volumes, mounts and files it made."""

import json
import os
import threading
import subprocess

import docker
import pytest

from dockyard.testing.images import busybox_layer, image_config, image_tar, tar_from_entries

pytestmark = pytest.mark.privileged


def _volumes(daemon):
    return set(daemon.docker("volume", "ls", "-q").stdout.decode().split())


@pytest.fixture
def v(d):
    """The shared daemon; volumes a test makes are removed after its containers."""
    before = _volumes(d)
    yield d
    for cid in d.docker("ps", "-aq", "--no-trunc").stdout.decode().split():
        d.docker("rm", "-f", cid)
    for name in _volumes(d) - before:
        d.docker("volume", "rm", "-f", name)


def ok(r):
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(str(path) + "/")]


def inspect(d, ref):
    return json.loads(ok(d.docker("inspect", ref)))[0]


@pytest.fixture(scope="module")
def images(busybox_daemon, tmp_path_factory):
    """``volimage``: VOLUME /data with seeded content; ``escape``: symlinks pointing at host paths."""
    tmp = tmp_path_factory.mktemp("volimages")
    base = busybox_layer()
    seed = tar_from_entries([("data", "dir", 0o750), ("data/seed", "file", "from the image\n"),
                             ("seeded", "dir", 0o755), ("seeded/file", "file", "seeded\n")])
    cfg = image_config([base, seed], cmd=["sh"])
    cfg["config"]["Volumes"] = {"/data": {}}
    host_dir = tmp / "host-target"
    host_dir.mkdir()
    escape = tar_from_entries([("escape", "symlink", str(host_dir)), ("etclink", "symlink", "/etc"),
                               ("up", "symlink", "../../../../../../../..")])
    esc_cfg = image_config([base, escape], cmd=["sh"])
    tar = image_tar(tmp / "images.tar", [(cfg, [base, seed], ["volimage:latest"]),
                                         (esc_cfg, [base, escape], ["escape:latest"])])
    busybox_daemon.load(tar)
    yield {"host_dir": host_dir}
    busybox_daemon.docker("rmi", "-f", "volimage:latest", "escape:latest")


# -- the checks -------------------------------------------------------------------------


def test_named_volume_data_persists_across_containers(v):
    ok(v.docker("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo kept > /data/f"))
    assert ok(v.docker("run", "--rm", "-v", "keep:/other", "busybox", "cat", "/other/f")) == "kept\n"
    vol = json.loads(ok(v.docker("volume", "inspect", "keep")))[0]
    assert vol["Driver"] == "local" and vol["Mountpoint"].endswith("/volumes/keep/_data")
    assert open(os.path.join(vol["Mountpoint"], "f")).read() == "kept\n"


def test_bind_mount_shows_host_files_and_writes_back(v, tmp_path):
    (tmp_path / "hello").write_text("from the host\n")
    out = ok(v.docker("run", "--rm", "-v", f"{tmp_path}:/h", "busybox", "sh", "-c", "cat /h/hello; echo back > /h/new"))
    assert out == "from the host\n"
    assert (tmp_path / "new").read_text() == "back\n"


def test_readonly_mounts_refuse_writes_recursively(v, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
    try:
        r = v.docker("run", "--rm", "-v", f"{tmp_path}:/h:ro", "-v", "rov:/v:ro", "busybox", "sh", "-c",
                     "touch /h/a 2>&1; touch /h/sub/b 2>&1; touch /v/c 2>&1; ls /h")
        out = r.stdout.decode()
        assert out.count("Read-only file system") == 3, out
        assert not (tmp_path / "a").exists() and not (sub / "b").exists()
        r = v.docker("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/h,readonly", "busybox",
                      "touch", "/h/sub/x")
        assert r.returncode != 0 and b"Read-only file system" in r.stderr
    finally:
        subprocess.run(["umount", str(sub)], check=True)


def test_tmpfs_is_empty_on_each_start(v):
    ok(v.docker("create", "--name", "tmp1", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                "ls -A /scratch; touch /scratch/left; grep ' /scratch ' /proc/mounts"))
    first = ok(v.docker("start", "-a", "tmp1"))
    second = ok(v.docker("start", "-a", "tmp1"))
    assert first == second
    assert first.startswith("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec")  # nothing listed before it
    assert "size=1024k" in first


def test_volume_in_use_cannot_be_removed(v):
    ok(v.docker("create", "--name", "user1", "-v", "busy:/d", "busybox", "true"))
    r = v.docker("volume", "rm", "busy")
    assert r.returncode != 0 and b"volume is in use" in r.stderr
    r = v.docker("volume", "rm", "-f", "busy")
    assert r.returncode != 0 and b"volume is in use" in r.stderr
    ok(v.docker("rm", "user1"))
    ok(v.docker("volume", "rm", "busy"))
    assert "busy" not in _volumes(v)


def test_rm_v_removes_anonymous_volumes_only(v):
    before = _volumes(v)
    ok(v.docker("create", "--name", "anon1", "-v", "/anon", "-v", "named1:/named", "busybox", "true"))
    mounts = {m["Destination"]: m for m in inspect(v, "anon1")["Mounts"]}
    anon = mounts["/anon"]["Name"]
    assert len(anon) == 64 and mounts["/named"]["Name"] == "named1"
    assert _volumes(v) - before == {anon, "named1"}
    ok(v.docker("rm", "-v", "anon1"))
    assert _volumes(v) - before == {"named1"}
    # --rm (AutoRemove) does the same
    ok(v.docker("run", "--rm", "-v", "/anon2", "busybox", "true"))
    assert _volumes(v) - before == {"named1"}
    # ... also when the start fails
    assert v.docker("run", "--rm", "-v", "/anon3", "busybox", "/no/such/command").returncode == 127
    assert _volumes(v) - before == {"named1"}


def test_symlink_in_image_cannot_point_a_mount_at_the_host(v, images, tmp_path):
    host_dir = images["host_dir"]
    (tmp_path / "payload").write_text("payload\n")
    out = ok(v.docker("run", "--rm", "-v", f"{tmp_path}:/escape/x", "-v", "esc:/etclink/dockyard-escape",
                      "-v", f"{tmp_path}:/up/tmp/dockyard-escape-up", "escape", "sh", "-c",
                      "cat /escape/x/payload; ls /etc/dockyard-escape >/dev/null && echo in-container-etc"))
    assert out == "payload\nin-container-etc\n"
    # the mounts landed inside the container's rootfs, not on the host
    assert list(host_dir.iterdir()) == []
    assert not os.path.exists("/etc/dockyard-escape")
    assert not os.path.exists("/tmp/dockyard-escape-up")
    assert mounts_under(host_dir) == [] and mounts_under("/etc/dockyard-escape") == []
    # copy-up from a symlinked image path also stays inside the rootfs
    ok(v.docker("run", "--rm", "-v", "esc2:/up/etc", "escape", "true"))
    assert "passwd" in os.listdir(json.loads(ok(v.docker("volume", "inspect", "esc2")))[0]["Mountpoint"])
    passwd = os.path.join(json.loads(ok(v.docker("volume", "inspect", "esc2")))[0]["Mountpoint"], "passwd")
    assert open(passwd).read() != open("/etc/passwd").read()  # the image's, not the host's


def test_mount_through_dotdot_symlink_survives_host_renames(v, images, tmp_path):
    """openat2(RESOLVE_IN_ROOT) answers EAGAIN when a rename anywhere on the host races a ".."
    walk; the shim retries (as openat2(2) asks) instead of failing the start. Renames run in a
    loop here while containers mount through the image's ``up -> ../../..`` symlink."""
    stop = threading.Event()

    def churn(n: int) -> None:  # each worker renames its own file back and forth
        a, b = tmp_path / f"a{n}", tmp_path / f"b{n}"
        a.write_text("x")
        while not stop.is_set():
            os.rename(a, b)
            os.rename(b, a)

    workers = [threading.Thread(target=churn, args=(n,)) for n in range(2)]
    for w in workers:
        w.start()
    try:
        failures = [r.stderr.decode() for r in (
            v.docker("run", "--rm", "-v", f"{tmp_path}:/up/tmp/dockyard-dotdot-{i}", "escape", "true") for i in range(30))
            if r.returncode != 0]
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert failures == []


@pytest.mark.parametrize("args, message", [
    (["-v", "rel:data"], "mount path must be absolute"),
    (["-v", "vol400:/"], "destination can't be '/'"),
    (["-v", "vol400:/a", "-v", "/tmp:/a"], "Duplicate mount point: /a"),
    (["--mount", "type=volume,src=vol400,dst=/x,volume-driver=nosuchdriver"], "nosuchdriver"),
    (["-v", "vol400:/a:bogus"], "invalid mode: bogus"),
    (["--mount", "type=bind,src=/nonexistent-dockyard-src,dst=/x"], "bind source path does not exist"),
    (["--mount", "type=tmpfs,src=x,dst=/x"], "Source must not be specified"),
    (["--mount", "type=bogus,dst=/x"], "mount type unknown"),
    (["--tmpfs", "/t:bogus"], "invalid tmpfs option"),
    (["-v", "bad name!:/x"], "invalid characters for a local volume name"),
])
def test_bad_mounts_are_400_and_create_nothing(v, args, message):
    volumes, containers = _volumes(v), ok(v.docker("ps", "-aq"))
    r = v.docker("create", *args, "busybox", "true")
    assert r.returncode != 0 and message in r.stderr.decode(), r.stderr
    assert _volumes(v) == volumes and ok(v.docker("ps", "-aq")) == containers


def test_v_creates_a_missing_bind_source(v, tmp_path):
    src = tmp_path / "made" / "by" / "run"
    ok(v.docker("run", "--rm", "-v", f"{src}:/x", "busybox", "touch", "/x/y"))
    assert (src / "y").exists()


# -- more of Docker's behaviour -----------------------------------------------------------------


def test_new_volume_is_populated_from_the_image_unless_nocopy(v, images):
    out = ok(v.docker("run", "--rm", "volimage", "sh", "-c", "cat /data/seed; stat -c %a /data"))
    assert out == "from the image\n750\n"
    ok(v.docker("run", "--rm", "-v", "pop:/seeded", "volimage", "true"))
    assert ok(v.docker("run", "--rm", "-v", "pop:/x", "busybox", "cat", "/x/file")) == "seeded\n"
    ok(v.docker("run", "--rm", "--mount", "type=volume,src=nocp,dst=/seeded,volume-nocopy", "volimage", "true"))
    assert ok(v.docker("run", "--rm", "-v", "nocp:/x", "busybox", "ls", "-A", "/x")) == ""
    # a volume with content is never overwritten
    ok(v.docker("run", "--rm", "-v", "pop:/x", "busybox", "sh", "-c", "echo mine > /x/file"))
    assert ok(v.docker("run", "--rm", "-v", "pop:/seeded", "volimage", "cat", "/seeded/file")) == "mine\n"


def test_inspect_and_ps_show_mounts(v, tmp_path):
    ok(v.docker("create", "--name", "m1", "-v", "insp:/v:ro", "-v", f"{tmp_path}:/b", "--mount",
                "type=tmpfs,dst=/t", "busybox", "true"))
    mounts = {m["Destination"]: m for m in inspect(v, "m1")["Mounts"]}
    vol = json.loads(ok(v.docker("volume", "inspect", "insp")))[0]
    assert mounts["/v"] == {"Type": "volume", "Name": "insp", "Source": vol["Mountpoint"], "Destination": "/v",
                            "Driver": "local", "Mode": "ro", "RW": False, "Propagation": ""}
    assert mounts["/b"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b", "Mode": "",
                            "RW": True, "Propagation": "rprivate"}
    assert mounts["/t"]["Type"] == "tmpfs" and mounts["/t"]["RW"] is True
    listed = ok(v.docker("ps", "-a", "--filter", "name=m1", "--format", "{{.Mounts}}"))
    assert "insp" in listed


def test_volumes_from_shares_mounts(v, tmp_path):
    ok(v.docker("create", "--name", "src1", "-v", "shared:/s", "-v", f"{tmp_path}:/b", "busybox", "true"))
    ok(v.docker("run", "--rm", "--volumes-from", "src1", "busybox", "sh", "-c", "echo 1 > /s/f; echo 2 > /b/g"))
    assert (tmp_path / "g").read_text() == "2\n"
    r = v.docker("run", "--rm", "--volumes-from", "src1:ro", "busybox", "touch", "/s/x")
    assert r.returncode != 0 and b"Read-only" in r.stderr
    assert ok(v.docker("run", "--rm", "-v", "shared:/s", "busybox", "cat", "/s/f")) == "1\n"


def test_bind_propagation_rslave_sees_later_host_mounts(v, tmp_path):
    private = tmp_path / "private"
    private.mkdir()
    subprocess.run(["mount", "--bind", "--make-private", str(private), str(private)], check=True)
    try:  # as Docker: a slave of nothing would silently be private
        r = v.docker("run", "--rm", "-v", f"{private}:/h:rslave", "busybox", "true")
        assert r.returncode != 0 and b"is not a shared or slave mount" in r.stderr
    finally:
        subprocess.run(["umount", str(private)], check=True)
    # propagation needs a shared source mount (this host's / is private): make one
    subprocess.run(["mount", "--bind", str(tmp_path), str(tmp_path)], check=True)
    subprocess.run(["mount", "--make-shared", str(tmp_path)], check=True)
    sub = tmp_path / "later"
    sub.mkdir()
    try:
        ok(v.docker("run", "-d", "--name", "prop1", "-v", f"{tmp_path}:/h:rslave", "busybox", "sleep", "60"))
        ok(v.docker("run", "-d", "--name", "prop2", "-v", f"{tmp_path}:/h", "busybox", "sleep", "60"))
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(sub)], check=True)
        (sub / "mark").write_text("x")
        assert ok(v.docker("exec", "prop1", "ls", "/h/later")) == "mark\n"
        assert ok(v.docker("exec", "prop2", "ls", "/h/later")) == ""  # rprivate: the default
    finally:
        v.docker("rm", "-f", "prop1", "prop2")
        subprocess.run(["umount", "-R", str(tmp_path)], check=True)
    assert mounts_under(tmp_path) == []


def test_local_driver_device_is_mounted_only_while_used(v):
    ok(v.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=2m", "dev1"))
    data = json.loads(ok(v.docker("volume", "inspect", "dev1")))[0]["Mountpoint"]
    assert mounts_under(data) == []
    ok(v.docker("run", "-d", "--name", "dv1", "-v", "dev1:/d", "busybox", "sh", "-c", "echo hi > /d/f; sleep 60"))
    ok(v.docker("run", "-d", "--name", "dv2", "-v", "dev1:/d", "busybox", "sleep", "60"))
    assert mounts_under(data) == [data]
    assert "size=2048k" in ok(v.docker("exec", "dv2", "grep", " /d ", "/proc/mounts"))
    ok(v.docker("stop", "-t", "0", "dv1"))
    assert mounts_under(data) == [data]  # dv2 still uses it
    ok(v.docker("stop", "-t", "0", "dv2"))
    assert mounts_under(data) == []
    r = v.docker("volume", "create", "--opt", "type=tmpfs", "bad1")
    assert r.returncode != 0 and b'missing required option: "device"' in r.stderr
    r = v.docker("volume", "create", "--opt", "color=blue", "bad2")
    assert r.returncode != 0 and b'invalid option: "color"' in r.stderr


def test_mounts_survive_a_daemon_restart(make_daemon, busybox_tar, tmp_path):
    d = make_daemon()
    d.load(busybox_tar)
    (tmp_path / "bind").mkdir()
    ok(d.docker("volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "surv"))
    data = json.loads(ok(d.docker("volume", "inspect", "surv")))[0]["Mountpoint"]
    ok(d.docker("run", "-d", "--name", "s1", "-v", "surv:/v", "-v", f"{tmp_path / 'bind'}:/b", "busybox",
                "sh", "-c", "echo hi > /v/f; sleep 60"))
    before = inspect(d, "s1")["Mounts"]
    d.stop()  # live-restore: the container keeps running
    d.start()
    assert inspect(d, "s1")["Mounts"] == before
    assert inspect(d, "s1")["State"]["Running"]
    assert ok(d.docker("exec", "s1", "cat", "/v/f")) == "hi\n"
    assert mounts_under(data) == [data]
    r = d.docker("volume", "rm", "surv")
    assert r.returncode != 0 and b"in use" in r.stderr
    ok(d.docker("rm", "-f", "s1"))
    assert mounts_under(data) == []
    ok(d.docker("volume", "rm", "surv"))


# -- API details, through docker-py ---------------------------------------------------------------


def test_docker_py_volume_api(v, client):
    vol = client.volumes.create("pyvol", labels={"team": "a"})
    assert vol.attrs["Labels"] == {"team": "a"} and vol.attrs["Scope"] == "local"
    client.volumes.create("pyvol2", driver="local", labels={"team": "b"})
    names = lambda **f: sorted(x.name for x in client.volumes.list(filters=f))  # noqa: E731
    assert names(label="team=a") == ["pyvol"]
    assert names(name="pyvol") == ["pyvol", "pyvol2"]
    assert "pyvol" in names(driver="local")
    client.containers.create("busybox", "true", volumes={"pyvol": {"bind": "/p", "mode": "rw"}}, name="pyc")
    assert "pyvol" not in names(dangling="true") and "pyvol2" in names(dangling="true")
    with pytest.raises(docker.errors.APIError) as exc:
        client.volumes.get("pyvol").remove()
    assert exc.value.status_code == 409
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("nosuchvolume")
    with pytest.raises(docker.errors.APIError) as exc:
        client.volumes.create("pyvol3", driver="nosuchdriver")
    assert exc.value.status_code == 400
    assert v.docker("volume", "rm", "-f", "nosuchvolume").returncode == 0  # force: missing is fine
    df = client.df()["Volumes"]
    usage = {x["Name"]: x["UsageData"] for x in df}
    assert usage["pyvol"]["RefCount"] == 1 and usage["pyvol2"]["RefCount"] == 0
    client.containers.get("pyc").remove()


def test_prune_follows_the_api_version(v, d):
    ok(d.docker("volume", "create", "--label", "prune-test=1", "named-prune"))
    ok(d.docker("create", "--name", "pr1", "-v", "/anon-prune", "--label", "x=y", "busybox", "true"))
    anon = inspect(d, "pr1")["Mounts"][0]["Name"]
    ok(d.docker("rm", "pr1"))  # without -v: the anonymous volume stays
    new = docker.APIClient(base_url=d.url, version="1.44")
    try:
        result = new.prune_volumes()
        assert anon in (result["VolumesDeleted"] or []) and "named-prune" in _volumes(d)
        result = new.prune_volumes(filters={"all": "true", "label": "prune-test=1"})
        assert result["VolumesDeleted"] == ["named-prune"]
    finally:
        new.close()
    ok(d.docker("volume", "create", "old-api-named"))
    old = docker.APIClient(base_url=d.url, version="1.41")  # as the docker 20.10 CLI: every unused volume
    try:
        assert "old-api-named" in (old.prune_volumes()["VolumesDeleted"] or [])
    finally:
        old.close()
    ok(d.docker("volume", "create", "cli-named"))
    assert "cli-named" in ok(d.docker("volume", "prune", "-f", "--filter", "all=true"))
    assert not {"old-api-named", "cli-named"} & _volumes(d)


# -- the dockyard CLI -----------------------------------------------------------------------------


def test_dockyard_cli_volume_commands(v, tmp_path):
    cli = v.cli
    assert ok(cli("volume", "create", "--label", "k=v", "clivol")) == "clivol\n"
    assert "clivol" in ok(cli("volume", "ls", "-q"))
    assert ok(cli("volume", "ls", "-q", "--filter", "label=k=v")) == "clivol\n"
    assert json.loads(ok(cli("volume", "inspect", "clivol")))[0]["Labels"] == {"k": "v"}
    out = ok(cli("run", "--rm", "-v", "clivol:/c", "-v", f"{tmp_path}:/b:ro", "--mount", "type=tmpfs,dst=/t",
                 "--tmpfs", "/t2", "busybox", "sh", "-c", "echo x > /c/f; grep -c ' /t2\\? ' /proc/mounts; touch /b/z || true"))
    assert out.startswith("2\n")
    assert not (tmp_path / "z").exists()
    cid = ok(cli("create", "-v", "/cli-anon", "busybox", "true")).strip()
    anon = inspect(v, cid)["Mounts"][0]["Name"]
    ok(cli("rm", "-v", cid))
    assert anon not in _volumes(v)
    r = cli("volume", "rm", "nosuchvol")
    assert r.returncode != 0 and b"no such volume" in r.stderr
    ok(cli("volume", "rm", "clivol"))
    ok(cli("volume", "create", "cliprune"))
    assert "cliprune" in ok(cli("volume", "prune", "-f", "--all"))
    assert "cliprune" not in _volumes(v)


def test_volume_events(v):
    import time

    since = str(time.time() - 1)
    ok(v.docker("run", "--rm", "-v", "evvol:/e", "busybox", "true"))
    ok(v.docker("volume", "rm", "evvol"))
    until = str(time.time() + 1)
    out = ok(v.docker("events", "--since", since, "--until", until, "--filter", "type=volume",
                      "--filter", "volume=evvol", "--format", "{{.Action}}"))
    assert out.split() == ["create", "mount", "unmount", "destroy"]
