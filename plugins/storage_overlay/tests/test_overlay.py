"""overlay/vfs specifics: layout, deep stacks, entry points, config, Docker's overlay diff."""

import io
import os
from pathlib import Path

import pytest
import stevedore

from dockyard.errors import ConfigError
from dockyard.testing.conformance_storage import BASE, D, F, O, W, make_tar, mounts_under
from dockyard_storage_overlay import OverlayDriver, VfsDriver
from dockyard_storage_overlay import mounts


def load(name, tmp_path, **config):
    return stevedore.DriverManager(
        "dockyard.storage", name, invoke_on_load=True,
        invoke_kwds={"config": config, "root": tmp_path / "root", "state": tmp_path / "state"}).driver


@pytest.fixture
def overlay(tmp_path):
    drv = OverlayDriver({}, tmp_path / "root", tmp_path / "state")
    yield drv
    for cid in drv.containers():
        drv.remove_rw(cid)
    drv.close()
    assert mounts_under(drv.root) == [] and list(drv.root.glob(".tmp-*")) == []


def test_entry_points():
    names = set(stevedore.ExtensionManager("dockyard.storage").names())
    assert {"overlay", "vfs", "fake"} <= names


@pytest.mark.privileged
def test_stevedore_loads_overlay(tmp_path):
    drv = load("overlay", tmp_path)
    assert isinstance(drv, OverlayDriver) and drv.name == "overlay2"
    status = dict(drv.status())
    assert status["Backing Filesystem"] == {"ext4": "extfs"}.get(mounts.filesystem_of(str(drv.root)),
                                                                 mounts.filesystem_of(str(drv.root)))
    assert status["Native Overlay Diff"] == "true"
    OverlayDriver.check()


def test_stevedore_loads_vfs(tmp_path):
    assert isinstance(load("vfs", tmp_path), VfsDriver)


@pytest.mark.parametrize("cls", [OverlayDriver, VfsDriver])
def test_config_errors(tmp_path, cls):
    with pytest.raises(ConfigError):
        cls({"bogus": 1}, tmp_path / "r", tmp_path / "s")
    with pytest.raises(ConfigError):
        cls({"allow_devices": "yes"}, tmp_path / "r", tmp_path / "s")


def test_overlay_config_mount_api(tmp_path):
    with pytest.raises(ConfigError):
        OverlayDriver({"mount_api": "magic"}, tmp_path / "r", tmp_path / "s")


@pytest.mark.privileged
def test_layout_like_overlay2(overlay):
    overlay.create_layer("base", None, make_tar(*BASE))
    overlay.create_layer("child", "base", make_tar(F("c")))
    overlay.create_rw("cid", "child")
    root = overlay.root
    short_base = (root / "base/link").read_text()
    short_child = (root / "child/link").read_text()
    assert len(short_base) == 26 and os.readlink(root / "l" / short_base) == "../base/diff"
    assert not (root / "base/lower").exists()
    assert (root / "child/lower").read_text() == f"l/{short_base}"
    assert (root / "cid/lower").read_text() == f"l/{short_child}:l/{short_base}"
    assert {p.name for p in (root / "cid").iterdir()} >= {"diff", "work", "merged"}
    assert overlay.layers() == ["base", "child"] and overlay.containers() == ["cid"]
    overlay.remove_layer("child")
    assert not (root / "l" / short_child).exists() and overlay.layers() == ["base"]


