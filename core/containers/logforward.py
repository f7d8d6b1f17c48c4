"""The daemon's side of forwarded log drivers (:class:`dockyard.drivers.logging.ForwardedLogs`):
follow the shim's buffer (the binary records) and hand the driver one message a line.

As Docker's copier: a line is cut at each newline (sent without it), a line longer than
16 KiB goes in 16 KiB pieces marked partial, stdout and stderr are kept apart, and a last line
without newline (the output ended) is sent marked partial.

Nothing is sent twice or skipped across a daemon restart: a cursor per stream (the timestamp
of the buffer record and the offset in it up to which everything was sent) is kept in
``<container dir>/log-forward.json``; a line not yet complete when the daemon stopped is
read again from its start. The cursor also says when the output has been sent to its end
(``ended``, the container exited) and the time of the last message (``last_ns``): a reader
of the driver's store (journald's ``docker logs -f``) uses them to know when it has it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..drivers.logging import MAX_LINE, ForwardedLogs, LogDriver, LogInfo, LogMessage, LogSink
from ..runtime.logfile import STDERR, LogRecord
from ..tasks import spawn
from ..timestamps import rfc3339_nano

log = logging.getLogger("dockyard.logging")

CURSOR = "log-forward.json"
STREAMS = {1: "stdout", STDERR: "stderr"}
SAVE_EVERY = 0.2  # seconds between saves of a cursor that moved without a send


def cursor_path(directory: Path) -> Path:
    return directory / CURSOR


def read_cursor(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads(cursor_path(directory).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class Forwarder:
    """Sends a container's output to a forwarded driver's sink until the container exits."""

    def __init__(self, driver: LogDriver, info: LogInfo, buffer: Any, sink: LogSink) -> None:
        assert isinstance(driver, ForwardedLogs)
        self.driver, self.info, self.buffer, self.sink = driver, info, buffer, sink
        state = read_cursor(info.directory)
        # per stream: (record timestamp, bytes of that record already sent or skipped)
        self.pos: dict[int, tuple[int, int]] = {int(k): tuple(v) for k, v in (state.get("pos") or {}).items()}  # type: ignore[misc]
        self.last_ns = int(state.get("last_ns") or 0)
        self.sent = int(state.get("sent") or 0)
        self.lost = 0  # messages the sink refused (OSError)
        self.carry: dict[int, tuple[bytes, int, int, int]] = {}  # stream -> (bytes, first ts, rec ts, rec offset)
        self._dirty = False
        self._busy = False  # a record is being sent (in a worker thread)

    def save(self, ended: bool = False) -> None:
        data = {"pos": {str(k): list(v) for k, v in list(self.pos.items())}, "last_ns": self.last_ns,
                "sent": self.sent, "ended": ended}
        path = cursor_path(self.info.directory)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        except OSError as exc:  # the container's directory went away (removed)
            log.debug("log cursor of %s not saved: %s", self.info.id12, exc)
        self._dirty = False

    def _emit(self, stream: int, line: bytes, ts: int, partial: bool) -> None:
        try:
            self.sink.log(LogMessage(STREAMS.get(stream, "stdout"), line, ts, partial))
            self.sent += 1
        except OSError as exc:
            self.lost += 1
            if self.lost == 1 or self.lost % 1000 == 0:
                log.warning("log driver %s: %d message(s) of container %s lost: %s",
                            self.driver.name, self.lost, self.info.id12, exc)
        self.last_ns = max(self.last_ns, ts)
        self._dirty = True

    def feed(self, r: LogRecord) -> None:
        """One record of the buffer: the lines it completes go out, the rest waits."""
        done_ts, done_off = self.pos.get(r.stream, (0, 0))
        if r.timestamp_ns < done_ts:
            return
        skip = done_off if r.timestamp_ns == done_ts else 0
        if skip >= len(r.data):
            return
        prev, first_ts, _, _ = self.carry.pop(r.stream, (b"", r.timestamp_ns, 0, 0))
        data = prev + r.data[skip:]
        base = len(prev) - skip  # index in data of r.data[0]
        start = 0
        while True:
            nl = data.find(b"\n", start, start + MAX_LINE + 1)
            if nl >= 0:
                self._emit(r.stream, data[start:nl], first_ts, False)
                start = nl + 1
            elif len(data) - start >= MAX_LINE:  # Docker's 16K buffer full: a partial message
                self._emit(r.stream, data[start:start + MAX_LINE], first_ts, True)
                start += MAX_LINE
            else:
                break
            first_ts = r.timestamp_ns
            self.pos[r.stream] = (r.timestamp_ns, start - base)
        if start < len(data):
            self.carry[r.stream] = (data[start:], first_ts, r.timestamp_ns, start - base)
        self.pos.setdefault(r.stream, (r.timestamp_ns, start - base))  # where this stream's unsent bytes begin

    def flush(self) -> None:
        """The output ended: what is left of a line goes out, marked partial (no newline)."""
        for stream, (data, ts, rts, _) in sorted(self.carry.items()):
            self._emit(stream, data, ts, True)
            self.pos[stream] = (rts, 1 << 62)
        self.carry.clear()

    def check_lost(self) -> bool:
        """Say (a warning) when the record the cursor points at is no longer in the buffer: what
        came after it may have rotated out while the daemon was down. True if so."""
        if not self.pos or not self.sent:
            return False
        since = min(ts for ts, _ in self.pos.values())
        first = next(iter(self.buffer.records()), None)
        if first is None or first.timestamp_ns <= since:
            return False
        log.warning("log driver %s: output of container %s written after %s and before %s may be lost: it "
                    "rotated out of the buffer while the daemon was down "
                    "(raise the daemon's log-opts max-size/max-file)",
                    self.driver.name, self.info.id12, rfc3339_nano(since), rfc3339_nano(first.timestamp_ns))
        return True

    async def _saver(self) -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY)
            if self._dirty and not self._busy:
                self.save()

    async def run(self) -> None:
        since = min((ts for ts, _ in self.pos.values()), default=0)
        self.check_lost()
        ended = False
        try:
            saver = spawn(self._saver(), f"log cursor saver of container {self.info.id12}")
            try:
                async with contextlib.aclosing(self.buffer.follow(since)) as records:
                    async for r in records:
                        # in a thread: a receiver that does not keep up blocks its sends, never the daemon
                        self._busy = True
                        try:
                            await asyncio.to_thread(self.feed, r)
                        finally:
                            self._busy = False
                        if self._dirty:  # sent: saved at once (a kill -9 re-sends at most this record's lines)
                            self.save()
            finally:
                saver.cancel()
            self.flush()
            ended = True
        finally:
            self.save(ended)
            with contextlib.suppress(Exception):
                self.sink.close()


def start(driver: LogDriver, info: LogInfo, buffer: Any) -> asyncio.Task[None] | None:
    """Start forwarding for a running container (the driver's :meth:`open` may raise a
    DockyardError: the start fails, as Docker's does without a receiver). None for drivers the
    shim writes for."""
    if not isinstance(driver, ForwardedLogs):
        return None
    sink = driver.open(info)
    fwd = Forwarder(driver, info, buffer, sink)
    with contextlib.suppress(OSError):  # a new run: "ended" no longer holds
        if read_cursor(info.directory).get("ended"):
            fwd.save(False)
    return spawn(fwd.run(), f"log forwarder of container {info.id12}")
