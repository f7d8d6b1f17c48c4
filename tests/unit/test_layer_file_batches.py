"""A fresh layer's small plain files are created in batches by newfiles.c's worker thread
(issue 18, ``docker load``): the same tree, tar-split and errors as the unpacker's Python
path, member for member, for layers that rewrite their own names, link to or white out
batched files, swap a directory for a symlink or a file and back, or carry names the
kernel refuses; and nothing outside the layer is touched."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.errors import InvalidArgument
from dockyard.layers import DeleteWhiteouts, OverlayWhiteouts, export_split, extract, newfiles
from dockyard.layers.unpack import MAX_BATCHED

MTIME = 1700000000


def tar_of(members: list[tuple]) -> bytes:
    """(name, kind, data or linkname, extra TarInfo fields) -> an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload, *extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, MTIME
            for k, v in (extra[0] if extra else {}).items():
                setattr(info, k, v)
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = payload
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                tar.addfile(info)
    return buf.getvalue()


def reg(name: str, data: bytes = b"x", **extra) -> tuple:
    return (name, tarfile.REGTYPE, data, extra)


def dir_(name: str, **extra) -> tuple:
    return (name, tarfile.DIRTYPE, b"", extra)


def small_files(d: str, n: int, tag: bytes = b"") -> list[tuple]:
    return [reg(f"{d}/f{i:04d}", tag + bytes([i % 251]) * (i * 7 % 1500)) for i in range(n)]


LAYERS = {
    # several directories, runs longer than a batch, interleaved dirs, files at the root,
    # a file larger than MAX_BATCHED in the middle of a run, empty files
    "plain": [reg("top"), dir_("a"), *small_files("a", 600), dir_("b"), *small_files("b", 10),
              reg("a/late"), reg("a/big", os.urandom(MAX_BATCHED + 3)), *small_files("b/c", 30),
              reg("b/empty", b""), reg("root2")],
    # the same name twice (the second wins), a file over a directory and a directory over a file
    "rewrites": [dir_("d"), *small_files("d", 20), reg("d/f0003", b"second"), dir_("d/sub"),
                 *small_files("d/sub", 5), reg("d/sub", b"file over dir"), reg("e"), dir_("e"),
                 reg("e/inner", b"in e")],
    # names again in the next batches, which may run at the same time as the first: the
    # later member wins
    "rewrites-across-batches": [dir_("d"), *small_files("d", 300), *small_files("d", 300, b"again"),
                                reg("d/f0001", b"third"), *small_files("e", 600)],
    # the last file of a full batch again as the first of the next (which starts while the
    # first still runs)
    "rewrite-at-a-batch-boundary": [dir_("d"), *small_files("d", newfiles.MAX_FILES - 1), reg("d/x", b"first"),
                                    reg("d/x", b"second")],
    # a directory replaced by a file and then by a new directory: later files go to the new one
    "dir-file-dir": [dir_("d"), *small_files("d", 40), reg("d", b"now a file"), dir_("d"),
                     *small_files("d", 40, b"new"), reg("d/extra")],
    # the same, through a symlink (a member the batch does not take): no new batch is started
    # by a directory change, the next files still go to the new directory
    "dir-symlink-dir": [dir_("d"), *small_files("d", 40), ("d", tarfile.SYMTYPE, "elsewhere"), dir_("d"),
                        *small_files("d", 40, b"new")],
    # hard links to batched files, in the same and in another directory
    "hardlinks": [dir_("d"), *small_files("d", 30), ("d/link", tarfile.LNKTYPE, "d/f0007"),
                  dir_("o"), ("o/link", tarfile.LNKTYPE, "d/f0011"), *small_files("o", 3)],
    # whiteouts and an opaque directory after batched files
    "whiteouts": [dir_("d"), *small_files("d", 30), reg("d/.wh.f0004", b""), dir_("k"), *small_files("k", 10),
                  reg("k/.wh..wh..opq", b""), *small_files("k", 3, b"after")],
    # modes and owners the batch does not do: set-id, a mode the umask would mask, another owner
    "modes": [dir_("d"), *small_files("d", 10), reg("d/suid", b"s", mode=0o4755), reg("d/world", b"w", mode=0o666),
              reg("d/owned", b"o", uid=1234, gid=4321), *small_files("d/z", 5)],
    # old-style regular files (type '\\0'), a contiguous file (type '7': the Python path), an
    # xattr (the Python path), a PAX header that is not one (batched)
    "types-and-pax": [dir_("d"), *small_files("d", 5), reg("d/old", b"a", type=tarfile.AREGTYPE),
                      reg("d/cont", b"c", type=tarfile.CONTTYPE), *small_files("d", 3, b"m"),
                      reg("d/xattr", b"x", pax_headers={"SCHILY.xattr.user.k": "v"}),
                      reg("d/paxed", b"p", pax_headers={"comment": "hello"}), *small_files("d/z", 3)],
    # a batched file and then a member under it: refused as not a directory
    "file-then-child": [dir_("d"), *small_files("d", 10), reg("d/f0002/child")],
    # a directory swapped for a symlink after batched files in it: a member under it is refused
    "symlink-swap": [dir_("d"), *small_files("d", 10), ("d", tarfile.SYMTYPE, "/tmp"), reg("d/evil")],
    # a name the kernel refuses (longer than NAME_MAX) among batched files
    "long-name": [dir_("d"), *small_files("d", 10), reg("d/" + "n" * 300), *small_files("d", 3, b"z")],
}


