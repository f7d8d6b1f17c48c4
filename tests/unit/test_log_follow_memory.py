"""``docker logs -f`` (LogReader.follow) holds no log-sized list: found attacking the HTTP layer
with clients that never read (4 followers of a 300 MB log that read nothing took the daemon
from 53 to 268 MB RSS, on main as on the new server): follow() read the whole history into a
list before sending its first record, so every follower cost the size of the log."""

from __future__ import annotations

import asyncio
import tracemalloc

from dockyard.runtime.logfile import LogReader, LogWriter

RECORDS = 200_000  # ~60 MB as LogRecord objects held in a list, ~7 MB on disk


def test_follow_streams_the_history_instead_of_holding_it(tmp_path):
    path = tmp_path / "log"
    w = LogWriter(path, max_size=4 << 20, max_files=3)  # rotated files too
    for i in range(RECORDS):
        w.write(1, b"0123456789abcdefghijklmnopqrstuvwxyz\n", i + 1)
    w.close()
    exit_path = tmp_path / "exit"
    exit_path.write_text("0")  # exited: follow ends after the history

    async def main() -> tuple[int, int]:
        records = LogReader(path, exit_path).follow().__aiter__()
        tracemalloc.start()
        try:
            first = await records.__anext__()  # a follower that read one record, then stalls
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        n = 1 + sum([1 async for _ in records])
        assert first.timestamp_ns >= 1
        return held, n

    held, n = asyncio.run(main())
    kept = sum(1 for _ in LogReader(path).records())  # what rotation kept: all of it is followed
    assert n == kept > RECORDS // 4
    assert held < 8 << 20, f"follow() holds {held >> 20} MB before its first record"
