"""StorageDriverSuite: behavioural tests every storage driver runs (containerd's snapshotter
testsuite idea).

Subclass it in a test module and provide a fixture ``storage_driver`` returning a fresh
driver on temporary directories; the driver's root directory must be its ``root``
attribute (``Path``). The suite removes every container and layer it made and then checks
that no mount is left under the root. Kernel-backed drivers mark their subclass
``pytestmark = pytest.mark.privileged``.

Layer tars are built in memory with :func:`make_tar` and the entry helpers ``F`` (file),
``D`` (dir), ``S`` (symlink), ``H`` (hard link), ``W`` (whiteout), ``O`` (opaque marker),
``C`` (char device).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from dockyard.errors import Conflict, InvalidArgument, NotFound

MTIME = 1_600_000_000


# -- building tars -----------------------------------------------------------------------------

class Member(tarfile.TarInfo):
    """A TarInfo carrying its file content (``data``)."""

    data: bytes | None = None


def F(name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> tarfile.TarInfo:
    info = _info(name, tarfile.REGTYPE, mode, **kw)
    info.size = len(data)
    info.data = data
    return info


def D(name: str, mode: int = 0o755, **kw: Any) -> tarfile.TarInfo:
    return _info(name, tarfile.DIRTYPE, mode, **kw)


def S(name: str, target: str) -> tarfile.TarInfo:
    info = _info(name, tarfile.SYMTYPE, 0o777)
    info.linkname = target
    return info


def H(name: str, target: str) -> tarfile.TarInfo:
    info = _info(name, tarfile.LNKTYPE, 0o644)
    info.linkname = target
    return info


def W(name: str) -> tarfile.TarInfo:
    """Whiteout of ``name`` (``dir/x`` -> ``dir/.wh.x``)."""
    head, _, tail = name.rpartition("/")
    return F((head + "/" if head else "") + ".wh." + tail, mode=0o600)


def O(dirname: str) -> tarfile.TarInfo:  # noqa: E743
    return F(dirname.rstrip("/") + "/.wh..wh..opq", mode=0o600)


def C(name: str, major: int = 1, minor: int = 3, block: bool = False) -> tarfile.TarInfo:
    info = _info(name, tarfile.BLKTYPE if block else tarfile.CHRTYPE, 0o666)
    info.devmajor, info.devminor = major, minor
    return info


def _info(name: str, kind: bytes, mode: int, uid: int = 0, gid: int = 0,
          mtime: int = MTIME, xattrs: dict[str, str] | None = None) -> Member:
    info = Member(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, uid, gid, mtime
    info.pax_headers = {**info.pax_headers, **{"SCHILY.xattr." + k: v for k, v in (xattrs or {}).items()}}
    return info


def make_tar(*members: tarfile.TarInfo) -> io.BytesIO:
    """An uncompressed PAX tar of ``members`` in the given order (not sorted: tests need order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for m in members:
            data = getattr(m, "data", None)
            tf.addfile(m, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def tar_members(data: bytes) -> dict[str, tuple]:
    """name -> (type, mode, linkname, sha256 of content) for comparing tars by content."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|") as tf:
        for m in tf:
            f = tf.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(f.read()).hexdigest() if f else ""
            out[m.name.rstrip("/")] = (m.type, m.mode & 0o7777, m.linkname, digest)
    return out


# -- inspecting trees -------------------------------------------------------------------------

def tree(root: str | Path) -> dict[str, tuple]:
    """Recursive listing: relpath -> (kind, mode, size, content hash or link target, uid, gid)."""
    root = Path(root)
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            else:
                extra = ""
            kind = stat.S_IFMT(st.st_mode)
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
            out[rel] = (kind, stat.S_IMODE(st.st_mode), size, extra, st.st_uid, st.st_gid)
    return out


def mounts_under(path: str | Path) -> list[str]:
    """Mount points in /proc/self/mountinfo at or under ``path``."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def content(view: dict[str, tuple]) -> dict[str, tuple]:
    """A tree without ownership/dir mtimes: kind, mode, size, hash/target."""
    return {k: v[:4] for k, v in view.items()}


BASE = (D("etc"), F("etc/passwd", b"root:x:0:0\n"), F("etc/hosts", b"127.0.0.1 localhost\n"),
        D("bin"), F("bin/sh", b"#!shell\n", 0o755), F("bin/x", b"x"), S("bin/ls", "/bin/sh"),
        D("usr"), D("usr/lib"), F("usr/lib/f", b"lib"),
        D("dir"), F("dir/x", b"x"), F("dir/y", b"y"))


class StorageDriverSuite:
    """Subclasses provide ``storage_driver``; ``kernel`` says whether mounts are real."""

    kernel = True

    # -- fixtures ------------------------------------------------------------------------------
    @pytest.fixture
    def drv(self, storage_driver: Any) -> Iterator[Any]:
        yield storage_driver
        for cid in storage_driver.containers():
            storage_driver.remove_rw(cid)
        # children before parents: remove in reverse creation order as far as we know it
        for _ in range(len(storage_driver.layers()) + 1):
            for layer in storage_driver.layers():
                storage_driver.remove_layer(layer)
        storage_driver.close()
        assert mounts_under(storage_driver.root) == []

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        """A directory outside the driver root that hostile tars try to write into."""
        out = tmp_path / "outside"
        out.mkdir()
        (out / "keep").write_text("keep")
        return out

    @staticmethod
    def view(drv: Any, layer: str | None, cid: str = "view") -> dict[str, tuple]:
        """The tree a container over ``layer`` sees (then the container is removed)."""
        drv.create_rw(cid, layer)
        try:
            return tree(drv.mount(cid))
        finally:
            drv.remove_rw(cid)

    # -- layers --------------------------------------------------------------------------------
    def test_create_layer(self, drv):
        size = drv.create_layer("base", None, make_tar(*BASE))
        assert drv.has_layer("base") and not drv.has_layer("other")
        assert size == drv.layer_size("base")
        assert size >= len(b"root:x:0:0\n127.0.0.1 localhost\n#!shell\nxlibxy")
        assert drv.layers() == ["base"]
        v = self.view(drv, "base")
        assert v["etc/passwd"][3] == hashlib.sha256(b"root:x:0:0\n").hexdigest()
        assert v["bin/sh"][1] == 0o755
        assert v["bin/ls"][0] == stat.S_IFLNK and v["bin/ls"][3] == "/bin/sh"

    def test_empty_layer(self, drv):
        assert drv.create_layer("empty", None, make_tar()) == 0
        assert self.view(drv, "empty") == {}

    def test_implicit_parent_dirs(self, drv):
        drv.create_layer("implicit", None, make_tar(F("a/b/c", b"c")))
        v = self.view(drv, "implicit")
        assert v["a"][0] == v["a/b"][0] == stat.S_IFDIR and "a/b/c" in v

    def test_metadata_preserved(self, drv):
        root = os.geteuid() == 0
        drv.create_layer("m", None, make_tar(
            D("d", 0o700, mtime=1000), F("d/f", b"data", 0o4755, uid=1234, gid=4321, mtime=2000,
                                         xattrs={"user.note": "hello"}),
            S("d/s", "f")))
        drv.create_rw("c", "m")
        path = Path(drv.mount("c"))
        st = os.lstat(path / "d/f")
        assert stat.S_IMODE(st.st_mode) == 0o4755 and st.st_mtime == 2000
        assert stat.S_IMODE(os.lstat(path / "d").st_mode) == 0o700
        assert os.lstat(path / "d").st_mtime == 1000
        if root:
            assert (st.st_uid, st.st_gid) == (1234, 4321)
        assert os.getxattr(path / "d/f", "user.note") == b"hello"

    def test_modes_exact_whatever_the_umask(self, drv):
        """Files are created with their final mode when the umask allows it, else chmod'ed:
        either way the mode is the tar's (group/other write bits, none at all, set-id bits)."""
        old = os.umask(0o022)
        try:
            drv.create_layer("modes", None, make_tar(
                F("rw", b"1", 0o666), F("all", b"2", 0o777), F("none", b"3", 0o000), F("ro", b"4", 0o444),
                F("sgid", b"5", 0o2755), F("sticky", b"6", 0o1644), F("owned", b"7", 0o4750, uid=5, gid=6)))
        finally:
            os.umask(old)
        v = self.view(drv, "modes")
        assert {k: m[1] for k, m in v.items()} == {"rw": 0o666, "all": 0o777, "none": 0, "ro": 0o444,
                                                  "sgid": 0o2755, "sticky": 0o1644, "owned": 0o4750}
        if os.geteuid() == 0:
            assert v["owned"][4:] == (5, 6) and v["rw"][4:] == (0, 0)

    def test_staged_layers_commit_in_order(self, drv):
        """Drivers with the ``staging`` capability unpack layers before their parents exist (in
        any order, in parallel); ``commit_staged`` links them into the chain."""
        from dockyard.drivers import contracts

        if not contracts.record("storage", drv).has("staging"):
            pytest.skip("the driver has no staging capability")
        child = drv.stage_layer(make_tar(D("etc"), F("etc/hosts", b"::1 localhost\n"), W("etc/passwd")))
        base = drv.stage_layer(make_tar(*BASE))
        dropped = drv.stage_layer(make_tar(F("never", b"x")))
        drv.discard_staged(dropped)
        assert drv.commit_staged("base", None, base) == drv.layer_size("base")
        drv.commit_staged("child", "base", child)
        with pytest.raises(Conflict):
            drv.commit_staged("child", "base", drv.stage_layer(make_tar(F("y"))))
        v = self.view(drv, "child")
        assert v["etc/hosts"][3] == hashlib.sha256(b"::1 localhost\n").hexdigest()
        assert "etc/passwd" not in v and "bin/sh" in v and "never" not in v
        assert sorted(drv.layers()) == ["base", "child"]
        assert b"".join(drv.export_layer("child")) == make_tar(
            D("etc"), F("etc/hosts", b"::1 localhost\n"), W("etc/passwd")).getvalue()

    def test_hard_link(self, drv):
        drv.create_layer("h", None, make_tar(F("a", b"same"), H("b", "a"), D("d"), H("d/c", "a")))
        drv.create_rw("c", "h")
        path = Path(drv.mount("c"))
        assert (path / "b").read_bytes() == b"same"
        assert os.lstat(path / "a").st_ino == os.lstat(path / "d/c").st_ino

    def test_later_member_replaces_earlier(self, drv, outside):
        drv.create_layer("r", None, make_tar(
            F("f", b"one"), F("f", b"two"), S("s", str(outside / "target")), F("s", b"file"),
            D("d"), F("d/x"), F("d", b"now a file")))
        v = self.view(drv, "r")
        assert v["f"][3] == hashlib.sha256(b"two").hexdigest()
        assert v["s"][0] == stat.S_IFREG and v["d"][0] == stat.S_IFREG
        assert sorted(os.listdir(outside)) == ["keep"]

    def test_duplicate_and_missing(self, drv):
        drv.create_layer("a", None, make_tar(F("x")))
        with pytest.raises(Conflict):
            drv.create_layer("a", None, make_tar(F("y")))
        with pytest.raises(NotFound):
            drv.create_layer("b", "nope", make_tar(F("y")))
        with pytest.raises(NotFound):
            drv.create_rw("c", "nope")
        with pytest.raises(InvalidArgument):
            drv.create_layer("../evil", None, make_tar(F("y")))
        assert drv.layers() == ["a"] and drv.containers() == []

    def test_parent_chain(self, drv):
        drv.create_layer("base", None, make_tar(*BASE))
        drv.create_layer("child", "base", make_tar(
            D("etc"), F("etc/hosts", b"::1 localhost\n"), W("etc/passwd"),
            D("dir"), O("dir"), F("dir/z", b"z"), W("usr"), F("new", b"new")))
        drv.create_layer("grandchild", "child", make_tar(F("bin/y", b"y"), W("new")))
        v = self.view(drv, "grandchild")
        assert v["etc/hosts"][3] == hashlib.sha256(b"::1 localhost\n").hexdigest()
        assert "etc/passwd" not in v and "usr" not in v and "usr/lib/f" not in v and "new" not in v
        assert {k for k in v if k.startswith("dir/")} == {"dir/z"}
        assert {"bin/sh", "bin/x", "bin/ls", "bin/y"} <= set(v)
        assert "etc/passwd" in self.view(drv, "base") and "new" in self.view(drv, "child")
        assert sorted(drv.layers()) == ["base", "child", "grandchild"]

    def test_export_layer_gives_back_the_original_tar(self, drv):
        """Same diff id: ``docker save`` of a loaded image verifies it."""
        original = make_tar(*BASE, F("big", os.urandom(300_000)), H("big2", "big"),
                            F("x" * 150, b"long name"), F("unicode-é", b"pax")).getvalue()
        drv.create_layer("a", None, io.BytesIO(original))
        drv.create_layer("b", "a", io.BytesIO(original + b"\0" * 5000))  # extra end padding
        assert hashlib.sha256(b"".join(drv.export_layer("a"))).hexdigest() == \
            hashlib.sha256(original).hexdigest()
        assert b"".join(drv.export_layer("b")) == original + b"\0" * 5000

    def test_export_layer_rewriting_itself_is_deterministic(self, drv):
        """A tar that rewrites its own members cannot be replayed: the export is then a
        deterministic tar of the same content (the same bytes for the same content)."""
        tar = make_tar(F("f", b"one"), D("d"), F("d/x", b"x"), F("f", b"two"), F("g"), W("g"))
        drv.create_layer("a", None, tar)
        first = b"".join(drv.export_layer("a"))
        members = tar_members(first)
        assert members["f"][3] == hashlib.sha256(b"two").hexdigest() and "d/x" in members
        assert "g" not in members
        drv.create_layer("b", None, io.BytesIO(first))
        assert b"".join(drv.export_layer("b")) == first
        assert content(self.view(drv, "b")) == content(self.view(drv, "a"))

    def test_export_child_layer_round_trips(self, drv):
        drv.create_layer("base", None, make_tar(*BASE))
        drv.create_layer("child", "base", make_tar(
            D("etc"), W("etc/passwd"), D("dir"), O("dir"), F("dir/z", b"z"), W("usr"), F("n", b"n")))
        exported = b"".join(drv.export_layer("child"))
        names = set(tar_members(exported))
        assert {"etc/.wh.passwd", ".wh.usr", "n", "dir/z"} <= names
        drv.create_layer("copy", "base", io.BytesIO(exported))
        assert content(self.view(drv, "copy")) == content(self.view(drv, "child"))

    def test_remove_layer_idempotent(self, drv):
        drv.create_layer("a", None, make_tar(F("x")))
        drv.remove_layer("a")
        drv.remove_layer("a")
        assert not drv.has_layer("a") and drv.layers() == []

    # -- containers ----------------------------------------------------------------------------
    def test_mount_shows_image_and_writes_go_to_rw(self, drv):
        drv.create_layer("base", None, make_tar(*BASE))
        drv.create_rw("c1", "base")
        drv.create_rw("c2", "base")
        assert drv.containers() == ["c1", "c2"]
        p1 = Path(drv.mount("c1"))
        assert (p1 / "etc/passwd").read_bytes() == b"root:x:0:0\n"
        (p1 / "etc/passwd").write_bytes(b"changed\n")
        (p1 / "created").write_text("c1")
        p2 = Path(drv.mount("c2"))
        assert (p2 / "etc/passwd").read_bytes() == b"root:x:0:0\n"
        assert not (p2 / "created").exists()
        assert "created" not in tar_members(b"".join(drv.export_layer("base")))
        assert drv.rw_size("c1") >= len(b"changed\nc1")

    def test_container_without_parent(self, drv):
        drv.create_rw("c", None)
        path = Path(drv.mount("c"))
        assert os.listdir(path) == []
        (path / "f").write_text("x")
        assert drv.changes("c") == [{"Path": "/f", "Kind": 1}]

    def test_mount_unmount_remove_idempotent(self, drv):
        drv.create_layer("base", None, make_tar(*BASE))
        drv.create_rw("c", "base")
        with pytest.raises(Conflict):
            drv.create_rw("c", "base")
        assert not drv.is_mounted("c")
        first = drv.mount("c")
        assert drv.mount("c") == first and drv.is_mounted("c")
        if self.kernel:
            assert mounts_under(drv.root) == [os.path.realpath(first)]
        drv.unmount("c")
        drv.unmount("c")
        assert not drv.is_mounted("c") and mounts_under(drv.root) == []
        drv.mount("c")
        fd = os.open(first, os.O_RDONLY)  # a busy mount still goes away (lazy detach)
        try:
            drv.remove_rw("c")
        finally:
            os.close(fd)
        drv.remove_rw("c")
        assert drv.containers() == [] and mounts_under(drv.root) == []
        with pytest.raises(NotFound):
            drv.mount("c")

    def _changed_container(self, drv) -> Path:
        drv.create_layer("base", None, make_tar(*BASE))
        drv.create_rw("c", "base")
        path = Path(drv.mount("c"))
        (path / "etc/passwd").write_bytes(b"root:x:0:0\nuser:x:1000:1000\n")
        (path / "etc/new").write_text("new")
        (path / "bin/x").unlink()
        (path / "newdir").mkdir()
        (path / "newdir/f").write_text("f")
        return path

    def test_changes(self, drv):
        self._changed_container(drv)
        changes = {c["Path"]: c["Kind"] for c in drv.changes("c")}
        expected = {"/etc/passwd": 0, "/etc/new": 1, "/bin/x": 2, "/newdir": 1, "/newdir/f": 1,
                    "/etc": 0, "/bin": 0}
        assert changes == expected

    def test_export_changes_commits(self, drv):
        self._changed_container(drv)
        members = tar_members(b"".join(drv.export_changes("c")))
        assert {"etc/passwd", "etc/new", "bin/.wh.x", "newdir", "newdir/f"} <= set(members)
        assert "usr/lib/f" not in members and "etc/hosts" not in members
        drv.create_layer("committed", "base", io.BytesIO(b"".join(drv.export_changes("c"))))
        assert content(self.view(drv, "committed", "v2")) == content(tree(drv.mount("c")))

    # -- hostile tars --------------------------------------------------------------------------
    HOSTILE = {
        "dotdot": lambda out: make_tar(F("../evil", b"x")),
        "dotdot-inner": lambda out: make_tar(D("a"), F("a/../../evil", b"x")),
        "absolute": lambda out: make_tar(F(str(out / "evil"), b"x")),
        "under-symlink": lambda out: make_tar(S("link", str(out)), F("link/evil", b"x")),
        "under-relative-symlink": lambda out: make_tar(D("a"), S("a/up", ".."), F("a/up/evil")),
        "dir-then-symlink": lambda out: make_tar(D("d"), S("d", str(out)), F("d/evil", b"x")),
        "symlink-then-dir-member": lambda out: make_tar(S("d", str(out)), D("d/sub")),
        "hardlink-outside": lambda out: make_tar(H("h", "../outside/keep")),
        "hardlink-absolute": lambda out: make_tar(H("h", str(out / "keep"))),
        "hardlink-not-yet": lambda out: make_tar(H("h", "later"), F("later", b"x")),
        "hardlink-through-symlink": lambda out: make_tar(S("s", str(out)), H("h", "s/keep")),
        "hardlink-to-symlink-parent": lambda out: make_tar(S("s", str(out)), F("x"), H("s/h", "x")),
        "char-device": lambda out: make_tar(C("dev/sda", 8, 0)),
        "block-device": lambda out: make_tar(C("dev/sda", 8, 0, block=True)),
        "whiteout-dotdot": lambda out: make_tar(D("a"), F("a/.wh..")),
        "whiteout-empty": lambda out: make_tar(F(".wh.")),
        "whiteout-under-symlink": lambda out: make_tar(S("s", str(out)), F("s/.wh.keep")),
        "opaque-under-symlink": lambda out: make_tar(S("s", str(out)), O("s")),
        "truncated": lambda out: io.BytesIO(make_tar(F("big", os.urandom(20000))).getvalue()[:6000]),
        "garbage": lambda out: io.BytesIO(b"\x7fELF" + os.urandom(2000)),
        "bad-checksum": lambda out: io.BytesIO(_corrupt(make_tar(F("a", b"x")).getvalue())),
    }

    @pytest.mark.parametrize("case", sorted(HOSTILE))
    def test_hostile_tar_refused(self, drv, outside, case):
        drv.create_layer("base", None, make_tar(*BASE))
        before_root, before_out = tree(drv.root), tree(outside)
        with pytest.raises(InvalidArgument):
            drv.create_layer("evil", None, self.HOSTILE[case](outside))
        with pytest.raises(InvalidArgument):
            drv.create_layer("evil2", "base", self.HOSTILE[case](outside))
        assert tree(drv.root) == before_root
        assert tree(outside) == before_out
        assert not drv.has_layer("evil") and drv.layers() == ["base"]

    def test_parent_symlink_never_followed(self, drv, outside):
        """A parent layer's symlink to the host, then a child writing "through" it."""
        drv.create_layer("base", None, make_tar(S("escape", str(outside)), S("rel", "../../..")))
        try:
            drv.create_layer("child", "base", make_tar(F("escape/pwn", b"x"), F("rel/pwn", b"x")))
        except InvalidArgument:
            pass
        assert sorted(os.listdir(outside)) == ["keep"]

    def test_symlinks_are_data(self, drv, outside):
        drv.create_layer("s", None, make_tar(S("abs", "/etc/shadow"), S("up", "../../../..")))
        v = self.view(drv, "s")
        assert v["abs"][3] == "/etc/shadow" and v["up"][3] == "../../../.."

    def test_devices_refused_by_default_fifo_allowed(self, drv):
        drv.create_layer("f", None, make_tar(_fifo("run/pipe")))
        assert self.view(drv, "f")["run/pipe"][0] == stat.S_IFIFO


def _fifo(name: str) -> tarfile.TarInfo:
    return _info(name, tarfile.FIFOTYPE, 0o600)


def _corrupt(data: bytes) -> bytes:
    """Flip a byte of the first member's header name (checksum no longer matches)."""
    b = bytearray(data)
    first = 512 if b[156:157] == b"x" else 0  # skip a PAX extended header block
    b[first + 10] ^= 0xFF
    return bytes(b)