def snapshot(root: Path) -> dict[str, tuple]:
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            first = inodes.setdefault((st.st_ino, st.st_dev), rel) if not stat.S_ISDIR(st.st_mode) else rel
            if stat.S_ISREG(st.st_mode):
                body: object = p.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(p)
            elif stat.S_ISCHR(st.st_mode):
                body = st.st_rdev
            else:
                body = None
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        # a directory's and a whiteout device's times are when it was made
                        st.st_mtime_ns if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) else None,
                        body, first)
    return out


def unpack(data: bytes, dest: Path, split: Path, strategy) -> tuple[object, dict | None]:
    dest.mkdir()
    try:
        extract(io.BytesIO(data), dest, strategy, split=split)
    except InvalidArgument as exc:
        return f"refused: {exc}", None
    return "ok", snapshot(dest)


@pytest.fixture
def batches(monkeypatch):
    """Counts the batches handed to the worker; fails the test if the library is missing."""
    if newfiles.library() is None:
        pytest.skip("no C compiler: the unpacker stays on its Python path")
    count = [0]
    submit = newfiles.FileBatch._submit

    def counted(self):
        count[0] += bool(self.items)
        submit(self)

    monkeypatch.setattr(newfiles.FileBatch, "_submit", counted)
    return count


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("strategy", [DeleteWhiteouts, OverlayWhiteouts])
@pytest.mark.parametrize("case", sorted(LAYERS))
def test_batched_files_give_the_python_paths_tree_split_and_errors(tmp_path, monkeypatch, batches, case, strategy,
                                                                   workers):
    if os.geteuid() != 0:
        pytest.skip("owners and whiteout devices need root")
    monkeypatch.setattr(newfiles, "WORKERS", workers)
    data = tar_of(LAYERS[case])
    got, tree = unpack(data, tmp_path / "batched", tmp_path / "split-batched", strategy())
    assert batches[0] > 0
    if tree is not None and (tmp_path / "split-batched").exists():
        assert b"".join(export_split(tmp_path / "split-batched", tmp_path / "batched")) == data
    monkeypatch.setattr(newfiles, "_loaded", [None])  # the Python path
    want, want_tree = unpack(data, tmp_path / "python", tmp_path / "split-python", strategy())
    assert got == want
    assert tree == want_tree
    assert (tmp_path / "split-batched").exists() == (tmp_path / "split-python").exists()


def test_a_batched_run_is_refused_where_a_symlink_replaced_its_directory(tmp_path, batches):
    outside = tmp_path / "outside"
    outside.mkdir()
    data = tar_of([dir_("d"), *small_files("d", 300), ("d", tarfile.SYMTYPE, str(outside)),
                   *small_files("d", 300, b"evil")])
    dest = tmp_path / "layer"
    dest.mkdir()
    with pytest.raises(InvalidArgument, match="not a directory"):
        extract(io.BytesIO(data), dest, DeleteWhiteouts(), chown=False)
    assert batches[0] > 0
    assert list(outside.iterdir()) == []


def test_every_small_file_of_a_fresh_layer_goes_through_a_batch(tmp_path, batches):
    data = tar_of([dir_("a"), *small_files("a", 1000), dir_("b"), *small_files("b", 1000)])
    dest = tmp_path / "layer"
    dest.mkdir()
    extract(io.BytesIO(data), dest, DeleteWhiteouts(), chown=False)
    # runs of MAX_FILES (not a batch a file), one directory's rest handed on at the next's start
    assert 2000 // newfiles.MAX_FILES <= batches[0] <= 2000 // newfiles.MAX_FILES + 2
    assert (dest / "b" / "f0999").read_bytes() == bytes([999 % 251]) * (999 * 7 % 1500)
    assert os.lstat(dest / "a" / "f0001").st_mtime_ns == MTIME * 10**9
