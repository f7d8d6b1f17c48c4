"""User namespaces (``dockyardd --userns-remap default``), end to end with the docker CLI: root
in a container is an unprivileged uid on the host, for the container's process, its execs, its
files and its volumes; a host bind keeps the host's ownership; what Docker refuses under
remapping is refused with Docker's words; ``--userns host`` opts out.

One daemon for the module, on a base directory other users may traverse (the remapped root
must reach the data root, as with dockerd). Everything it made is removed at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dockyard import userns
from dockyard.testing.daemon import DaemonProcess, wait_for

pytestmark = pytest.mark.privileged


def ok(r):
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    return r.stdout.decode()


def host_ids(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1])


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture(scope="module")
def remap(busybox_tar):
    base = Path(tempfile.mkdtemp(prefix="dockyard-userns-", dir="/tmp"))
    os.chmod(base, 0o711)  # dockerd's rule: remapped root must be able to reach its data root
    daemon = DaemonProcess(base, "--userns-remap", "default")
    try:
        daemon.start()
        daemon.load(busybox_tar)
        mapping = userns.resolve("dockremap")
        yield daemon, mapping
    finally:
        daemon.finish()
        leftover = mounts_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftover, leftover


@pytest.fixture
def d(remap):
    daemon, mapping = remap
    before_c = set(daemon.docker("ps", "-aq").stdout.split())
    before_v = set(daemon.docker("volume", "ls", "-q").stdout.split())
    yield daemon
    for cid in set(daemon.docker("ps", "-aq").stdout.split()) - before_c:
        daemon.docker("rm", "-f", cid.decode())
    for name in set(daemon.docker("volume", "ls", "-q").stdout.split()) - before_v:
        daemon.docker("volume", "rm", "-f", name.decode())


@pytest.fixture
def mapping(remap):
    return remap[1]


def test_default_remap_uses_dockremap_ranges(mapping):
    assert mapping.user == mapping.group == "dockremap"
    assert mapping.root_uid > 0 and mapping.root_gid > 0
    assert mapping.uids[0].size >= 65536


def test_root_in_container_is_an_unprivileged_host_uid(d, mapping):
    assert ok(d.docker("run", "--rm", "busybox", "id")).startswith("uid=0(root) gid=0(root)")
    maps = ok(d.docker("run", "--rm", "busybox", "cat", "/proc/self/uid_map", "/proc/self/gid_map")).split()
    assert maps == ["0", str(mapping.root_uid), str(mapping.uids[0].size),
                    "0", str(mapping.root_gid), str(mapping.gids[0].size)]
    cid = ok(d.docker("run", "-d", "busybox", "sleep", "300")).strip()
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", cid)))
    assert host_ids(pid) == (mapping.root_uid, mapping.root_gid)
    # the image's files are root's inside and the remapped root's on the host (shifted at unpack)
    assert ok(d.docker("exec", cid, "stat", "-c", "%u:%g", "/bin/busybox")).strip() == "0:0"
    st = os.stat(f"/proc/{pid}/root/bin/busybox")
    assert (st.st_uid, st.st_gid) == (mapping.root_uid, mapping.root_gid)
    # the container's root can write its own rootfs, and its /etc/hosts as without remapping
    ok(d.docker("exec", cid, "sh", "-c", "echo x > /written && mkdir /newdir && echo '10.9.9.9 extra' >> /etc/hosts"))
    assert ok(d.docker("exec", cid, "stat", "-c", "%u", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname")).split() \
        == ["0", "0", "0"]
    assert os.stat(f"/proc/{pid}/root/written").st_uid == mapping.root_uid


def test_exec_joins_the_user_namespace(d, mapping):
    cid = ok(d.docker("run", "-d", "busybox", "sleep", "300")).strip()
    assert ok(d.docker("exec", cid, "id")).startswith("uid=0(root)")
    assert ok(d.docker("exec", cid, "cat", "/proc/self/uid_map")).split() == \
        ["0", str(mapping.root_uid), str(mapping.uids[0].size)]
    # a process an exec leaves running is the remapped root on the host, too
    ok(d.docker("exec", "-d", cid, "sh", "-c", "exec sleep 301"))
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", cid)))

    def exec_pid():
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
                    ns = os.readlink(f"/proc/{entry}/ns/pid")
                except OSError:
                    continue
                if cmd == b"sleep\x00301\x00" and ns == os.readlink(f"/proc/{pid}/ns/pid"):
                    return int(entry)
        return None

    assert host_ids(wait_for(exec_pid)) == (mapping.root_uid, mapping.root_gid)
    # and with a TTY
    assert "uid=0(root)" in ok(d.docker("exec", "-t", cid, "id"))


def test_named_volume_is_owned_by_remapped_root(d, mapping):
    ok(d.docker("volume", "create", "uvol"))
    ok(d.docker("run", "--rm", "-v", "uvol:/data", "busybox", "sh", "-c", "touch /data/f && mkdir /data/dir"))
    mountpoint = Path(ok(d.docker("volume", "inspect", "-f", "{{.Mountpoint}}", "uvol")).strip())
    for p in (mountpoint, mountpoint / "f", mountpoint / "dir"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (mapping.root_uid, mapping.root_gid), p
    assert str(d.data_root / mapping.dirname) in str(mountpoint)


def test_host_bind_keeps_host_ownership(d, tmp_path):
    src = tmp_path / "hostdir"
    src.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o711)
    (src / "marker").write_text("host root's\n")
    r = d.docker("run", "--rm", "-v", f"{src}:/b", "busybox", "sh", "-c",
                 "cat /b/marker; stat -c %u /b/marker; echo owned > /b/marker; touch /b/new")
    out = r.stdout.decode()
    assert r.returncode != 0
    assert "host root's" in out and "65534" in out  # readable, owned by nobody (unmapped)
    assert (src / "marker").read_text() == "host root's\n"
    assert not (src / "new").exists()
    # a mode that allows it lets the container write, as any other host user
    os.chmod(src, 0o777)
    ok(d.docker("run", "--rm", "-v", f"{src}:/b", "busybox", "touch", "/b/new"))
    assert os.stat(src / "new").st_uid != 0


@pytest.mark.parametrize("flags, message", [
    (["--privileged"], "privileged mode is incompatible with user namespaces.  You must run the container "
                       "in the host namespace when running privileged mode"),
    (["--network", "host"], "cannot share the host's network namespace when user namespaces are enabled"),
    (["--pid", "host"], "cannot share the host PID namespace when user namespaces are enabled"),
])
def test_refused_under_remapping_unless_userns_host(d, flags, message):
    r = d.docker("run", "--rm", *flags, "busybox", "true")
    assert r.returncode != 0 and message in r.stderr.decode()
    ok(d.docker("run", "--rm", "--userns", "host", *flags, "busybox", "true"))


def test_userns_host_runs_as_real_root(d):
    cid = ok(d.docker("run", "-d", "--userns", "host", "busybox", "sleep", "300")).strip()
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", cid)))
    assert host_ids(pid) == (0, 0)
    assert ok(d.docker("exec", cid, "cat", "/proc/self/uid_map")).split() == ["0", "0", "4294967295"]
    assert ok(d.docker("inspect", "-f", "{{.HostConfig.UsernsMode}}", cid)).strip() == "host"


def test_info_reports_userns_and_the_remapped_root(d, mapping):
    info = d.docker_client().info()
    assert "name=userns" in info["SecurityOptions"]
    assert info["DockerRootDir"] == str(d.data_root / mapping.dirname)
    st = os.stat(info["DockerRootDir"])
    assert st.st_gid == mapping.root_gid and st.st_mode & 0o777 == 0o710


def test_proc_sys_and_dev_in_the_user_namespace(d):
    out = ok(d.docker("run", "--rm", "busybox", "sh", "-c",
                      "grep -E ' /(proc|sys) ' /proc/mounts; echo x > /dev/null; head -c 8 /dev/urandom | wc -c; "
                      "ls /sys/class >/dev/null && echo sys-ok; echo 1 > /proc/sys/kernel/sysrq || echo sysrq-refused"))
    assert "proc /proc proc" in out and " /sys sysfs ro," in out
    assert "8\n" in out and "sys-ok" in out and "sysrq-refused" in out
    # with a network namespace of its own (owned by the user namespace) sysfs is mounted for real
    assert " /sys sysfs ro," in ok(d.docker("run", "--rm", "--network", "none", "busybox", "grep", " /sys ",
                                            "/proc/mounts"))


def test_archives_show_container_ids_and_unpack_shifted(d, mapping, tmp_path):
    """docker cp out/in, export and commit go through the mapping both ways, as dockerd's
    archiver: tars show the container's ids, files written land shifted on the host."""
    import tarfile

    cid = ok(d.docker("run", "-d", "busybox", "sh", "-c", "echo hi > /made && chown 1000:1000 /made; sleep 300")).strip()
    wait_for(lambda: d.docker("exec", cid, "test", "-O", "/etc/passwd").returncode == 0 and
             d.docker("exec", cid, "test", "-f", "/made").returncode == 0)
    out = tmp_path / "out.tar"
    out.write_bytes(d.docker("cp", f"{cid}:/bin/busybox", "-").stdout)
    with tarfile.open(out) as t:
        assert [(m.uid, m.gid) for m in t.getmembers()] == [(0, 0)]
    out.write_bytes(d.docker("export", cid).stdout)
    with tarfile.open(out) as t:
        owners = {m.name: (m.uid, m.gid) for m in t.getmembers()}
    assert owners["bin/busybox"] == (0, 0) and owners["made"] == (1000, 1000)
    # commit: the container's layer is exported (shifted back) and unpacked again (shifted)
    ok(d.docker("commit", cid, "userns-commit:1"))
    try:
        assert ok(d.docker("run", "--rm", "userns-commit:1", "stat", "-c", "%u:%g", "/made", "/bin/busybox")).split() \
            == ["1000:1000", "0:0"]
    finally:
        d.docker("rmi", "-f", "userns-commit:1")
    # cp into the container: owned by the container's root (its own ids with -a)
    src = tmp_path / "in.txt"
    src.write_text("in\n")
    os.chown(src, 1000, 1000)
    ok(d.docker("cp", str(src), f"{cid}:/in.txt"))
    ok(d.docker("cp", "-a", str(src), f"{cid}:/in-a.txt"))
    assert ok(d.docker("exec", cid, "stat", "-c", "%u:%g", "/in.txt", "/in-a.txt")).split() == ["1000:1000", "0:0"]
    pid = int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", cid)))
    st = os.stat(f"/proc/{pid}/root/in.txt")
    assert (st.st_uid, st.st_gid) == (mapping.uid_to_host(1000), mapping.gid_to_host(1000))


