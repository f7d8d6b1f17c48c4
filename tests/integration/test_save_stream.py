"""``docker save`` on the storage driver that replays tar-split (overlay2 when installed):
the archive is planned before a byte is sent (its Content-Length is exact), streamed
straight to the socket, and a layer whose files changed on disk since they were unpacked
still cuts the archive short (the diff id is checked on the way), never a silently wrong one."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import image_config, image_tar
from dockyard_cli.client import UnixHTTPConnection

pytestmark = pytest.mark.privileged


def storage_args():
    want = os.environ.get("DOCKYARD_TEST_STORAGE")
    return ("-s", want) if want else ()


def layer_tar() -> bytes:
    """Many small files, one larger than the export's chunk, a symlink, a hard link, long names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, **kw):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.size, info.mtime = kind, mode, len(data), 1700000000
            for k, v in kw.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("d", tarfile.DIRTYPE, mode=0o755)
        for i in range(300):
            add(f"d/f{i:03d}", data=hashlib.sha256(b"%d" % i).digest() * (i % 7 + 1))
        add("d/big", data=os.urandom((3 << 20) + 123))
        add("d/" + "n" * 200, data=b"long name\n")
        add("d/link", tarfile.SYMTYPE, mode=0o777, linkname="f001")
        add("d/hard", tarfile.LNKTYPE, linkname="d/f002")
    return buf.getvalue()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("save-stream"), *storage_args())
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def loaded(daemon, tmp_path_factory):
    layer = layer_tar()
    path = image_tar(tmp_path_factory.mktemp("img") / "img.tar",
                     [(image_config([layer], cmd=["sh"]), [layer], ["savestream:1"])])
    daemon.load(path)
    return layer


def get(daemon, conn=None):
    conn = conn or UnixHTTPConnection(str(daemon.socket), timeout=60)
    conn.request("GET", "/v1.44/images/get?names=savestream:1")
    return conn, conn.getresponse()


def test_save_declares_its_length_and_the_connection_stays_usable(daemon, loaded):
    conn, r = get(daemon)
    body = r.read()
    assert r.status == 200 and r.getheader("Content-Type") == "application/x-tar"
    assert r.getheader("Content-Length") == str(len(body)) and r.getheader("Transfer-Encoding") is None
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        blob = tar.extractfile(f"blobs/sha256/{hashlib.sha256(loaded).hexdigest()}")
        assert blob is not None and blob.read() == loaded  # the layer tar, byte for byte
        assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(tar.getnames())
    conn.request("GET", "/_ping")  # the same kept-alive connection: the framing held
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b"OK"
    _, r = get(daemon, conn)
    assert r.read() == body
    conn.close()


def cached(daemon) -> list[str]:
    return sorted(p.name for p in (daemon.data_root / "image" / "layer-tars").iterdir() if p.name[0] != ".")


def wait_cached(daemon, hexpart: str) -> None:
    """The entry is put in place (fsync, rename) after the last byte went to the client."""
    deadline = time.monotonic() + 30
    while hexpart not in cached(daemon):
        assert time.monotonic() < deadline, "the layer tar was not cached"
        time.sleep(0.02)


def prune(daemon) -> dict:
    status, body = daemon.request("POST", "/images/prune")
    assert status == 200
    return json.loads(body)


def test_a_layer_changed_on_disk_cuts_the_archive_short(daemon, loaded, tmp_path):
    diffs = [p for p in (daemon.data_root / "storage").glob("*/*/diff/d/f010") if p.is_file()]
    assert len(diffs) == 1, diffs
    victim = diffs[0]
    original = victim.read_bytes()
    prune(daemon)  # empties the layer tar cache: the export reads the files
    assert cached(daemon) == []
    victim.write_bytes(bytes(len(original)))  # same size: only the digest can tell
    try:
        conn, r = get(daemon)
        assert r.status == 200
        with pytest.raises(http.client.IncompleteRead):
            r.read()
        conn.close()
        conn = UnixHTTPConnection(str(daemon.socket), timeout=60)
        conn.request("GET", "/_ping")
        assert conn.getresponse().status == 200
        conn.close()
        out = tmp_path / "cut.tar"
        r = daemon.cli("save", "-o", str(out), "savestream:1", timeout=120)
        assert r.returncode != 0 and b"cut short" in r.stderr and os.listdir(tmp_path) == []  # no short archive
        r = daemon.docker("save", "-o", str(out), "savestream:1", timeout=120)
        assert r.returncode != 0 and b"unexpected EOF" in r.stderr  # (the docker CLI leaves what it got)
        assert cached(daemon) == []  # nothing unverified is kept
    finally:
        victim.write_bytes(original)
    conn, r = get(daemon)
    assert len(r.read()) == int(r.getheader("Content-Length"))
    conn.close()


