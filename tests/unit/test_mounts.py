"""The pure parts of volumes and mounts: Docker's -v / --mount / --tmpfs parsing and checks,
the local driver's option checks, what the shim is told, and the CLI's --mount parser."""

from pathlib import Path
from types import SimpleNamespace

import click
import pytest

from dockyard.containers import mounts as M
from dockyard.drivers.runtime import ContainerSpec, Mount
from dockyard.errors import InvalidArgument, NoSuchContainer
from dockyard.runtime import spec as S
from dockyard.volumes.local import LocalVolumes, parse_mount_options
from dockyard_cli.volumes import apply_mount_flags, parse_mount_flag


def test_binds_are_parsed_as_docker_does():
    named = M.parse_bind("data:/var/lib/x:ro", "")
    assert named == {"Type": "volume", "Name": "data", "Source": "", "Destination": "/var/lib/x",
                     "Driver": "local", "Mode": "ro", "RW": False, "Propagation": "", "copy": True,
                     "anonymous": False}
    bind = M.parse_bind("/srv//x/:/x/:rw,Z,rslave", "")
    assert (bind["Type"], bind["Source"], bind["Destination"], bind["RW"], bind["Propagation"]) == \
        ("bind", "/srv/x", "/x", True, "rslave")
    assert M.parse_bind("/srv:/x", "")["Propagation"] == "rprivate"
    anon = M.parse_bind("/only/dest", "custom")
    assert anon["Type"] == "volume" and anon["anonymous"] and anon["Driver"] == "custom"
    assert M.parse_bind("vv:/x:nocopy", "")["copy"] is False


@pytest.mark.parametrize("spec, message", [
    ("v:relative", "mount path must be absolute"),
    ("v:/", "destination can't be '/'"),
    ("v:/x:rw,ro", "invalid mode: rw,ro"),
    ("v:/x:bogus", "invalid mode: bogus"),
    ("/x:ro", "invalid volume specification"),
    ("a:b:c:d", "invalid volume specification"),
    ("/host:/x:nocopy", "invalid mode: nocopy"),
    ("v:/x:rshared", "invalid mode: rshared"),
    ("bad name:/x", "invalid characters for a local volume name"),
])
def test_bad_binds_are_400(spec, message):
    with pytest.raises(InvalidArgument, match=message):
        M.parse_bind(spec, "")


@pytest.mark.parametrize("mount, message", [
    ({"Type": "bind", "Target": "/x"}, "field Source must not be empty"),
    ({"Type": "bind", "Source": "/nonexistent-dockyard", "Target": "/x"}, "bind source path does not exist"),
    ({"Type": "bind", "Source": "/", "Target": "/x", "VolumeOptions": {}}, "field VolumeOptions must not be"),
    ({"Type": "bind", "Source": "/", "Target": "/x", "BindOptions": {"Propagation": "weird"}}, "propagation"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True}, "anonymous volumes"),
    ({"Type": "volume", "Source": "v", "Target": "x"}, "mount path must be absolute"),
    ({"Type": "volume", "Source": "v", "Target": "/"}, "destination can't be '/'"),
    ({"Type": "volume", "Source": "v"}, "field Target must not be empty"),
    ({"Type": "tmpfs", "Source": "x", "Target": "/x"}, "Source must not be specified"),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}}, "invalid tmpfs size"),
    ({"Type": "nfs", "Target": "/x"}, "mount type unknown"),
])
def test_bad_mounts_are_400(mount, message):
    with pytest.raises(InvalidArgument, match=message):
        M.parse_mount(mount)


def test_tmpfs_options_keep_docker_defaults_unless_asked():
    assert M.tmpfs_options("") == ["nosuid", "nodev", "noexec"]
    assert M.tmpfs_options("exec,size=64m,mode=1777") == ["nosuid", "nodev", "size=64m", "mode=1777"]
    assert "ro" in M.tmpfs_options("", readonly=True)
    with pytest.raises(InvalidArgument, match="invalid tmpfs option"):
        M.tmpfs_options("rm -rf")
    t = M.parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o700}})
    assert t["tmpfs"] == ["nosuid", "nodev", "noexec", "size=1048576", "mode=700"]


class FakeContainers:
    """What plan() asks of the containers service: other containers, and volume drivers."""

    def __init__(self, others=None, drivers=("local",)):
        self.others = others or {}

        def driver(name):
            if name not in drivers:
                raise InvalidArgument(f"error looking up volume plugin {name}")
        self.daemon = SimpleNamespace(volumes=SimpleNamespace(driver=driver))

    def get(self, ref):
        if ref not in self.others:
            raise NoSuchContainer(ref)
        return self.others[ref]


