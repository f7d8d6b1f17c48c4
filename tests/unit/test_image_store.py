"""The image service in-process over the fake storage driver: content store, layers and
refcounts, tag/untag/delete semantics, prune, persistence, save/load round trips, and
hostile archives that must leave the data root exactly as it was."""

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import Conflict, InvalidArgument, NoSuchImage, Unavailable
from dockyard.images import ImageService
from dockyard.images.store import ContentStore, DigestMismatch
from dockyard.testing.fake_storage import FakeStorage
from dockyard.testing.images import (
    busybox_layer, hostile_image_tars, image_config, image_id_of, image_tar, multilayer_image_tar,
    tar_from_entries,
)


class Events:
    def __init__(self):
        self.seen = []

    def emit(self, type, action, actor, **attrs):
        self.seen.append((type, action, actor, attrs))


def make_service(root: Path, driver=None):
    driver = driver or FakeStorage({}, root / "storage", root / "state")
    return ImageService(root / "image", driver, Events())


def load(svc, path):
    messages = []
    with open(path, "rb") as f:
        lines = svc.load(f, messages.append)
    return lines, messages


@pytest.fixture(scope="module")
def base_layer():
    return busybox_layer()


@pytest.fixture
def svc(tmp_path):
    return make_service(tmp_path)


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", st.st_mode)
            else:
                out[rel] = ("file", st.st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


# -- content store -------------------------------------------------------------------------


def test_content_store_verifies_and_dedups(tmp_path):
    store = ContentStore(tmp_path)
    digest, created = store.write(b"hello")
    assert created and digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.read(digest) == b"hello"
    assert store.write(b"hello") == (digest, False)
    with pytest.raises(DigestMismatch):
        store.write(b"other", expected=digest)
    d2, size, created = store.write_stream(io.BytesIO(b"x" * 3_000_000))
    assert size == 3_000_000 and created and store.size(d2) == size
    with pytest.raises(DigestMismatch):
        store.write_stream(io.BytesIO(b"y"), expected=d2)
    assert sorted(store.digests()) == sorted([digest, d2])  # no temp files left behind
    store.delete(digest)
    assert not store.has(digest)


# -- load, layers, refcounts ----------------------------------------------------------------


def test_load_busybox(svc, busybox_tar):
    lines, messages = load(svc, busybox_tar)
    assert lines == ["Loaded image: busybox:latest\n"]
    assert any(m.get("status") == "Loading layer" for m in messages)
    image = svc.resolve("busybox")
    assert image.id == image_id_of(busybox_tar)
    assert svc.resolve("docker.io/library/busybox:latest") is image
    assert svc.resolve(image.id) is image and svc.resolve(image.id[7:19]) is image
    assert svc.resolve(image.id[:15]) is image
    assert svc.top_layer(image.id) in svc.driver.layers()
    inspect = svc.inspect("busybox")
    assert inspect["RepoTags"] == ["busybox:latest"] and inspect["Config"]["Cmd"] == ["sh"]
    assert inspect["RootFS"]["Layers"] == image.diff_ids
    assert ("image", "load", image.id, {"name": "busybox:latest"}) in svc.events.seen
    with pytest.raises(NoSuchImage):
        svc.resolve("alpine")
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        svc.resolve("Not Valid")


def test_shared_layers_are_refcounted(tmp_path, svc, base_layer):
    extra = tar_from_entries([("a", "file", "a\n")])
    path = image_tar(tmp_path / "two.tar", [
        (image_config([base_layer], cmd=["sh"]), [base_layer], ["one:latest"]),
        (image_config([base_layer, extra], cmd=["sh"]), [base_layer, extra], ["two:latest"]),
    ])
    load(svc, path)
    one, two = svc.resolve("one"), svc.resolve("two")
    assert one.chains[0] == two.chains[0]
    assert len(svc.driver.layers()) == 2
    assert svc.layer_refcount(one.chains[0]) == 2
    df = svc.df()
    assert df["LayersSize"] == sum(l.size for l in svc.layers.values())
    shared = {i["Id"]: i["SharedSize"] for i in df["Images"]}
    assert shared[one.id] == shared[two.id] == svc.layers[one.chains[0]].size
    records = svc.delete("one")
    assert records == [{"Untagged": "one:latest"}, {"Deleted": one.id}]  # the shared layer stays
    assert len(svc.driver.layers()) == 2
    records = svc.delete("two")
    assert {"Deleted": two.chains[1]} in records and {"Deleted": two.chains[0]} in records
    assert svc.driver.layers() == [] and svc.layers == {}


def test_tag_untag_and_delete_rules(svc, busybox_tar):
    load(svc, busybox_tar)
    image = svc.resolve("busybox")
    svc.tag("busybox", "localhost:5000/x/y", "v1")
    svc.tag(image.id, "other", None)
    assert sorted(svc.repo_tags(image.id)) == ["busybox:latest", "localhost:5000/x/y:v1", "other:latest"]
    with pytest.raises(InvalidArgument):
        svc.tag("busybox", "Bad Name", None)
    with pytest.raises(InvalidArgument):
        svc.tag("busybox", "x@sha256:" + "a" * 64, None)
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        svc.delete(image.id)
    assert svc.delete("other") == [{"Untagged": "other:latest"}]
    assert svc.delete("localhost:5000/x/y:v1") == [{"Untagged": "localhost:5000/x/y:v1"}]
    svc.in_use = lambda image_id: ["c" * 64]
    with pytest.raises(Conflict, match="container cccccccccccc is using its referenced image"):
        svc.delete("busybox")
    with pytest.raises(Conflict, match="stopped container"):
        svc.delete(image.id)
    svc.in_use = lambda image_id: [("d" * 64, True)]
    with pytest.raises(Conflict, match="cannot be forced"):
        svc.delete(image.id, force=True)
    svc.in_use = lambda image_id: []
    records = svc.delete(image.id[7:19])
    assert records[0] == {"Untagged": "busybox:latest"} and records[1] == {"Deleted": image.id}
    assert svc.images == {} and svc.refs == {}
    actions = [e[1] for e in svc.events.seen]
    assert actions.count("tag") == 2 and "untag" in actions and "delete" in actions


def test_force_delete_by_id_removes_every_tag(svc, busybox_tar):
    load(svc, busybox_tar)
    svc.tag("busybox", "a", "1")
    image = svc.resolve("busybox")
    records = svc.delete(image.id, force=True)
    assert {"Untagged": "a:1"} in records and {"Untagged": "busybox:latest"} in records
    assert {"Deleted": image.id} in records


def test_retag_by_load_leaves_old_image_dangling_then_prune(tmp_path, svc, busybox_tar, base_layer):
    load(svc, busybox_tar)
    old = svc.resolve("busybox").id
    newer = image_tar(tmp_path / "newer.tar", [
        (image_config([base_layer], cmd=["sh", "-c", "true"]), [base_layer], ["busybox:latest"])])
    lines, messages = load(svc, newer)
    assert any("renaming the old one" in m.get("stream", "") for m in messages)
    assert svc.resolve("busybox").id != old
    dangling = svc.list({"dangling": ["true"]})
    assert [i["Id"] for i in dangling] == [old] and dangling[0]["RepoTags"] == []
    result = svc.prune({})
    assert result["ImagesDeleted"] == [{"Deleted": old}]  # the layer is still used
    assert result["SpaceReclaimed"] == 0
    result = svc.prune({"dangling": ["false"]})
    assert {"Untagged": "busybox:latest"} in result["ImagesDeleted"] and result["SpaceReclaimed"] > 0
    assert svc.images == {} and svc.driver.layers() == []


def test_list_filters(tmp_path, svc, base_layer):
    path = image_tar(tmp_path / "l.tar", [
        (image_config([base_layer], labels={"team": "a"}, created="2020-01-01T00:00:00Z"), [base_layer],
         ["old:1", "old:2"]),
        (image_config([base_layer], labels={"team": "b"}, cmd=["x"], created="2022-01-01T00:00:00Z"),
         [base_layer], ["new:1"]),
    ])
    load(svc, path)
    names = lambda items: sorted(t for i in items for t in i["RepoTags"])
    assert names(svc.list({})) == ["new:1", "old:1", "old:2"]
    assert names(svc.list({"label": ["team=a"]})) == ["old:1", "old:2"]
    assert names(svc.list({"label!": ["team=a"]})) == ["new:1"]
    # moby's matchLabels: excluded only when every label! matches (as for containers, networks, volumes)
    assert names(svc.list({"label!": ["team=a", "other"]})) == ["new:1", "old:1", "old:2"]
    assert names(svc.list({"reference": ["old:1"]})) == ["old:1"]
    assert names(svc.list({"reference": ["o*"]})) == ["old:1", "old:2"]
    assert names(svc.list({"before": ["new:1"]})) == ["old:1", "old:2"]
    assert names(svc.list({"since": ["old:1"]})) == ["new:1"]
    assert svc.list({"dangling": ["true"]}) == []
    with pytest.raises(InvalidArgument):
        svc.list({"dangling": ["maybe"]})
    first = svc.list({})[0]
    assert set(first) >= {"Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "SharedSize",
                          "VirtualSize", "Labels", "Containers"}
    assert first["RepoTags"] == ["new:1"]  # newest first


def test_history(svc, multilayer_tar):
    load(svc, multilayer_tar)
    image = svc.resolve("multilayer")
    h = svc.history("multilayer")
    assert h[0]["Id"] == image.id and h[0]["Tags"] == ["multilayer:latest"]
    assert h[0]["CreatedBy"].startswith("CMD") and h[0]["Size"] == 0
    assert [e["Id"] for e in h[1:]] == ["<missing>"] * 3
    assert h[-1]["Size"] == svc.layers[image.chains[0]].size


def test_state_survives_a_restart(tmp_path, busybox_tar):
    svc = make_service(tmp_path)
    load(svc, busybox_tar)
    svc.tag("busybox", "kept", "x")
    image_id = svc.resolve("busybox").id
    again = make_service(tmp_path)
    assert again.resolve("kept:x").id == image_id
    assert sorted(again.repo_tags(image_id)) == ["busybox:latest", "kept:x"]
    assert again.layers.keys() == svc.layers.keys()


def test_restart_collects_what_a_crash_left(tmp_path, busybox_tar):
    svc = make_service(tmp_path)
    load(svc, busybox_tar)
    # a crash after the layer was created but before the image record was written
    image = svc.resolve("busybox")
    (svc.images_dir / f"{image.id[7:]}.json").unlink()
    (svc.tmp_dir / "stage-leftover").mkdir()
    again = make_service(tmp_path)
    assert again.images == {} and again.layers == {} and again.refs == {}
    assert again.driver.layers() == [] and list(again.tmp_dir.iterdir()) == []
    assert list(again.blobs.digests()) == []


def test_save_round_trips_the_image_id(tmp_path, svc, multilayer_tar):
    load(svc, multilayer_tar)
    image = svc.resolve("multilayer")
    out = tmp_path / "saved.tar"
    with open(out, "wb") as f:
        svc.save(svc.save_targets(["multilayer"]), f)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        index = json.load(tar.extractfile("index.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    assert manifest[0]["RepoTags"] == ["multilayer:latest"]
    assert manifest[0]["Config"] == f"blobs/sha256/{image.id[7:]}"
    ann = index["manifests"][0]["annotations"]
    assert ann["io.containerd.image.name"] == "docker.io/library/multilayer:latest"
    other = make_service(tmp_path / "other")
    lines, _ = load(other, out)
    assert lines == ["Loaded image: multilayer:latest\n"]
    assert other.resolve("multilayer").id == image.id
    # by id: untagged
    with open(out, "wb") as f:
        svc.save(svc.save_targets([image.id[7:19]]), f)
    third = make_service(tmp_path / "third")
    assert load(third, out)[0] == [f"Loaded image ID: {image.id}\n"]


def test_load_gzip_and_oci_layout(tmp_path, svc, busybox_tar):
    import gzip

    gz = tmp_path / "b.tar.gz"
    gz.write_bytes(gzip.compress(busybox_tar.read_bytes(), 1))
    assert load(svc, gz)[0] == ["Loaded image: busybox:latest\n"]
    saved = tmp_path / "s.tar"
    with open(saved, "wb") as f:
        svc.save(svc.save_targets(["busybox"]), f)
    # keep only the OCI part of the archive
    oci = tmp_path / "oci.tar"
    with tarfile.open(saved) as src, tarfile.open(oci, "w") as dst:
        for m in src.getmembers():
            if m.name not in ("manifest.json", "repositories"):
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    other = make_service(tmp_path / "o")
    assert load(other, oci)[0] == ["Loaded image: busybox:latest\n"]
    assert other.resolve("busybox").id == svc.resolve("busybox").id


def test_import_rootfs(tmp_path, svc):
    layer = tar_from_entries([("bin", "dir", 0o755), ("bin/hello", "file", "hi\n")])
    image = svc.import_rootfs(io.BytesIO(layer), "imported", "v1", "my message",
                              ['CMD ["/bin/hello"]', "ENV A=1 B=2", "LABEL x=y", "EXPOSE 80", "WORKDIR /w"])
    assert svc.resolve("imported:v1") is image
    c = image.config
    assert c["comment"] == "my message" and c["config"]["Cmd"] == ["/bin/hello"]
    assert c["config"]["Env"] == ["A=1", "B=2"] and c["config"]["Labels"] == {"x": "y"}
    assert c["config"]["ExposedPorts"] == {"80/tcp": {}} and c["config"]["WorkingDir"] == "/w"
    assert image.diff_ids == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with pytest.raises(InvalidArgument, match="not a valid change"):
        svc.import_rootfs(io.BytesIO(layer), None, None, "", ["RUN rm -rf /"])


def test_no_driver_is_unavailable(tmp_path, busybox_tar):
    svc = ImageService(tmp_path / "image", None)
    assert svc.list({}) == []
    with pytest.raises(Unavailable, match="no storage driver"):
        load(svc, busybox_tar)


# -- hostile archives: refused whole, nothing left behind --------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_image_tars(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("case", [
    "missing-blob", "config-digest-mismatch", "layer-digest-mismatch", "truncated-gzip", "dotdot-member",
    "absolute-member", "symlink-escape", "hardlink-escape", "second-image-bad", "oci-blob-mismatch", "garbage",
])
def test_hostile_archive_leaves_the_data_root_unchanged(tmp_path, busybox_tar, hostile, case):
    svc = make_service(tmp_path)
    load(svc, busybox_tar)
    before = snapshot(tmp_path)
    refs_before, images_before = dict(svc.refs), set(svc.images)
    with pytest.raises(InvalidArgument):
        load(svc, hostile[case])
    assert snapshot(tmp_path) == before
    assert svc.refs == refs_before and set(svc.images) == images_before
    # and the service still works
    svc.tag("busybox", "after", case)
    assert svc.resolve(f"after:{case}")