def test_build_copy_and_run_under_remapping(d, mapping, tmp_path):
    (tmp_path / "f.txt").write_text("context\n")
    (tmp_path / "Dockerfile").write_text("FROM busybox\nCOPY f.txt /copied\nCOPY --chown=1000:1000 f.txt /owned\n"
                                         "RUN touch /ran && cat /proc/self/uid_map\n")
    r = d.docker("build", "--no-cache", "-t", "userns-build:1", str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    assert str(mapping.root_uid) in (r.stdout + r.stderr).decode()  # RUN's uid_map: remapped too
    try:
        assert ok(d.docker("run", "--rm", "userns-build:1", "stat", "-c", "%u:%g", "/copied", "/owned", "/ran")).split() \
            == ["0:0", "1000:1000", "0:0"]
    finally:
        d.docker("rmi", "-f", "userns-build:1")


def test_pid_container_shares_the_donors_user_namespace(d, mapping):
    """--pid container:X joins X's user namespace too (as Docker), so /proc of X's pid
    namespace can be mounted; a donor in the host's user namespace is refused."""
    x = ok(d.docker("run", "-d", "busybox", "sleep", "300")).strip()
    out = ok(d.docker("run", "--rm", "--pid", f"container:{x}", "busybox", "sh", "-c", "ps; cat /proc/self/uid_map"))
    assert "sleep 300" in out and f"0 {mapping.root_uid} " in " ".join(out.split())
    y = ok(d.docker("run", "-d", "--pid", f"container:{x}", "busybox", "sleep", "301")).strip()
    pid_x, pid_y = (int(ok(d.docker("inspect", "-f", "{{.State.Pid}}", c))) for c in (x, y))
    assert os.readlink(f"/proc/{pid_y}/ns/user") == os.readlink(f"/proc/{pid_x}/ns/user")
    assert host_ids(pid_y) == (mapping.root_uid, mapping.root_gid)
    assert ok(d.docker("exec", y, "id")).startswith("uid=0(root)")
    h = ok(d.docker("run", "-d", "--userns", "host", "busybox", "sleep", "300")).strip()
    r = d.docker("run", "--rm", "--pid", f"container:{h}", "busybox", "true")
    assert r.returncode != 0 and "host's user namespace" in r.stderr.decode()


def test_network_and_ipc_of_another_container(d, mapping):
    x = ok(d.docker("run", "-d", "--ipc", "shareable", "busybox", "sleep", "300")).strip()
    out = ok(d.docker("run", "--rm", "--network", f"container:{x}", "--ipc", f"container:{x}", "busybox", "sh", "-c",
                      "id; cat /proc/self/uid_map; grep ' /sys ' /proc/mounts"))
    assert out.startswith("uid=0(root)") and str(mapping.root_uid) in out and " ro," in out


def test_bad_remap_values_stop_the_daemon(tmp_path):
    base = tmp_path / "bad"
    for value, message in (("no-such-user-xyz", "no such user"), ("root", "cannot remap to root")):
        daemon = DaemonProcess(base, "--userns-remap", value)
        with pytest.raises(RuntimeError, match=message):
            daemon.start(timeout=30)


def test_layer_with_an_id_outside_the_range_is_refused(d, mapping, tmp_path):
    """A layer owner the mapping cannot shift refuses the load (dockerd's error), leaving nothing."""
    import io
    import tarfile

    from dockyard.testing.images import busybox_layer, image_config, image_tar

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("far")
        info.uid = info.gid = mapping.uids[-1].container + mapping.uids[-1].size + 5
        info.size = 2
        t.addfile(info, io.BytesIO(b"x\n"))
    layers = [busybox_layer(), buf.getvalue()]
    tar = image_tar(tmp_path / "far.tar", [(image_config(layers, cmd=["true"]), layers, ["userns-far:1"])])
    r = d.docker("load", "-i", str(tar))
    assert r.returncode != 0 and "cannot be mapped to a host ID" in (r.stdout + r.stderr).decode()
    assert d.docker("image", "inspect", "userns-far:1").returncode != 0
    storage = d.data_root / mapping.dirname / "storage" / "overlay"
    assert storage.is_dir() and not list(storage.glob(".tmp-*"))
