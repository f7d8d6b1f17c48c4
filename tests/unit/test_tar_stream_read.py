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
