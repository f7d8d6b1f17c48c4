"""Sizes and names that unpacking, tar-split and export share."""

from __future__ import annotations

import tarfile

XATTR_PAX_PREFIX = "SCHILY.xattr."
CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
READ_SIZE = 256 << 10  # tarfile's stream reads (its default 10 KiB makes big files slow)
TRAILING_LIMIT = 16 << 20  # bytes accepted after the end-of-archive blocks
