"""``docker save`` of a layer whose tar size is not recorded (a layer record written by an
older version: no ``TarSize``) or whose blob the storage driver does not keep: its tar is
exported to a spool file and checked while the archive is planned, then sent with sendfile
from the spool's file descriptor. Every byte written to the spool must be in the file by
then, not in Python's write buffer: a layer tar's last piece under 8 KiB (a small layer:
all of it) stayed in the buffer, sendfile found the file short and the save was cut off."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import image_config, image_tar

pytestmark = pytest.mark.privileged


def small_layer() -> bytes:
    """A layer tar as Go's archive/tar writes it: one file, two zero blocks, no padding to a
    10 KiB record (2 KiB in all)."""
    info = tarfile.TarInfo("marker")
    data = b"spooled layer\n"
    info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
    return info.tobuf(tarfile.USTAR_FORMAT) + data + b"\0" * (512 - len(data)) + b"\0" * 1024


def test_save_of_a_layer_recorded_without_its_tar_size_is_whole(tmp_path):
    layer = small_layer()
    path = image_tar(tmp_path / "img.tar", [(image_config([layer]), [layer], ["spooled:1"])])
    d = DaemonProcess(tmp_path / "d", env={"DOCKYARD_DISABLE_PLUGINS": "auth_tls"})
    d.start()
    try:
        d.load(path)
        d.stop()
        records = list((d.data_root / "image" / "layers").glob("*.json"))
        assert records
        for p in records:  # as an older version wrote them
            rec = json.loads(p.read_text())
            rec.pop("TarSize", None)
            p.write_text(json.dumps(rec))
        d.start()
        out = tmp_path / "saved.tar"
        r = d.docker("save", "-o", str(out), "spooled:1")
        assert r.returncode == 0, r.stderr
        with tarfile.open(out) as tar:
            manifest = json.loads(tar.extractfile("manifest.json").read())
            assert manifest[0]["RepoTags"] == ["spooled:1"]
            saved = tar.extractfile(manifest[0]["Layers"][0]).read()
            assert tarfile.open(fileobj=io.BytesIO(saved)).extractfile("marker").read() == b"spooled layer\n"
    finally:
        d.stop()
