"""The image API against a real dockyardd (fake storage unless DOCKYARD_TEST_STORAGE names
another driver), with docker-py and raw HTTP."""

import hashlib
import io
import json
import os
import tarfile
import threading
from pathlib import Path

import docker
import pytest

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import hostile_image_tars, image_id_of, tar_from_entries
from dockyard_cli.client import UnixHTTPConnection


def storage_args():
    return ("-s", os.environ.get("DOCKYARD_TEST_STORAGE", "fake"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("images-api"), *storage_args())
    d.start()
    yield d
    d.stop()


@pytest.fixture
def client(daemon):
    c = daemon.docker_client()
    yield c
    for image in c.images.list(all=True):  # every test starts from an empty image store
        c.images.remove(image.id, force=True)
    c.close()


def raw(daemon, method, path, body=None, headers=None):
    conn = UnixHTTPConnection(str(daemon.socket), timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r.headers, data


def lines(data):
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_load_list_inspect(client, busybox_tar):
    loaded = client.images.load(busybox_tar.read_bytes())
    assert [i.tags for i in loaded] == [["busybox:latest"]]
    image_id = image_id_of(busybox_tar)
    assert loaded[0].id == image_id
    listed = client.api.images()
    assert [i["Id"] for i in listed] == [image_id]
    item = listed[0]
    assert item["RepoTags"] == ["busybox:latest"] and item["SharedSize"] == -1 and item["Containers"] == -1
    assert item["Size"] > 1_000_000 and isinstance(item["Created"], int)
    attrs = client.images.get("busybox").attrs
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container", "ContainerConfig",
                "DockerVersion", "Author", "Config", "Architecture", "Os", "Size", "GraphDriver", "RootFS",
                "Metadata"):
        assert key in attrs, key
    assert attrs["Config"]["Cmd"] == ["sh"] and attrs["RootFS"]["Type"] == "layers"
    assert attrs["GraphDriver"]["Name"] in (storage_args()[1], storage_args()[1] + "2")  # overlay2
    for name in (image_id, image_id[7:], image_id[7:19], image_id[:20], "docker.io/library/busybox:latest",
                 "busybox:latest", "library/busybox"):
        assert client.images.get(name).id == image_id, name
    assert client.info()["Images"] == 1


def test_missing_image_is_image_not_found(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothere")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.remove("nothere:v1")
    status, _, body = raw(client_daemon(client), "GET", "/images/Not%20Valid/json")
    assert status == 400 and b"invalid reference format" in body


def client_daemon(client):
    return client._daemon


@pytest.fixture(autouse=True)
def _attach(client, daemon):
    client._daemon = daemon


def test_names_with_slashes_and_ports(client, busybox_tar, daemon):
    client.images.load(busybox_tar.read_bytes())
    image = client.images.get("busybox")
    assert image.tag("localhost:5000/team/app", "v1")
    assert client.images.get("localhost:5000/team/app:v1").id == image.id
    h = client.api.history("localhost:5000/team/app:v1")
    assert h[0]["Id"] == image.id and "localhost:5000/team/app:v1" in h[0]["Tags"]
    status, _, body = raw(daemon, "GET", "/v1.44/images/localhost:5000/team/app:v1/json")
    assert status == 200 and json.loads(body)["Id"] == image.id
    removed = client.api.remove_image("localhost:5000/team/app:v1")
    assert removed == [{"Untagged": "localhost:5000/team/app:v1"}]
    status, _, body = raw(daemon, "POST", "/images/busybox/tag?repo=Bad%20Repo")
    assert status == 400


def test_tag_delete_conflicts_and_events(client, busybox_tar, daemon):
    client.images.load(busybox_tar.read_bytes())
    image = client.images.get("busybox")
    since = client.version()  # noqa: F841 (forces a round trip before events)
    image.tag("second", "x")
    with pytest.raises(docker.errors.APIError) as info:
        client.images.remove(image.id)
    assert info.value.status_code == 409 and "referenced in multiple repositories" in str(info.value)
    records = client.api.remove_image(image.id, force=True)
    assert {"Untagged": "second:x"} in records and {"Deleted": image.id} in records
    status, _, body = raw(daemon, "GET", "/events?since=0&until=%d&filters=%s" % (
        __import__("time").time() + 1, '{"type":["image"]}'))
    actions = [e["Action"] for e in lines(body)]
    for action in ("load", "tag", "untag", "delete"):
        assert action in actions


def test_save_load_round_trip_docker_py(client, multilayer_tar, tmp_path):
    client.images.load(multilayer_tar.read_bytes())
    image = client.images.get("multilayer")
    data = b"".join(image.save(named=True))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories", f"blobs/sha256/{image.id[7:]}"} <= names
    assert manifest[0]["RepoTags"] == ["multilayer:latest"] and len(manifest[0]["Layers"]) == 3
    client.images.remove("multilayer")
    assert client.images.list() == []
    again = client.images.load(data)
    assert again[0].id == image.id and again[0].tags == ["multilayer:latest"]
    # /images/get with several names, one repeated
    status, headers, body = raw(client._daemon, "GET", "/images/get?names=multilayer&names=" + image.id[7:19])
    assert status == 200 and headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert json.load(tar.extractfile("manifest.json"))[0]["RepoTags"] == ["multilayer:latest"]
    status, _, body = raw(client._daemon, "GET", "/images/get?names=nothere")
    assert status == 404


def test_load_streams_progress_and_gzip(client, busybox_tar, daemon):
    import gzip

    body = gzip.compress(busybox_tar.read_bytes(), 1)
    status, headers, data = raw(daemon, "POST", "/images/load", body, {"Content-Type": "application/x-tar"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    msgs = lines(data)
    assert msgs[-1] == {"stream": "Loaded image: busybox:latest\n"}
    assert any(m.get("status") == "Loading layer" for m in msgs)
    client.images.remove("busybox")
    status, _, data = raw(daemon, "POST", "/images/load?quiet=1", busybox_tar.read_bytes())
    assert lines(data) == [{"stream": "Loaded image: busybox:latest\n"}]


def test_load_chunked_body(client, busybox_tar, daemon):
    def chunks():
        with open(busybox_tar, "rb") as f:
            while chunk := f.read(7919):
                yield chunk

    conn = UnixHTTPConnection(str(daemon.socket), timeout=60)
    conn.request("POST", "/images/load?quiet=1", body=chunks(), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    r = conn.getresponse()
    assert r.status == 200 and lines(r.read())[-1]["stream"] == "Loaded image: busybox:latest\n"
    conn.close()


def test_bad_archive_is_a_clear_error(client, daemon):
    """As dockerd: 200 with the error in the stream (docker-py's ImageLoadError), Go's words."""
    with pytest.raises(docker.errors.ImageLoadError) as info:
        client.images.load(b"not a tar at all" * 1000)
    assert "archive/tar: invalid tar header" in str(info.value)
    with pytest.raises(docker.errors.ImageLoadError) as info:
        client.images.load(b"abc")  # truncated
    assert str(info.value) == "unexpected EOF"


def test_import_prune_and_df(client, daemon, busybox_tar):
    layer = tar_from_entries([("hello", "file", "hi\n")])
    status, _, data = raw(daemon, "POST", "/images/create?fromSrc=-&repo=imported&tag=v1&message=m"
                          "&changes=CMD%20%5B%22%2Fhello%22%5D", layer)
    assert status == 200
    image_id = lines(data)[-1]["status"]
    attrs = client.images.get("imported:v1").attrs
    assert attrs["Id"] == image_id and attrs["Config"]["Cmd"] == ["/hello"] and attrs["Comment"] == "m"
    # docker-py's import_image with a file object
    out = client.api.import_image_from_data(layer, repository="imported2")
    assert "sha256:" in out
    client.images.load(busybox_tar.read_bytes())
    df = client.df()
    assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= set(df)
    assert len(df["Images"]) == 3 and df["LayersSize"] > 0  # two imports, two images
    # nothing dangling: prune removes nothing; untag then prune removes the imported image
    assert client.images.prune()["ImagesDeleted"] is None
    client.images.remove("imported:v1")
    client.images.remove("imported2:latest")
    assert client.images.list(filters={"dangling": True}) == []  # removed, not dangling
    client.api.tag("busybox", "willdangle")
    client.images.load(busybox_tar.read_bytes())
    result = client.images.prune(filters={"dangling": False})
    assert result["SpaceReclaimed"] > 0 and {"Untagged": "busybox:latest"} in result["ImagesDeleted"]
    assert client.images.list() == []


def test_pull_from_unreachable_registry_is_a_clear_error(client, daemon):
    from dockyard.testing.daemon import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(docker.errors.APIError) as info:
        client.images.pull(f"127.0.0.1:{port}/alpine", tag="latest")
    assert info.value.status_code == 503 and f"127.0.0.1:{port}/v2/" in str(info.value)
    assert client.images.list() == []


def test_list_filters_over_http(client, busybox_tar, daemon):
    client.images.load(busybox_tar.read_bytes())
    client.api.tag("busybox", "other", "1")
    assert [i["RepoTags"] for i in client.api.images(name="other")] == [["other:1"]]  # matching tags only
    assert [i["RepoTags"] for i in client.api.images(filters={"reference": "busy*"})] == [["busybox:latest"]]
    assert client.api.images(name="nomatch") == []
    status, _, body = raw(daemon, "GET", '/images/json?filters={"nope":["x"]}'.replace('"', "%22"))
    assert status == 400


def snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if rel in ("engine-id", "dockyardd.lock"):
                continue
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def test_hostile_loads_leave_the_data_root_unchanged(make_daemon, busybox_tar, tmp_path):
    d = make_daemon(*storage_args())
    hostile = hostile_image_tars(tmp_path / "hostile")
    status, _, _ = raw(d, "POST", "/images/load?quiet=1", busybox_tar.read_bytes())
    assert status == 200
    before = snapshot(d.data_root)
    for case, path in hostile.items():
        status, _, data = raw(d, "POST", "/images/load", path.read_bytes())
        failed = status >= 400 or any("error" in m for m in lines(data))
        assert failed, case
        if status < 400:
            assert "errorDetail" in lines(data)[-1]
        assert snapshot(d.data_root) == before, case
    status, _, body = raw(d, "GET", "/images/json")
    assert [i["RepoTags"] for i in json.loads(body)] == [["busybox:latest"]]


def test_concurrent_loads(make_daemon, busybox_tar, multilayer_tar):
    d = make_daemon(*storage_args())
    results = []

    def go(path):
        results.append(raw(d, "POST", "/images/load?quiet=1", path.read_bytes())[0])

    threads = [threading.Thread(target=go, args=(p,)) for p in (busybox_tar, multilayer_tar, busybox_tar)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    status, _, body = raw(d, "GET", "/images/json")
    assert sorted(t for i in json.loads(body) for t in i["RepoTags"]) == ["busybox:latest", "multilayer:latest"]


def test_images_survive_a_daemon_restart(make_daemon, busybox_tar):
    d = make_daemon(*storage_args())
    raw(d, "POST", "/images/load?quiet=1", busybox_tar.read_bytes())
    raw(d, "POST", "/images/busybox/tag?repo=kept&tag=1")
    d.stop()
    d.start()
    status, _, body = raw(d, "GET", "/images/kept:1/json")
    assert status == 200 and json.loads(body)["Id"] == image_id_of(busybox_tar)