@pytest.mark.privileged
def test_whiteouts_are_overlay_whiteouts(overlay):
    overlay.create_layer("base", None, make_tar(*BASE))
    overlay.create_layer("child", "base", make_tar(W("etc/passwd"), D("dir"), O("dir")))
    diff = overlay.root / "child/diff"
    st = os.lstat(diff / "etc/passwd")
    assert (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == 0
    assert os.getxattr(diff / "dir", "trusted.overlay.opaque") == b"y"


@pytest.mark.privileged
@pytest.mark.parametrize("api", ["new", "legacy"])
def test_hundred_layer_image_mounts(tmp_path, api):
    drv = OverlayDriver({"mount_api": api}, tmp_path / "root", tmp_path / "state")
    parent = None
    for i in range(100):
        layer = f"{i:064x}"  # chain-id-sized ids: absolute paths would not fit one page
        drv.create_layer(layer, parent, make_tar(F(f"layer{i}", str(i).encode()), F("top", str(i).encode())))
        parent = layer
    drv.create_rw("c" * 64, parent)
    try:
        merged = Path(drv.mount("c" * 64))
        assert len([n for n in os.listdir(merged) if n.startswith("layer")]) == 100
        assert (merged / "top").read_text() == "99" and (merged / "layer0").read_text() == "0"
    finally:
        drv.remove_rw("c" * 64)
    assert mounts_under(drv.root) == []


def test_legacy_options_page_limit():
    with pytest.raises(OSError):
        mounts.legacy_options([f"/very/long/path/{i:064x}" for i in range(100)], "u", "w")


@pytest.mark.privileged
def test_overlay_changes_opaque_dir_like_docker(overlay):
    """``rm -rf /dir; mkdir /dir; touch /dir/new``: Docker's overlay diff says D /dir, A /dir/new."""
    overlay.create_layer("base", None, make_tar(*BASE))
    overlay.create_rw("c", "base")
    merged = Path(overlay.mount("c"))
    for name in os.listdir(merged / "dir"):
        os.unlink(merged / "dir" / name)
    os.rmdir(merged / "dir")
    os.mkdir(merged / "dir")
    (merged / "dir/new").write_text("n")
    changes = overlay.changes("c")
    assert {"Path": "/dir", "Kind": 2} in changes and {"Path": "/dir/new", "Kind": 1} in changes
    exported = b"".join(overlay.export_changes("c"))
    overlay.create_layer("commit", "base", io.BytesIO(exported))
    overlay.create_rw("v", "commit")
    assert os.listdir(overlay.mount("v") + "/dir") == ["new"]


def test_fifo_and_devices_option(tmp_path):
    drv = VfsDriver({"allow_devices": True}, tmp_path / "root", tmp_path / "state")
    if os.geteuid() != 0:
        pytest.skip("mknod of a device needs root")
    from dockyard.testing.conformance_storage import C
    drv.create_layer("dev", None, make_tar(C("dev/null", 1, 3)))
    st = os.lstat(drv.root / "layers/dev/rootfs/dev/null")
    assert os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3


@pytest.mark.privileged
def test_remove_rw_waits_for_neither_the_release_nor_the_deletion(overlay, monkeypatch):
    """``docker rm`` waits for the overlay's detach and the rename only: the release (the
    superblock's shutdown syncs the upper filesystem) and the deletion of the renamed
    directory finish in workers, and ``close`` waits for them. Held here: the release is
    gated, so a remove_rw that waited for it would never return."""
    import threading

    from dockyard_storage_overlay import overlay as ov

    gate = threading.Event()

    class GatedOs:
        def __getattr__(self, name):
            return getattr(os, name)

        def close(self, fd):
            if threading.current_thread().name.startswith("overlay-release"):
                assert gate.wait(60)
            os.close(fd)

    monkeypatch.setattr(ov, "os", GatedOs())
    overlay.create_layer("base", None, make_tar(*BASE))
    overlay.create_rw("c", "base")
    with open(os.path.join(overlay.mount("c"), "written"), "w") as f:
        f.write("data")
    done = threading.Event()
    remover = threading.Thread(target=lambda: (overlay.remove_rw("c"), done.set()))
    try:
        remover.start()
        assert done.wait(60), "remove_rw waited for the overlay's release"
        assert overlay.containers() == [] and mounts_under(overlay.root) == []
        assert not overlay.is_mounted("c")
        assert [p.name[:8] for p in overlay.root.glob(".tmp-*")] == [".tmp-rm-"]  # not deleted yet
    finally:
        gate.set()
        remover.join(60)
    overlay.close()
    assert list(overlay.root.glob(".tmp-*")) == [] and overlay.layers() == ["base"]


@pytest.mark.privileged
def test_is_mountpoint_asks_statx_and_agrees_with_mountinfo(overlay):
    """is_mountpoint is one statx (STATX_ATTR_MOUNT_ROOT, Linux 5.8+) instead of a read of
    mountinfo per start; it says what mountinfo says, for an overlay too, before and after."""
    overlay.create_layer("base", None, make_tar(*BASE))
    overlay.create_rw("c", "base")
    merged = str(overlay.root / "c" / "merged")
    paths = ["/", "/proc", "/sys", str(overlay.root), merged, merged + "/missing", "/no/such/path"]

    def by_mountinfo(path):
        return any(point == path for point, _ in mounts.mountinfo())

    def check():
        for path in paths:
            assert mounts._is_mount_root(path) is not None, path  # this kernel has the attribute
            assert mounts.is_mountpoint(path) == by_mountinfo(path), path

    check()
    assert overlay.mount("c") == merged and mounts.is_mountpoint(merged)
    check()
    overlay.unmount("c")
    assert not overlay.is_mounted("c") and not mounts.is_mountpoint(merged)
    check()