def test_plan_orders_sources_as_docker():
    other = SimpleNamespace(mounts=[
        {"Type": "volume", "Name": "shared", "Source": "/v/shared", "Destination": "/s", "Driver": "local",
         "Mode": "z", "RW": True, "Propagation": "", "anonymous": True},
        {"Type": "bind", "Source": "/h", "Destination": "/over", "Mode": "", "RW": True, "Propagation": "rprivate"},
    ])
    hc = {"VolumesFrom": ["src:ro"], "Binds": ["mine:/over"], "Tmpfs": {"/run": "size=1m"}}
    points = M.plan({"Volumes": {"/data": {}, "/run": {}, "/s": {}}}, hc, FakeContainers({"src": other}))
    by_target = {p["Destination"]: p for p in points}
    assert by_target["/s"]["RW"] is False and "anonymous" not in by_target["/s"]  # inherited, read-only
    assert by_target["/over"]["Name"] == "mine"  # Binds override VolumesFrom
    assert by_target["/data"]["anonymous"] and by_target["/data"]["copy"]  # the image's VOLUME
    assert "/run" not in by_target  # --tmpfs is not listed in Mounts, and wins over the image's VOLUME


@pytest.mark.parametrize("hc, message", [
    ({"Binds": ["aa:/x", "bb:/x"]}, "Duplicate mount point: /x"),
    ({"Binds": ["aa:/x"], "Mounts": [{"Type": "volume", "Source": "bb", "Target": "/x/"}]}, "Duplicate mount point"),
    ({"Binds": ["aa:/x"], "Tmpfs": {"/x": ""}}, "Duplicate mount point"),
    ({"VolumesFrom": ["nosuch"]}, "No such container: nosuch"),
    ({"Binds": ["aa:/x"], "VolumeDriver": "nosuchdriver"}, "nosuchdriver"),
    ({"Tmpfs": {"relative": ""}}, "mount path must be absolute"),
])
def test_plan_rejects_bad_input(hc, message):
    with pytest.raises(InvalidArgument, match=message):
        M.plan({}, hc, FakeContainers())


def test_populate_copies_image_content_once_and_never_escapes(tmp_path):
    rootfs, vol = tmp_path / "rootfs", tmp_path / "vol"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data" / "seed").write_text("seed")
    (rootfs / "link").symlink_to("/data")
    (rootfs / "escape").symlink_to("../../../../../../etc")  # resolves to <rootfs>/etc: missing
    vol.mkdir()
    M.populate(rootfs, "/link", vol)
    assert (vol / "seed").read_text() == "seed"
    (vol / "seed").write_text("changed")
    M.populate(rootfs, "/data", vol)  # not empty any more: untouched
    assert (vol / "seed").read_text() == "changed"
    other = tmp_path / "other"
    other.mkdir()
    M.populate(rootfs, "/escape", other)
    assert list(other.iterdir()) == []  # the host's /etc was not copied


def test_local_driver_options_are_checked():
    LocalVolumes.validate({})
    LocalVolumes.validate({"type": "tmpfs", "device": "tmpfs", "o": "size=1m,uid=1000"})
    for opts, message in (({"type": "tmpfs"}, "device"), ({"device": "/dev/x"}, "type"), ({"colour": "x"}, "colour"),
                          ({"o": "size=1m"}, "type"), ({"type": "none", "device": "rel", "o": "bind"}, "absolute")):
        with pytest.raises(InvalidArgument, match=message):
            LocalVolumes.validate(opts)
    assert parse_mount_options("ro,nosuid,size=1m,bind,uid=0") == (1 | 2 | 4096, "size=1m,uid=0")


def test_shim_records_for_binds_and_tmpfs(tmp_path):
    spec = ContainerSpec(id="c" * 64, rootfs=tmp_path, args=["true"], mounts=[
        Mount(str(tmp_path), "/b", "bind", ["rbind", "ro", "rslave"]),
        Mount("tmpfs", "/t", "tmpfs", ["nosuid", "nodev", "noexec", "size=1m", "mode=700"]),
    ])
    raw = S.build(spec, state_dir=tmp_path, log_path=tmp_path / "log", exit_path=tmp_path / "exit",
                  init_path="/x")
    assert b"bind\0" + str(tmp_path).encode() + b"\0/b\0" + b"1\0" + b"1\0" + str(1 << 19).encode() in raw
    assert b"tmpfs\0/t\0" + str(2 | 4 | 8).encode() + b"\0size=1m,mode=700" in raw


def test_cli_mount_flags_become_the_create_body():
    m = parse_mount_flag("type=volume,src=data,dst=/d,readonly,volume-opt=type=tmpfs,volume-label=a=b,volume-nocopy")
    assert m == {"Type": "volume", "Source": "data", "Target": "/d", "ReadOnly": True,
                 "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs"}}, "Labels": {"a": "b"},
                                   "NoCopy": True}}
    t = parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1777")
    assert t["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1777}
    with pytest.raises(click.BadParameter):
        parse_mount_flag("type=bind,src=/x,dst=/y,unknown=1")
    body, hc = {}, {}
    apply_mount_flags({"volume": ("/anon", "n:/n:ro"), "tmpfs": ("/run:size=1m",), "volumes_from": ("c1",),
                       "mount": (), "volume_driver": None}, body, hc)
    assert body == {"Volumes": {"/anon": {}}}
    assert hc == {"Binds": ["n:/n:ro"], "Tmpfs": {"/run": "size=1m"}, "VolumesFrom": ["c1"]}
