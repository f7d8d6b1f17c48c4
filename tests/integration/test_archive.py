"""docker cp (both ways), docker export and docker commit against dockyardd: the real docker
CLI and docker-py, real kernel and storage. Hostile tars and symlinks must never reach the host."""

import base64
import io
import json
import os
import secrets
import subprocess
import tarfile
import time

import docker
import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def ok(r):
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


def tar_of(*members):
    """A tar from (TarInfo, bytes | None) pairs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def member(name, kind=tarfile.REGTYPE, linkname="", mode=0o644):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, linkname, mode, 1700000000
    return info


def read_tar(chunks):
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: (m, tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()}


def mounts_of(cid):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if cid in line]


# -- docker cp with the real CLI --------------------------------------------------------------


def test_cp_into_running_container(d, tmp_path):
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c",
                      "while [ ! -f /tmp/hello ]; do sleep 0.05; done; cat /tmp/hello")).strip()
    (tmp_path / "hello").write_text("hello from the host\n")
    ok(d.docker("cp", str(tmp_path / "hello"), f"{cid}:/tmp/hello"))
    ok(d.docker("wait", cid))
    assert ok(d.docker("logs", cid)) == "hello from the host\n"


def test_cp_dir_out_of_stopped_container_and_back(d, tmp_path):
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c",
                      "mkdir -p /data/sub && echo one > /data/one && echo two > /data/sub/two "
                      "&& ln -s one /data/link")).strip()
    ok(d.docker("wait", cid))
    ok(d.docker("cp", f"{cid}:/data", str(tmp_path / "out")))
    assert (tmp_path / "out" / "one").read_text() == "one\n"
    assert (tmp_path / "out" / "sub" / "two").read_text() == "two\n"
    assert os.readlink(tmp_path / "out" / "link") == "one"
    # "dir/." copies the contents into an existing directory
    (tmp_path / "contents").mkdir()
    ok(d.docker("cp", f"{cid}:/data/.", str(tmp_path / "contents")))
    assert sorted(os.listdir(tmp_path / "contents")) == ["link", "one", "sub"]
    # a single file, and a copy back into the stopped container
    ok(d.docker("cp", f"{cid}:/data/sub/two", str(tmp_path / "two.txt")))
    assert (tmp_path / "two.txt").read_text() == "two\n"
    ok(d.docker("cp", str(tmp_path / "out"), f"{cid}:/data/copy"))
    ok(d.docker("cp", f"{cid}:/data/copy/sub/two", str(tmp_path / "back.txt")))
    assert (tmp_path / "back.txt").read_text() == "two\n"
    wait_for(lambda: mounts_of(cid) == [])  # the temporary mounts go once the copies are done


def test_cp_missing_path_is_an_error(d, tmp_path):
    cid = ok(d.docker("create", "busybox", "true")).strip()
    r = d.docker("cp", f"{cid}:/no/such/file", str(tmp_path / "x"))
    assert r.returncode != 0
    assert b"Could not find the file /no/such/file in container" in r.stderr
    assert not (tmp_path / "x").exists()
    r = d.docker("cp", str(tmp_path), f"{cid}:/no/such/dir/")
    assert r.returncode != 0


def test_cp_with_archive_flag_chowns_to_the_container_user(d, client, tmp_path):
    cid = ok(d.docker("create", "-u", "1234:4321", "busybox", "true")).strip()
    (tmp_path / "f").write_text("x")
    ok(d.docker("cp", "-a", str(tmp_path / "f"), f"{cid}:/tmp/f"))
    chunks, _ = client.api.get_archive(cid, "/tmp/f")
    m, data = read_tar(chunks)["f"]
    assert (m.uid, m.gid, data) == (1234, 4321, b"x")


# -- export and commit ------------------------------------------------------------------------


def test_export_is_the_whole_rootfs(d):
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c", "echo exported > /marker")).strip()
    ok(d.docker("wait", cid))
    r = subprocess.run(["docker", "-H", d.url, "export", cid], capture_output=True, timeout=60,
                       env={**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")})
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf:
        names = tf.getnames()
        assert tf.extractfile("marker").read() == b"exported\n"
    assert "bin/busybox" in names and "etc/passwd" in names
    assert not any(n.startswith(("/", "./")) for n in names)
    wait_for(lambda: mounts_of(cid) == [])


def test_commit_keeps_new_files_and_deletions(d):
    name = f"committed-{secrets.token_hex(4)}"
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c",
                      "echo committed content > /thatfile && rm /bin/vi && rm -r /home")).strip()
    assert ok(d.docker("wait", cid)).strip() == "0"
    image_id = ok(d.docker("commit", "-m", "a message", "-a", "someone", "-c", "ENV FOO=bar",
                           cid, f"{name}:v1")).strip()
    assert image_id.startswith("sha256:")
    assert ok(d.docker("run", "--rm", f"{name}:v1", "cat", "/thatfile")) == "committed content\n"
    out = ok(d.docker("run", "--rm", f"{name}:v1", "sh", "-c",
                      "test -e /bin/vi || echo vi gone; test -e /home || echo home gone; echo $FOO"))
    assert out == "vi gone\nhome gone\nbar\n"
    info = json.loads(ok(d.docker("image", "inspect", f"{name}:v1")))[0]
    parent = json.loads(ok(d.docker("image", "inspect", "busybox")))[0]
    assert info["Id"] == image_id
    assert info["Comment"] == "a message" and info["Author"] == "someone"
    assert info["RootFS"]["Layers"][:-1] == parent["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == len(parent["RootFS"]["Layers"]) + 1
    assert info["Parent"] == parent["Id"]
    history = json.loads(ok(d.docker("history", "--format", "{{json .}}", "--no-trunc", f"{name}:v1"))
                         .splitlines()[0])
    assert history["Comment"] == "a message"


def test_commit_of_an_unchanged_container_adds_no_layer(d):
    cid = ok(d.docker("create", "busybox", "true")).strip()
    image_id = ok(d.docker("commit", cid)).strip()
    info = json.loads(ok(d.docker("image", "inspect", image_id)))[0]
    parent = json.loads(ok(d.docker("image", "inspect", "busybox")))[0]
    assert info["RootFS"]["Layers"] == parent["RootFS"]["Layers"]


def test_commit_pauses_a_running_container(d):
    since = str(time.time() - 1)
    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c", "echo running > /state; sleep 60")).strip()
    wait_for(lambda: b"running\n" in d.docker("cp", f"{cid}:/state", "-").stdout)  # written, not just created
    image_id = ok(d.docker("commit", cid)).strip()
    state = json.loads(ok(d.docker("inspect", cid)))[0]["State"]
    assert state["Status"] == "running"
    assert ok(d.docker("run", "--rm", image_id, "cat", "/state")) == "running\n"
    seen = ok(d.docker("events", "--since", since, "--until", str(time.time() + 1), "--format",
                       "{{.Action}}", "--filter", f"container={cid}")).split()
    assert "pause" in seen and "commit" in seen and "unpause" in seen
    assert seen.index("pause") < seen.index("commit")


# -- docker-py --------------------------------------------------------------------------------


def test_docker_py_put_get_export_commit(d, client):
    c = client.containers.create("busybox", "true")
    data = tar_of((member("dir", tarfile.DIRTYPE, mode=0o755), None),
                  (member("dir/file.txt"), b"file content\n"),
                  (member("dir/link", tarfile.SYMTYPE, "file.txt"), None))
    assert c.put_archive("/tmp", data) is True
    chunks, st = c.get_archive("/tmp/dir")
    assert st["name"] == "dir" and st["mode"] & (1 << 31) and st["mode"] & 0o777 == 0o755
    got = read_tar(chunks)
    assert got["dir/file.txt"][1] == b"file content\n"
    assert got["dir/link"][0].issym() and got["dir/link"][0].linkname == "file.txt"
    chunks, st = c.get_archive("/tmp/dir/link")
    assert st["mode"] & (1 << 27) and st["linkTarget"] == "/tmp/dir/file.txt"
    assert list(read_tar(chunks)) == ["link"]
    exported = read_tar(c.export())
    assert exported["tmp/dir/file.txt"][1] == b"file content\n"
    image = c.commit(repository=f"pycommit-{secrets.token_hex(4)}", tag="t1", changes=['CMD ["echo","hi"]'])
    assert image.attrs["Config"]["Cmd"] == ["echo", "hi"]
    assert ok(d.docker("run", "--rm", image.id)) == "hi\n"
    assert ok(d.docker("run", "--rm", image.id, "cat", "/tmp/dir/file.txt")) == "file content\n"


def test_head_stat_header_and_errors(d, client):
    c = client.containers.create("busybox", "true")
    r = client.api.head(client.api._url("/containers/{0}/archive", c.id), params={"path": "/bin/busybox"})
    assert r.status_code == 200
    st = json.loads(base64.b64decode(r.headers["X-Docker-Container-Path-Stat"]))
    assert st["name"] == "busybox" and st["size"] > 0 and st["mode"] == 0o755 and st["linkTarget"] == ""
    assert st["mtime"].endswith("Z")
    r = client.api.head(client.api._url("/containers/{0}/archive", c.id), params={"path": "/nope"})
    assert r.status_code == 404
    with pytest.raises(docker.errors.NotFound):
        c.get_archive("/nope")
    with pytest.raises(docker.errors.NotFound):
        c.put_archive("/no/such/dir", tar_of((member("f"), b"x")))
    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/bin/busybox", tar_of((member("f"), b"x")))
    assert err.value.status_code == 400 and "not a directory" in str(err.value)


def test_read_only_rootfs_refuses_put(d, client):
    c = client.containers.create("busybox", "true", read_only=True)
    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/tmp", tar_of((member("f"), b"x")))
    assert err.value.status_code == 403 and "read-only" in str(err.value)


# -- hostile input ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink-parent", "hardlink-escape"])
def test_hostile_tars_are_refused_and_write_nothing(d, client, case):
    token = secrets.token_hex(6)
    host_target = f"/etc/owned-{token}"
    members = {
        "dotdot": [(member("ok-first"), b"x"), (member(f"../../../../../../etc/owned-{token}"), b"owned")],
        "absolute": [(member("ok-first"), b"x"), (member(f"/etc/owned-{token}"), b"owned")],
        "symlink-parent": [(member("ok-first"), b"x"), (member("x", tarfile.SYMTYPE, "/etc"), None),
                           (member(f"x/owned-{token}"), b"owned")],
        "hardlink-escape": [(member("ok-first"), b"x"),
                            (member("h", tarfile.LNKTYPE, "../../../../../../etc/passwd"), None)],
    }[case]
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        with pytest.raises(docker.errors.APIError) as err:
            c.put_archive("/tmp", tar_of(*members))
        assert err.value.status_code == 400
        assert not os.path.lexists(host_target)
        for name in ("ok-first", "x", "h"):  # nothing of the refused tar was written
            with pytest.raises(docker.errors.NotFound):
                c.get_archive(f"/tmp/{name}")
    finally:
        c.remove(force=True)
    assert not os.path.lexists(host_target)


def test_symlinks_in_the_container_never_reach_host_files(d, client):
    marker = f"/tmp/dockyard-host-only-{secrets.token_hex(6)}"
    with open(marker, "w") as f:
        f.write("host secret\n")
    try:
        c = client.containers.create("busybox", "true")
        c.put_archive("/", tar_of((member("hostroot", tarfile.SYMTYPE, "/"), None),
                                  (member("up", tarfile.SYMTYPE, "../../../../../.."), None),
                                  (member("etc/passwd-link", tarfile.SYMTYPE, "../../../../etc/passwd"), None)))
        # through an absolute link to "/": the container's own files, never the host's
        chunks, _ = c.get_archive("/hostroot/etc/passwd")
        theirs = read_tar(chunks)["passwd"][1]
        chunks, _ = c.get_archive("/etc/passwd")
        assert theirs == read_tar(chunks)["passwd"][1]
        with open("/etc/passwd", "rb") as f:
            assert theirs != f.read()
        for path in (f"/hostroot{marker}", f"/up{marker}", f"/up/up/up{marker}"):
            with pytest.raises(docker.errors.NotFound):
                c.get_archive(path)
        _, st = c.get_archive("/hostroot")
        assert st["linkTarget"] == "/" and st["mode"] & (1 << 27)
        chunks, _ = c.get_archive("/etc/passwd-link")  # the link itself, not its target
        m, _ = read_tar(chunks)["passwd-link"]
        assert m.issym()
        # writing through the links lands inside the container
        c.put_archive("/hostroot/tmp", tar_of((member(f"via-link-{os.path.basename(marker)}"), b"in\n")))
        assert not os.path.exists(f"/tmp/via-link-{os.path.basename(marker)}")
        chunks, _ = c.get_archive(f"/tmp/via-link-{os.path.basename(marker)}")
        assert read_tar(chunks)[f"via-link-{os.path.basename(marker)}"][1] == b"in\n"
        with open(marker) as f:
            assert f.read() == "host secret\n"
    finally:
        os.unlink(marker)


def test_path_and_mode_helpers_match_docker():
    from dockyard.containers.archive import abs_path, go_base, go_mode, go_time

    assert [abs_path(p) for p in ("/", "", ".", "foo", "foo/", "/foo/.", "/a/b/..", "//x//y/")] == \
        ["/", "/.", "/.", "/foo", "/foo/", "/foo/.", "/a", "/x/y/"]
    assert [go_base(p) for p in ("/", "/foo/", "/foo/.", "foo")] == ["/", "foo", ".", "foo"]
    assert go_mode(0o40755) == (1 << 31) | 0o755
    assert go_mode(0o120777) == (1 << 27) | 0o777
    assert go_mode(0o104755) == (1 << 23) | 0o755
    assert go_mode(0o41777) == (1 << 31) | (1 << 20) | 0o777
    assert go_mode(0o20666) == (1 << 26) | (1 << 21) | 0o666
    assert go_time(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    assert go_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


# -- docker cp with the container's mounts in place (volumes, binds, tmpfs, /etc files) --------


def _volume_data(d, name):
    return json.loads(ok(d.docker("volume", "inspect", name)))[0]["Mountpoint"]


@pytest.fixture
def volume(d):
    """A named volume holding one file (``old``), removed afterwards."""
    name = f"cpvol-{secrets.token_hex(4)}"
    before = set(ok(d.docker("ps", "-aq", "--no-trunc")).split())
    ok(d.docker("volume", "create", name))
    with open(os.path.join(_volume_data(d, name), "old"), "w") as f:
        f.write("was here\n")
    yield name
    for cid in set(ok(d.docker("ps", "-aq", "--no-trunc")).split()) - before:
        d.docker("rm", "-f", "-v", cid)  # the test's containers (and anonymous volumes) first
    ok(d.docker("volume", "rm", name))


def test_cp_into_a_created_container_reaches_its_volume_and_bind(d, volume, tmp_path):
    """The reported bug: the copy went into the layer under the mounts and vanished at start."""
    src = tmp_path / "bind"
    src.mkdir()
    (tmp_path / "f").write_text("copied before start\n")
    cid = ok(d.docker("create", "-v", f"{volume}:/tmp", "-v", f"{src}:/mnt", "-v", "/data", "busybox", "sh", "-c",
                      "cat /tmp/f /mnt/f /data/f /tmp/old")).strip()
    try:
        for dest in ("/tmp/f", "/mnt/f", "/data/f"):  # /data is not in the image: created like Docker
            ok(d.docker("cp", str(tmp_path / "f"), f"{cid}:{dest}"))
        assert ok(d.docker("start", "-a", cid)) == "copied before start\n" * 3 + "was here\n"
        assert (src / "f").read_text() == "copied before start\n"
        assert open(os.path.join(_volume_data(d, volume), "f")).read() == "copied before start\n"
        # nothing went into the container's own layer under the mounts
        changed = ok(d.docker("diff", cid)).split("\n")
        assert not [line for line in changed if line.endswith(("/tmp/f", "/mnt/f", "/data/f"))]
        # and out of the stopped container: the volume's content, not the layer's
        ok(d.docker("cp", f"{cid}:/tmp/old", str(tmp_path / "old")))
        assert (tmp_path / "old").read_text() == "was here\n"
        wait_for(lambda: mounts_of(cid) == [])  # the copy's private mounts never reach the host
        assert not [line for line in open("/proc/self/mountinfo") if str(src) in line]
    finally:
        d.docker("rm", "-f", "-v", cid)


def test_cp_into_and_out_of_a_running_containers_mounts(d, volume, tmp_path):
    src = tmp_path / "bind"
    src.mkdir()
    (tmp_path / "f").write_text("into the mount\n")
    cid = ok(d.docker("run", "-d", "-v", f"{volume}:/vol", "-v", f"{src}:/bind", "--tmpfs", "/tt",
                      "--mount", "type=tmpfs,destination=/t2", "busybox", "sh", "-c",
                      "echo only in tmpfs > /tt/inside; sleep 60")).strip()
    wait_for(lambda: d.docker("exec", cid, "cat", "/tt/inside").stdout == b"only in tmpfs\n")
    for dest in ("/vol", "/bind", "/tt", "/t2"):
        ok(d.docker("cp", str(tmp_path / "f"), f"{cid}:{dest}/g"))
    assert ok(d.docker("exec", cid, "cat", "/vol/g", "/bind/g", "/tt/g", "/t2/g")) == "into the mount\n" * 4
    assert (src / "g").read_text() == "into the mount\n"
    assert open(os.path.join(_volume_data(d, volume), "g")).read() == "into the mount\n"
    r = subprocess.run(["docker", "-H", d.url, "cp", f"{cid}:/tt/inside", "-"], capture_output=True, timeout=60,
                       env={**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")})
    assert r.returncode == 0, r.stderr
    assert read_tar([r.stdout])["inside"][1] == b"only in tmpfs\n"
    changed = ok(d.docker("diff", cid))
    assert "/vol/g" not in changed and "/tt/g" not in changed and "/bind/g" not in changed


def test_cp_to_the_etc_files_behaves_as_docker(d, tmp_path):
    """/etc/hosts, /etc/hostname and /etc/resolv.conf are bind mounts from the container's
    directory once it has started: replacing one fails as in Docker (EBUSY) and leaves the
    mount in place. Before the first start they are not mounted (Docker sets them up at
    start), so a copy lands in the image's /etc and is covered at start."""
    (tmp_path / "hosts").write_text("10.9.9.9 replaced\n")
    cid = ok(d.docker("create", "busybox", "sleep", "60")).strip()
    ok(d.docker("cp", str(tmp_path / "hosts"), f"{cid}:/etc/hosts"))
    ok(d.docker("start", cid))
    assert "localhost" in ok(d.docker("exec", cid, "cat", "/etc/hosts"))
    for path in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname"):
        r = d.docker("cp", str(tmp_path / "hosts"), f"{cid}:{path}")
        assert r.returncode != 0
        assert f"unlinkat {path}: device or resource busy".encode() in r.stderr
    # the bind mounts are still in place (unlinking from another namespace would drop them)
    assert "localhost" in ok(d.docker("exec", cid, "cat", "/etc/hosts"))
    assert ok(d.docker("exec", cid, "cat", "/etc/hostname")) == cid[:12] + "\n"
    ok(d.docker("stop", "-t", "0", cid))
    r = d.docker("cp", str(tmp_path / "hosts"), f"{cid}:/etc/hosts")
    assert b"device or resource busy" in r.stderr
    ok(d.docker("cp", f"{cid}:/etc/hostname", str(tmp_path / "hostname")))  # the container's own file
    assert (tmp_path / "hostname").read_text() == cid[:12] + "\n"


