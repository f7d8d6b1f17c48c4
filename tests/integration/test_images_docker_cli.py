"""The real docker CLI, skopeo and umoci against dockyardd's images, with the host's storage
driver (overlay2 when the plugin is installed, else vfs; DOCKYARD_TEST_STORAGE overrides)."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import image_id_of

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")]


def storage_args():
    want = os.environ.get("DOCKYARD_TEST_STORAGE")
    return ("-s", want) if want else ()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("images-cli"), *storage_args())
    d.start()
    yield d
    d.stop()


@pytest.fixture
def docker(daemon):
    def run(*args, input=None, ok=True):
        r = daemon.docker(*args, input=input, timeout=120)
        if ok:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stderr.decode()}"
        return r

    yield run
    ids = run("images", "-aq", ok=False).stdout.decode().split()
    if ids:
        run("rmi", "-f", *set(ids), ok=False)


def test_load_images_inspect_history(docker, busybox_tar):
    out = docker("load", "-i", str(busybox_tar)).stdout.decode()
    assert "Loaded image: busybox:latest" in out
    table = docker("images").stdout.decode().splitlines()
    assert table[0].split()[:4] == ["REPOSITORY", "TAG", "IMAGE", "ID"]
    assert table[1].split()[:3] == ["busybox", "latest", image_id_of(busybox_tar)[7:19]]
    [inspect] = json.loads(docker("image", "inspect", "busybox").stdout)
    assert inspect["Id"] == image_id_of(busybox_tar) and inspect["Config"]["Cmd"] == ["sh"]
    assert docker("image", "inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox").stdout.strip() == b"linux/amd64"
    history = docker("history", "busybox").stdout.decode().splitlines()
    assert history[0].split()[0] == "IMAGE" and "CMD" in history[1] and "<missing>" in history[2]
    r = docker("image", "inspect", "nothere", ok=False)
    assert r.returncode != 0 and b"No such image: nothere" in r.stderr
    r = docker("pull", "127.0.0.1:1/alpine", ok=False)  # loopback, nothing listens on port 1
    assert r.returncode != 0 and b"127.0.0.1:1/v2/" in r.stderr


def test_tag_save_load_round_trip_rmi(docker, daemon, multilayer_tar, tmp_path):
    docker("load", "-i", str(multilayer_tar))
    docker("tag", "multilayer", "localhost:5000/team/app:v1")
    image_id = image_id_of(multilayer_tar)
    saved = tmp_path / "saved.tar"
    docker("save", "-o", str(saved), "localhost:5000/team/app:v1", "multilayer")
    out = docker("rmi", "multilayer").stdout.decode()
    assert out.strip() == "Untagged: multilayer:latest"  # another tag remains
    out = docker("rmi", "localhost:5000/team/app:v1").stdout.decode()
    assert f"Deleted: {image_id}" in out
    assert docker("images", "-q").stdout.strip() == b""
    # docker save | docker load through pipes
    out = docker("load", input=saved.read_bytes()).stdout.decode()
    assert "Loaded image: localhost:5000/team/app:v1" in out and "Loaded image: multilayer:latest" in out
    assert set(docker("images", "-q", "--no-trunc").stdout.decode().split()) == {image_id}
    piped = docker("save", "multilayer").stdout
    docker("rmi", "-f", image_id)
    docker("load", input=piped)
    assert docker("image", "inspect", "-f", "{{.Id}}", "multilayer").stdout.strip().decode() == image_id


def test_prune_and_system_df(docker, busybox_tar):
    docker("load", "-i", str(busybox_tar))
    df = docker("system", "df").stdout.decode().splitlines()
    assert df[1].split()[:3] == ["Images", "1", "0"]
    assert "busybox" in docker("system", "df", "-v").stdout.decode()
    out = docker("image", "prune", "-f").stdout.decode()
    assert "Total reclaimed space: 0B" in out
    out = docker("image", "prune", "-a", "-f").stdout.decode()
    assert "untagged: busybox:latest" in out and "deleted: sha256:" in out
    assert docker("images", "-q").stdout.strip() == b""


def test_import(docker, tmp_path):
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        d = tmp_path / "hello"
        d.write_text("hello\n")
        tar.add(d, "hello")
    out = docker("import", "-c", "CMD [\"/hello\"]", str(rootfs), "imported:v1").stdout.decode()
    assert out.strip().startswith("sha256:")
    assert docker("image", "inspect", "-f", "{{json .Config.Cmd}}", "imported:v1").stdout.strip() == b'["/hello"]'


@pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("umoci") is None, reason="needs skopeo and umoci")
def test_skopeo_and_umoci_read_what_save_wrote(docker, multilayer_tar, tmp_path):
    docker("load", "-i", str(multilayer_tar))
    saved = tmp_path / "saved.tar"
    docker("save", "-o", str(saved), "multilayer")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{saved}"], check=True,
                                     capture_output=True).stdout)
    assert len(info["Layers"]) == 3 and info["Architecture"] == "amd64"
    # the OCI half of the archive, read directly by umoci
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(saved) as tar:
        tar.extractall(layout)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)], check=True,
                   capture_output=True)
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / "data" / "keep").read_text() == "kept\n"
    assert not (rootfs / "data" / "gone").exists()  # the whiteout deleted it
    assert sorted(os.listdir(rootfs / "data" / "opaque")) == ["new"]  # the opaque dir hid the rest
    # skopeo converts it to an OCI layout too
    subprocess.run(["skopeo", "copy", f"docker-archive:{saved}", f"oci:{tmp_path / 'oci'}:t1"], check=True,
                   capture_output=True)
    assert (tmp_path / "oci" / "index.json").exists()
