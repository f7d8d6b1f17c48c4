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
import time
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
LOSS_CHECK_EVERY = 1.0  # seconds between looks at the buffer's oldest record while forwarding
LOSS_WARN_EVERY = 60.0  # seconds between warnings of output lost while running (the first at once)


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
        # output that rotated out of the buffer before it was sent, while forwarding (estimates)
        self.gaps = int(state.get("gaps") or 0)
        self.gap_bytes = int(state.get("gap_bytes") or 0)
        self.gap_messages = int(state.get("gap_messages") or 0)
        self.fed_ts = 0  # timestamp of the last record fed (this run)
        self._rate: tuple[int, int, int] | None = None  # (first ts fed, bytes fed, messages sent) this run
        self._oldest = 0  # the buffer's oldest record when last looked, if newer than what was fed
        self._checked = 0.0  # monotonic time of that look
        self._ino = 0  # of the buffer's current file at that look
        self._warned = 0.0
        self._unwarned = [0, 0, 0, 0, 0]  # gaps, bytes, messages, first gap start, last gap end
        self.carry: dict[int, tuple[bytes, int, int, int]] = {}  # stream -> (bytes, first ts, rec ts, rec offset)
        self._dirty = False
        self._busy = False  # a record is being sent (in a worker thread)

    def save(self, ended: bool = False) -> None:
        data = {"pos": {str(k): list(v) for k, v in list(self.pos.items())}, "last_ns": self.last_ns,
                "sent": self.sent, "ended": ended, "gaps": self.gaps, "gap_bytes": self.gap_bytes,
                "gap_messages": self.gap_messages}
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

    def watch(self, r: LogRecord) -> None:
        """Feed ``r`` and say (a warning, the counters) when records before it were skipped
        because they rotated out of the buffer while the forwarder was behind: every
        LOSS_CHECK_EVERY seconds the buffer's oldest record is looked at; if it is newer than the
        last record fed, the first record fed at or after it closes a gap (from the last record
        fed before it), unless it is that oldest record itself (it came next: nothing was skipped)."""
        now = time.monotonic()
        if self.fed_ts and not self._oldest and (self._rotated() or now - self._checked >= LOSS_CHECK_EVERY):
            self._checked = now
            first = next(iter(self.buffer.records()), None)
            if first is not None and first.timestamp_ns > self.fed_ts:
                self._oldest = first.timestamp_ns
        if self._oldest and r.timestamp_ns >= self._oldest:
            if r.timestamp_ns > self._oldest:
                self._gap(self.fed_ts, r.timestamp_ns, now)
            self._oldest = 0
        if self._rate is None:
            self._rate = (r.timestamp_ns, 0, self.sent)
        t0, nbytes, sent0 = self._rate
        self._rate = (t0, nbytes + len(r.data), sent0)
        self.fed_ts = max(self.fed_ts, r.timestamp_ns)
        self.feed(r)

    def _rotated(self) -> bool:
        """The buffer's current file changed since the last call (always True for a buffer
        without a ``path``)."""
        try:
            ino = os.stat(self.buffer.path).st_ino
        except (AttributeError, OSError):
            return True
        changed, self._ino = ino != self._ino, ino
        return changed

    def _gap(self, start: int, end: int, now: float) -> None:
        """Output written after ``start`` and before ``end`` was not sent: estimated at the rate
        of the output forwarded so far (bytes per second of output, bytes per message)."""
        t0, nbytes, sent0 = self._rate or (start, 0, self.sent)
        span = start - t0
        est_bytes = nbytes * (end - start) // span if span > 0 else nbytes  # no rate yet: a guess
        est_msgs = est_bytes * max(self.sent - sent0, 0) // max(nbytes, 1)
        self.gaps += 1
        self.gap_bytes += est_bytes
        self.gap_messages += est_msgs
        self._dirty = True
        u = self._unwarned
        u[0] += 1
        u[1] += est_bytes
        u[2] += est_msgs
        u[3] = u[3] or start
        u[4] = end
        if not self._warned or now - self._warned >= LOSS_WARN_EVERY:
            self.warn_gaps(now)

    def warn_gaps(self, now: float) -> None:
        """The warning for the gaps not said yet (rate-limited by :meth:`_gap`; the rest at the end)."""
        u = self._unwarned
        if not u[0]:
            return
        self._warned = now
        log.warning("log driver %s: output of container %s written after %s and before %s was not sent: it "
                    "rotated out of the buffer before the driver took it (%d gap(s), about %d bytes, %d "
                    "message(s); %d gap(s), about %d bytes in all; the driver "
                    "is slower than the output: raise the daemon's log-opts max-size/max-file)",
                    self.driver.name, self.info.id12, rfc3339_nano(u[3]), rfc3339_nano(u[4]), u[0], u[1], u[2],
                    self.gaps, self.gap_bytes)
        self._unwarned = [0, 0, 0, 0, 0]

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
                            await asyncio.to_thread(self.watch, r)
                        finally:
                            self._busy = False
                        if self._dirty:  # sent: saved at once (a kill -9 re-sends at most this record's lines)
                            self.save()
            finally:
                saver.cancel()
                self.warn_gaps(time.monotonic())
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