def test_cp_never_enters_the_runtimes_proc_sys_dev(d, client):
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    try:
        for path in ("/proc/self/status", "/proc/1/environ", "/sys/kernel", "/proc"):
            with pytest.raises(docker.errors.NotFound):
                c.get_archive(path)
        names = list(read_tar(c.get_archive("/")[0]))
        assert not [n for n in names if n.startswith(("/proc/", "/sys/", "/dev/"))]
        assert "/etc/hosts" in names and "/bin/busybox" in names
        for dest, name in (("/", "proc/sys/kernel/hostname"), ("/", "sys/x"), ("/dev", "null")):
            with pytest.raises(docker.errors.APIError) as err:
                c.put_archive(dest, tar_of((member(name), b"x")))
            assert err.value.status_code in (400, 404)
        assert c.exec_run(["cat", "/proc/sys/kernel/hostname"]).output.strip() == c.id[:12].encode()
    finally:
        c.remove(force=True)


def test_read_only_mounts_and_rootfs_as_docker(d, client, tmp_path):
    src = tmp_path / "bind"
    src.mkdir()
    c = client.containers.create("busybox", "true", volumes={str(src): {"bind": "/ro", "mode": "ro"}})
    with pytest.raises(docker.errors.APIError) as err:
        c.put_archive("/ro", tar_of((member("f"), b"x")))
    assert err.value.status_code == 403 and "mounted volume is marked read-only" in str(err.value)
    assert os.listdir(src) == []
    # a read-only rootfs still takes copies into a writable mount
    c = client.containers.create("busybox", "true", read_only=True, volumes={str(src): {"bind": "/rw"}})
    assert c.put_archive("/rw", tar_of((member("f"), b"x"))) is True
    assert (src / "f").read_bytes() == b"x"