def test_docker_cli_save_load_round_trip(daemon, loaded, tmp_path):
    out = tmp_path / "saved.tar"
    r = daemon.docker("save", "-o", str(out), "savestream:1", timeout=120)
    assert r.returncode == 0, r.stderr
    before = daemon.docker("image", "inspect", "-f", "{{.Id}}", "savestream:1").stdout.strip()
    assert daemon.docker("rmi", "savestream:1").returncode == 0
    r = daemon.docker("load", "-i", str(out), timeout=120)
    assert r.returncode == 0 and b"Loaded image: savestream:1" in r.stdout
    assert daemon.docker("image", "inspect", "-f", "{{.Id}}", "savestream:1").stdout.strip() == before


def test_the_layer_tar_cache_serves_later_saves_and_goes_with_the_layer(daemon, loaded, tmp_path):
    hexpart = hashlib.sha256(loaded).hexdigest()
    prune(daemon)
    conn, r = get(daemon)
    first = r.read()
    conn.close()
    wait_cached(daemon, hexpart)
    entry = daemon.data_root / "image" / "layer-tars" / hexpart
    assert entry.read_bytes() == loaded and entry.stat().st_mode & 0o777 == 0o600
    # a later save sends the kept tar (the layer's files are not read: a change there is not seen)
    [victim] = [p for p in (daemon.data_root / "storage").glob("*/*/diff/d/f011") if p.is_file()]
    original = victim.read_bytes()
    victim.write_bytes(bytes(len(original)))
    try:
        conn, r = get(daemon)
        assert r.read() == first
        conn.close()
    finally:
        victim.write_bytes(original)
    # an entry of the wrong size (a damaged cache) is not used: the export is made again
    entry.write_bytes(loaded[:-512])
    conn, r = get(daemon)
    assert r.read() == first
    conn.close()
    deadline = time.monotonic() + 30
    while entry.stat().st_size != len(loaded):  # kept again
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert entry.read_bytes() == loaded
    reclaimed = prune(daemon)["SpaceReclaimed"]
    assert reclaimed >= len(loaded) and cached(daemon) == []
    conn, r = get(daemon)
    r.read()
    conn.close()
    wait_cached(daemon, hexpart)
    out = tmp_path / "keep.tar"
    assert daemon.docker("save", "-o", str(out), "savestream:1").returncode == 0
    assert daemon.docker("rmi", "savestream:1").returncode == 0
    assert hexpart not in cached(daemon)  # the last layer of that diff id is gone: so is its tar
    assert daemon.docker("load", "-i", str(out), timeout=120).returncode == 0


def test_no_cache_when_turned_off_or_too_small(tmp_path, loaded):
    for size in ("0", "100k"):
        d = DaemonProcess(tmp_path / size, *storage_args())
        (tmp_path / f"{size}.toml").write_text(f'layer-tar-cache = "{size}"\n')
        d.args += ["--config-file", str(tmp_path / f"{size}.toml")]
        d.start()
        try:
            path = image_tar(tmp_path / f"img{size}.tar",
                             [(image_config([loaded], cmd=["sh"]), [loaded], ["savestream:1"])])
            d.load(path)
            conn, r = get(d)
            body = r.read()
            conn.close()
            assert len(body) == int(r.getheader("Content-Length"))
            root = d.data_root / "image" / "layer-tars"
            assert not root.exists() or [p.name for p in root.iterdir()] == []
        finally:
            d.stop()
