"""Hostile layer tars through ``docker load`` on the real storage drivers (overlay and vfs):
refused whole, nothing left in the data root, nothing outside it touched (issue 13: "hostile
layer tars").

Already covered elsewhere, with the same generator (core/testing/images.py::hostile_image_tars):
``..`` and absolute members, a symlink then a write through it, a hard link out of the layer,
bad digests, truncated archives, a bad second image: tests/unit/test_image_store.py::
test_hostile_archive_leaves_the_data_root_unchanged (the image service) and tests/api/
test_images.py::test_hostile_loads_leave_the_data_root_unchanged (the API, fake storage by
default). Here those cases run once more through the docker CLI on overlay and vfs, with the
cases they lack: targets that are a marker directory of the test's own (so an escape would be
seen, not just refused), device nodes, whiteout tricks (``..`` names, a whiteout or opaque
marker through a symlink), a directory replaced by a symlink mid-layer, and the same tricks
split over two layers (where overlay keeps each layer in a directory of its own and vfs copies
the lower one first).
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tarfile
from pathlib import Path

import pytest

from dockyard.testing.images import busybox_layer, hostile_image_tars, image_config, image_tar

pytestmark = pytest.mark.privileged

EPOCH = 1700000000
VOLATILE = {"engine-id", "dockyardd.lock"}
NOT_IMAGES = ("networks", "containers")  # what a `docker run` of an accepted image changes


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
           dev: tuple[int, int] = (0, 0)) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = kind, linkname, EPOCH
    info.mode = 0o755 if kind in (tarfile.DIRTYPE, tarfile.SYMTYPE) else 0o644
    info.devmajor, info.devminor = dev
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def layer(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def hostile_layers(marker: Path) -> dict[str, list[bytes]]:
    """Layer stacks (above busybox and a good layer) aimed at ``marker`` (a host directory
    holding ``victim``)."""
    up = "../" * 12 + str(marker).lstrip("/")
    link = lambda name, target: member(name, tarfile.SYMTYPE, linkname=target)  # noqa: E731
    planted = b"planted by a layer\n"
    one = {
        "dotdot-into-marker": [member(f"{up}/planted", data=planted)],
        "absolute-into-marker": [member(f"{marker}/planted", data=planted)],
        "absolute-symlink-then-write": [link("esc", str(marker)), member("esc/planted", data=planted)],
        "relative-symlink-then-write": [link("esc", up), member("esc/planted", data=planted)],
        "hardlink-out-relative": [member("hl", tarfile.LNKTYPE, linkname=f"{up}/victim")],
        "hardlink-out-absolute": [member("hl", tarfile.LNKTYPE, linkname=f"{marker}/victim")],
        "hardlink-through-symlink": [link("esc", str(marker)), member("hl", tarfile.LNKTYPE, linkname="esc/victim")],
        "hardlink-to-a-later-file": [member("hl", tarfile.LNKTYPE, linkname="later"), member("later", data=b"x")],
        "char-device": [member("dev/mem", tarfile.CHRTYPE, dev=(1, 1))],
        "block-device": [member("dev/sda", tarfile.BLKTYPE, dev=(8, 0))],
        "whiteout-of-dotdot": [member("a/.wh...")],
        "whiteout-of-nothing": [member("a/.wh.")],
        "whiteout-through-symlink": [link("esc", str(marker)), member("esc/.wh.victim")],
        "opaque-through-symlink": [link("esc", str(marker)), member("esc/.wh..wh..opq")],
        "dir-replaced-by-symlink": [member("d", tarfile.DIRTYPE), link("d", str(marker)),
                                    member("d/planted", data=planted)],
    }
    stacks = {name: [layer(*members)] for name, members in one.items()}
    # split over two layers: the link in one, the write or whiteout in the next
    lower = layer(link("esc", str(marker)))
    stacks["symlink-then-write-next-layer"] = [lower, layer(member("esc/planted", data=planted))]
    stacks["symlink-then-whiteout-next-layer"] = [lower, layer(member("esc/.wh.victim"))]
    stacks["symlink-then-opaque-next-layer"] = [lower, layer(member("esc/.wh..wh..opq"))]
    stacks["symlink-then-hardlink-next-layer"] = [lower, layer(member("hl", tarfile.LNKTYPE, linkname="esc/victim"))]
    return stacks


# the two-layer cases overlay may accept (each layer is a directory of its own: the write lands
# in a real directory of the upper layer, never through the lower layer's link)
MAY_LOAD = {"symlink-then-write-next-layer", "symlink-then-whiteout-next-layer", "symlink-then-opaque-next-layer"}


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel in VOLATILE or rel.split("/")[0] in NOT_IMAGES:
                continue
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file():
                out[rel] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
            else:
                out[rel] = ("other", st.st_mode)
    return out


@pytest.fixture
def marker():
    path = Path(f"/tmp/dockyard-hostile-layers-{secrets.token_hex(6)}")
    path.mkdir()
    (path / "victim").write_text("host file\n")
    yield path
    shutil.rmtree(path)


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_hostile_layers_are_refused_whole_and_touch_nothing(make_daemon, busybox_tar, tmp_path, marker, driver):
    d = make_daemon("-s", driver, env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})
    d.load(busybox_tar)
    base = busybox_layer()
    good = layer(member("hostile", tarfile.DIRTYPE), member("hostile/ok", data=b"a good layer first\n"))
    cases = {name: path for name, path in hostile_image_tars(tmp_path / "generated").items()}
    for name, stack in hostile_layers(marker).items():
        layers = [base, good, *stack]
        cases[name] = image_tar(tmp_path / f"{name}.tar",
                                [(image_config(layers, cmd=["sh"]), layers, [f"hostile:{name}"])])
    before = snapshot(d.data_root)
    marker_before = snapshot(marker)
    for name, path in cases.items():
        r = d.docker("load", "-i", str(path), timeout=120)
        assert snapshot(marker) == marker_before, name  # nothing outside the data root, whatever happened
        if r.returncode == 0 and driver == "overlay" and name in MAY_LOAD:
            out = d.docker("run", "--rm", "--network", "none", f"hostile:{name}", "sh", "-c",
                           "cat /esc/* 2>/dev/null; true", timeout=120)
            assert out.returncode == 0, out.stderr
            assert b"host file" not in out.stdout, name
            assert d.docker("rmi", f"hostile:{name}").returncode == 0
            continue
        assert r.returncode != 0, f"{name} was loaded: {r.stdout!r}"
        assert snapshot(d.data_root) == before, name
    assert (marker / "victim").read_text() == "host file\n"
    assert sorted(os.listdir(marker)) == ["victim"]
    assert d.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split() == ["busybox:latest"]
    r = d.docker("run", "--rm", "--network", "none", "busybox", "true", timeout=120)  # and the store still works
    assert r.returncode == 0, r.stderr