def test_mount_destination_behind_a_symlink_stays_in_the_rootfs(d, client, tmp_path):
    """The image's /evil points at a host-looking path: the copy's mount point is resolved
    inside the container (as the runtime does), never on the host."""
    escape = tmp_path / "escape"
    src = tmp_path / "src"
    src.mkdir()
    base = client.containers.create("busybox", "true")
    base.put_archive("/", tar_of((member("evil", tarfile.SYMTYPE, f"/../../..{escape}"), None)))
    image = base.commit(repository=f"cpevil-{secrets.token_hex(4)}")
    c = client.containers.create(image.id, "true", volumes={str(src): {"bind": "/evil/x"}})
    assert c.put_archive("/evil/x", tar_of((member("f"), b"in the bind"))) is True
    assert (src / "f").read_bytes() == b"in the bind"
    assert not escape.exists()
    chunks, _ = c.get_archive(f"{escape}/x/f")  # where the link leads, inside the container
    assert read_tar(chunks)["f"][1] == b"in the bind"


def test_export_and_commit_leave_volumes_out(d, volume):
    cid = ok(d.docker("run", "-d", "-v", f"{volume}:/vol", "busybox", "sh", "-c",
                      "echo in volume > /vol/v; echo in layer > /layer")).strip()
    ok(d.docker("wait", cid))
    r = subprocess.run(["docker", "-H", d.url, "export", cid], capture_output=True, timeout=60,
                       env={**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")})
    names = tarfile.open(fileobj=io.BytesIO(r.stdout)).getnames()
    assert "layer" in names and "vol/v" not in names and "vol/old" not in names
    image_id = ok(d.docker("commit", cid)).strip()
    assert d.docker("run", "--rm", image_id, "test", "-e", "/vol/v").returncode == 1


# -- dockyard inspect finds every kind of object --------------------------------------------------


def test_dockyard_inspect_finds_volumes_and_networks(d, volume):
    net = f"cpnet-{secrets.token_hex(4)}"
    ok(d.docker("network", "create", net))
    try:
        cid = ok(d.docker("create", "--name", f"insp-{secrets.token_hex(4)}", "busybox", "true")).strip()
        out = ok(d.cli("inspect", "-f", "{{.Name}}", volume, net, cid))
        assert out.split("\n")[:2] == [volume, net]
        assert json.loads(ok(d.cli("inspect", volume)))[0]["Mountpoint"] == _volume_data(d, volume)
        assert json.loads(ok(d.cli("inspect", "--type", "network", net)))[0]["Name"] == net
        r = d.cli("inspect", "--type", "volume", "-f", "{{.Name}}", volume, net)
        assert r.returncode == 1 and r.stdout.decode() == volume + "\n"
        assert f"No such volume: {net}".encode() in r.stderr
        r = d.cli("inspect", "no-such-thing-anywhere")
        assert r.returncode == 1 and b"No such object: no-such-thing-anywhere" in r.stderr
        assert json.loads(ok(d.cli("inspect", "--type", "image", "busybox")))[0]["Id"].startswith("sha256:")
    finally:
        ok(d.docker("network", "rm", net))


def test_mount_holding_is_dockers_has_resource():
    from dockyard.containers.archive import mount_holding

    mounts = [{"Destination": "/data"}, {"Destination": "/data/sub"}, {"Destination": "/etc/x"}]
    assert mount_holding(mounts, "/data/sub/f")["Destination"] == "/data/sub"
    assert mount_holding(mounts, "/data")["Destination"] == "/data"
    assert mount_holding(mounts, "/data/../data/f/.")["Destination"] == "/data"
    assert mount_holding(mounts, "/database") is None
    assert mount_holding(mounts, "/") is None
