"""fast_stream: tarfile's stream reads through an index over the block give the same
members, data and errors as tarfile's own reads, whatever sizes the source returns."""

from __future__ import annotations

import io
import random
import tarfile

import pytest

from dockyard.layers.tarfmt import _StreamRead, fast_stream


class _Trickle(io.RawIOBase):
    """A source that returns short reads of random sizes (as a socket or pipe does)."""

    def __init__(self, data: bytes, seed: int) -> None:
        self.data, self.pos, self.rng = data, 0, random.Random(seed)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = len(self.data) - self.pos if n < 0 else min(n, self.rng.randint(1, 70000))
        out = self.data[self.pos:self.pos + n]
        self.pos += len(out)
        return out


def _archive(seed: int) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for i in range(300):
            size = rng.choice([0, 1, 511, 512, 513, 4096, rng.randint(0, 300000)])
            info = tarfile.TarInfo(f"d/{'x' * rng.choice([1, 120, 300])}{i}")
            info.size, info.mode, info.mtime = size, 0o644, 1.5 if i % 7 == 0 else 1
            tf.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buf.getvalue()


def _members(data: bytes, seed: int, fast: bool, bufsize: int) -> list:
    out = []
    tf = tarfile.open(fileobj=_Trickle(data, seed), mode="r|", bufsize=bufsize)
    if fast:
        fast_stream(tf)
        assert isinstance(vars(tf.fileobj).get("_read"), _StreamRead)
    with tf:
        for m in tf:
            rng = random.Random(m.offset)
            left, chunks = m.size, []
            while left:  # member data read in uneven pieces, as unpack does
                chunk = tf.fileobj.read(min(left, rng.choice([1, 100, 1 << 20])))
                assert chunk
                chunks.append(chunk)
                left -= len(chunk)
            out.append((m.name, m.size, m.mtime, m.offset, m.offset_data, b"".join(chunks)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("bufsize", [512, 10240, 256 << 10])
def test_same_members_and_data(seed, bufsize):
    data = _archive(seed)
    assert _members(data, seed, True, bufsize) == _members(data, seed, False, bufsize)


def test_truncated_stream_fails_the_same():
    data = _archive(4)[:-20000]
    errors = []
    for fast in (False, True):
        with pytest.raises((tarfile.ReadError, AssertionError)) as exc:
            _members(data, 4, fast, 256 << 10)
        errors.append((type(exc.value), len(str(exc.value)) > 0))
    assert errors[0] == errors[1]


_FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname",
           "uname", "gname", "devmajor", "devminor")


def _parse(cls, buf):
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except Exception as exc:  # noqa: BLE001 -- the error itself is compared
        return type(exc), str(exc)
    return tuple(getattr(info, f) for f in _FIELDS) + (getattr(info, "_sparse_structs", None),)


def _fix_checksum(block: bytearray, signed: bool = False) -> None:
    block[148:156] = b" " * 8
    total = sum((b - 256 if b > 127 else b) for b in block) if signed else sum(block)
    block[148:156] = b"%06o\0 " % (total & 0o777777)


def test_header_parse_matches_tarfile_on_mutated_headers():
    """Every header the fast parse accepts gives tarfile's TarInfo; the rest falls back to it."""
    from dockyard.layers.tarfmt import TarInfo

    rng = random.Random(5)
    seeds = []
    for kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                 tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE, tarfile.GNUTYPE_SPARSE):
        info = tarfile.TarInfo("p/" * 70 + "name/")
        info.type, info.linkname, info.size = kind, "t\u00e9st", 5
        info.uid, info.uname, info.devmajor = 1000, "us\u00e9r", 3
        for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT):
            try:
                seeds.append(info.tobuf(fmt, "utf-8", "surrogateescape")[:512])
            except ValueError:
                pass
    assert len(seeds) > 8
    specials = [b"\x80", b"\xff", b" ", b"\0", b"\x1c", b"_", b"+", b"-", b"8", b"o", b"\xe9", b"/"]
    cases = [b"", b"\0" * 512, b"x" * 100, seeds[0][:511]]
    for _ in range(6000):
        block = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(0, 4)):
            pos = rng.randrange(512) if rng.random() < 0.5 else rng.randrange(100, 345)
            block[pos:pos + 1] = rng.choice(specials) if rng.random() < 0.7 else bytes([rng.randrange(256)])
        if rng.random() < 0.9:
            _fix_checksum(block, signed=rng.random() < 0.1)
        cases.append(bytes(block))
    fast = 0
    for buf in cases:
        assert _parse(TarInfo, buf) == _parse(tarfile.TarInfo, buf), buf
        fast += not isinstance(_parse(TarInfo, buf)[0], type)
    assert fast > 1000


def test_the_header_byte_sum_is_exact_up_to_all_bytes_255():
    from dockyard.layers.tarfmt import _byte_sum

    rng = random.Random(7)
    blocks = [bytes(512), b"\xff" * 512, b"\xff" * 256 + bytes(256), bytes(256) + b"\xff" * 256]
    blocks += [bytes(rng.randrange(256) for _ in range(512)) for _ in range(2000)]
    for block in blocks:
        assert _byte_sum(block) == sum(block)
        assert _byte_sum(bytearray(block)) == sum(block)
