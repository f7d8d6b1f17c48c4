"""``docker save`` on the storage driver that replays tar-split (overlay2 when installed):
the archive is planned before a byte is sent (its Content-Length is exact), streamed
straight to the socket, and a layer whose files changed on disk since they were unpacked
still cuts the archive short (the diff id is checked on the way), never a silently wrong one."""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import tarfile
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


def test_a_layer_changed_on_disk_cuts_the_archive_short(daemon, loaded, tmp_path):
    diffs = [p for p in (daemon.data_root / "storage").glob("*/*/diff/d/f010") if p.is_file()]
    assert len(diffs) == 1, diffs
    victim = diffs[0]
    original = victim.read_bytes()
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
