"""Tar-split replay (:func:`dockyard.layers.export_split`): the original layer tar byte for
byte, in a few large chunks (headers and small files gathered, not one chunk per record),
and a record that does not match the files on disk fails the export."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from dockyard.errors import DockyardError
from dockyard.layers import DeleteWhiteouts, export_split, extract


def layer(files: int = 400, big: int = (2 << 20) + 7) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind=tarfile.REGTYPE, data=b"", **kw):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mode, info.mtime = kind, len(data), 0o644, 1700000000
            for k, v in kw.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("a", tarfile.DIRTYPE)
        for i in range(files):
            add(f"a/{i:04d}", data=bytes([i % 251]) * (i * 13 % 3000 + 1))
        add("a/big", data=os.urandom(big))
        add("a/empty")
        add("a/sym", tarfile.SYMTYPE, linkname="../elsewhere")
        add("a/" + "x" * 180, data=b"long\n")
    return buf.getvalue()


@pytest.fixture
def unpacked(tmp_path):
    data = layer()
    root = tmp_path / "root"
    root.mkdir()
    extract(io.BytesIO(data), root, DeleteWhiteouts(), chown=False, split=tmp_path / "tar-split")
    return data, tmp_path / "tar-split", root


def test_replay_is_the_original_in_few_chunks(unpacked):
    data, split, root = unpacked
    chunks = list(export_split(split, root))
    assert b"".join(chunks) == data
    # ~3.7 MB: the 400 small files and their headers go in a handful of chunks, not 800+
    assert len(chunks) <= 8, len(chunks)
    assert all(len(c) >= 1 << 20 for c in chunks[:-1])


def test_small_chunks_and_a_split_in_several_gzip_members(unpacked):
    data, split, root = unpacked
    raw = gzip.decompress(split.read_bytes())
    cut = len(raw) // 3
    split.write_bytes(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:]))  # gzip(1): a valid file
    assert b"".join(export_split(split, root, chunk=4096)) == data


def test_a_file_shorter_than_recorded_fails(unpacked):
    data, split, root = unpacked
    with open(root / "a" / "0100", "r+b") as f:
        f.truncate(1)
    with pytest.raises(DockyardError, match="changed since it was unpacked"):
        b"".join(export_split(split, root))


def test_a_recorded_file_replaced_by_a_symlink_is_not_followed(unpacked, tmp_path):
    data, split, root = unpacked
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 100000)
    os.unlink(root / "a" / "0200")
    os.symlink(secret, root / "a" / "0200")
    with pytest.raises(OSError):
        b"".join(export_split(split, root))


def test_a_corrupt_split_is_an_error(unpacked):
    data, split, root = unpacked
    split.write_bytes(split.read_bytes()[:-20])
    with pytest.raises(DockyardError, match="tar-split"):
        b"".join(export_split(split, root))


def _tar(*members: tuple[str, bytes, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["file-over-implicit-dir", "whiteout", "opaque", "clean"])
def test_a_split_is_kept_only_while_every_recorded_file_is_there(tmp_path, case):
    """unpack skips the per-file check when nothing under the layer was removed; a member
    replacing an implicit parent directory or a whiteout removes a file the stream made
    (neither a duplicate member), and then no split may be kept; an opaque marker keeps
    this layer's own files."""
    reg, kind2 = tarfile.REGTYPE, {"whiteout": ".wh.f", "opaque": ".wh..wh..opq"}
    members = [("d/f", reg, b"data")]
    if case == "file-over-implicit-dir":
        members.append(("d", reg, b"x"))
    elif case in kind2:
        members.append((f"d/{kind2[case]}", reg, b""))
    (tmp_path / "root").mkdir()
    extract(io.BytesIO(_tar(*members)), tmp_path / "root", DeleteWhiteouts(), split=tmp_path / "split")
    assert (tmp_path / "split").exists() == (case in ("clean", "opaque"))
    if case in ("clean", "opaque"):
        out = b"".join(export_split(tmp_path / "split", tmp_path / "root"))
        assert out == _tar(*members)
