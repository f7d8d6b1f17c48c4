"""The journald log driver: systemd's native journal protocol, as Docker's (go-systemd's
``journal.Send``), and ``docker logs`` read back with ``journalctl``.

Each line is one datagram to the journal socket: ``KEY=value\\n`` per field, or for a value
with a newline the binary-safe form ``KEY\\n<uint64 LE length><value>\\n``. An entry the socket
refuses as too big (``EMSGSIZE``/``ENOBUFS``) goes as sd_journal_sendv does: written to a sealed
memfd whose descriptor is sent (``SCM_RIGHTS``) in an empty datagram.

Fields (Docker's): ``PRIORITY`` (6 stdout, 3 stderr), ``MESSAGE`` (the line without its
newline), ``CONTAINER_ID`` (12), ``CONTAINER_ID_FULL``, ``CONTAINER_NAME``, ``CONTAINER_TAG``
and ``SYSLOG_IDENTIFIER`` (``--log-opt tag``, default ``{{.ID}}``), ``IMAGE_NAME``, the
``labels``/``labels-regex``/``env``/``env-regex`` attributes (keys upper-cased, other characters
``_``), ``CONTAINER_PARTIAL_MESSAGE=true`` on a piece of a longer line, and
``SYSLOG_TIMESTAMP`` (when the line was read, RFC 3339 with nanoseconds: the entry may be sent
later, after a daemon restart; ``docker logs`` shows this time).

The lines reach the driver through the daemon (:mod:`dockyard.containers.logforward`).

Daemon configuration (``[plugins.journald]`` in the daemon's file): ``socket`` (default
``/run/systemd/journal/socket``), ``directory`` (a journal directory ``journalctl -D`` reads
for ``docker logs``; default the system journal), ``journalctl`` (the binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ..drivers.logging import LogInfo, LogMessage, ShimOutput
from ..errors import InvalidArgument, Unavailable
from ..runtime.logfile import STDERR, STDOUT, LogRecord, parse_rfc3339_ns, split_lines
from ..timestamps import rfc3339_nano
from .logdrivers import file_limits

DEFAULT_SOCKET = "/run/systemd/journal/socket"
OPTS = ("tag", "labels", "labels-regex", "env", "env-regex")
PRI_INFO, PRI_ERR = 6, 3
F_ADD_SEALS, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1033, 1, 2, 4, 8


def sanitize_key(key: str) -> str:
    """moby's journald sanitizeKeyMod: a-z upper-cased, anything else but A-Z0-9 to ``_``,
    leading ``_`` dropped (journald refuses them from clients)."""
    out: list[str] = []
    for ch in key:
        if "a" <= ch <= "z":
            ch = ch.upper()
        elif not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
            ch = "_"
        if not (not out and ch == "_"):
            out.append(ch)
    return "".join(out)


def extra_attributes(opts: dict[str, str], labels: dict[str, str], env: list[str]) -> dict[str, str]:
    """Docker's ``logger.Info.ExtraAttributes``: the labels and env variables the options name."""
    out: dict[str, str] = {}
    for key in filter(None, (opts.get("labels") or "").split(",")):
        if key in labels:
            out[key] = labels[key]
    if opts.get("labels-regex"):
        rx = re.compile(opts["labels-regex"])
        out.update({k: v for k, v in labels.items() if rx.match(k)})
    envs = dict(e.split("=", 1) for e in env if "=" in e)
    for key in filter(None, (opts.get("env") or "").split(",")):
        if key in envs:
            out[key] = envs[key]
    if opts.get("env-regex"):
        rx = re.compile(opts["env-regex"])
        out.update({k: v for k, v in envs.items() if rx.match(k)})
    return {sanitize_key(k): v for k, v in out.items() if sanitize_key(k)}


def field(key: str, value: bytes) -> bytes:
    """One field of the native protocol (go-systemd's appendVariable)."""
    if b"\n" in value:
        return key.encode() + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
    return key.encode() + b"=" + value + b"\n"


def encode_fields(fields: dict[str, str]) -> bytes:
    """A container's fields, encoded once (they are the same for each of its messages)."""
    return b"".join(field(k, v.encode()) for k, v in fields.items())


_stamp_cache: dict[int, bytes] = {}


def _timestamp_field(ns: int) -> bytes:
    got = _stamp_cache.get(ns)
    if got is None:
        if len(_stamp_cache) > 64:
            _stamp_cache.clear()
        got = _stamp_cache[ns] = field("SYSLOG_TIMESTAMP", rfc3339_nano(ns).encode())
    return got


_PRIORITY = {"stdout": field("PRIORITY", str(PRI_INFO).encode()), "stderr": field("PRIORITY", str(PRI_ERR).encode())}
_PARTIAL = field("CONTAINER_PARTIAL_MESSAGE", b"true")


def entry(msg: LogMessage, fields: dict[str, str] | bytes) -> bytes:
    """The datagram for one message: PRIORITY, MESSAGE, then the container's fields."""
    static = fields if isinstance(fields, bytes) else encode_fields(fields)
    line = msg.line
    if b"\n" in line:
        message = b"MESSAGE\n" + struct.pack("<Q", len(line)) + line + b"\n"
    else:
        message = b"MESSAGE=" + line + b"\n"
    return b"".join((_PRIORITY.get(msg.stream, _PRIORITY["stdout"]), message, static,
                     _PARTIAL if msg.partial else b"", _timestamp_field(msg.timestamp_ns)))


class JournalSink:
    """One container's connection to the journal socket."""

    def __init__(self, path: str, fields: dict[str, str]) -> None:
        self.path, self.fields = path, fields
        self.static = encode_fields(fields)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError as exc:
            self.sock.close()
            raise Unavailable(f"failed to initialize logging driver: journald is not enabled on this host "
                              f"({path}: {exc.strerror})") from None

    def log(self, msg: LogMessage) -> None:
        data = entry(msg, self.static)
        try:
            self.sock.send(data)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(data)

    def _send_memfd(self, data: bytes) -> None:
        """sd_journal_sendv's way for a big entry: a sealed memfd passed as the datagram's fd."""
        fd = os.memfd_create("journal-message", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            import fcntl

            fcntl.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
            socket.send_fds(self.sock, [b""], [fd])
        finally:
            os.close(fd)

    def close(self) -> None:
        self.sock.close()


class JournaldDriver:
    name = "journald"
    while_daemon_down = ("the shim keeps the output in its buffer (max-size x max-file of the daemon's log-opts); "
                         "the daemon sends it on when it is back; what rotated out meanwhile is lost (logged)")

    def __init__(self, config: dict[str, Any] | None = None, **_: Any) -> None:
        config = dict(config or {})
        self.socket = str(config.get("socket") or DEFAULT_SOCKET)
        self.directory = config.get("directory") or None
        self.journalctl = str(config.get("journalctl") or shutil.which("journalctl") or "journalctl")

    def validate(self, opts: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
        for key in opts:
            if key not in OPTS:
                raise InvalidArgument(f"unknown log opt '{key}' for journald log driver")
        for key in ("labels-regex", "env-regex"):
            if opts.get(key):
                try:
                    re.compile(opts[key])
                except re.error as exc:
                    raise InvalidArgument(f"log opt {key}: {exc}") from None
        from ..containers import syslog  # here: the daemon registers every log driver at start (idle memory)

        syslog.check_tag(opts.get("tag") or "")
        return dict(opts)

    def shim_output(self, info: LogInfo) -> ShimOutput:
        # the buffer the daemon forwards from: the daemon's limits (what survives its being down)
        return ShimOutput(*file_limits({}, info.defaults, self.name))

    def log_path(self, info: LogInfo) -> Path | None:
        return None

    def fields(self, info: LogInfo) -> dict[str, str]:
        from ..containers import syslog

        tag = syslog.render_tag(info.config.get("tag") or "", info.container_id, info.name, info.image_name,
                                info.image_id)
        out = {"CONTAINER_ID": info.id12, "CONTAINER_ID_FULL": info.container_id, "CONTAINER_NAME": info.name,
               "CONTAINER_TAG": tag, "IMAGE_NAME": info.image_name, "SYSLOG_IDENTIFIER": tag}
        for key, value in extra_attributes(info.config, info.labels, info.env).items():
            out.setdefault(key, value)
        return out

    # ForwardedLogs
    def open(self, info: LogInfo) -> JournalSink:
        return JournalSink(self.socket, self.fields(info))

    # ReadableLogs
    def reader(self, info: LogInfo, buffer: Any) -> JournalReader:
        return JournalReader(self, info, getattr(buffer, "exit_path", None))


def _value(v: Any) -> bytes:
    if isinstance(v, list):  # journalctl -o json: a binary value is an array of byte values
        if v and isinstance(v[0], list):  # the field more than once: the first
            v = v[0]
        return bytes(v)
    return (v or "").encode()


class JournalReader:
    """``docker logs`` from the journal (as Docker reads journald back): the container's
    entries by ``CONTAINER_ID_FULL``, one record a line (a newline added unless partial)."""

    def __init__(self, driver: JournaldDriver, info: LogInfo, exit_path: Path | None) -> None:
        self.driver, self.info, self.exit_path = driver, info, exit_path

    def _command(self, *extra: str) -> list[str]:
        cmd = [self.driver.journalctl, "--no-pager", "--all", "-o", "json"]
        if self.driver.directory:
            cmd += ["-D", str(self.driver.directory)]
        return [*cmd, *extra, f"CONTAINER_ID_FULL={self.info.container_id}"]

    @staticmethod
    def _entry(line: bytes) -> tuple[LogRecord, str] | None:
        """A record and the entry's journal cursor, from one line of ``journalctl -o json``."""
        try:
            e = json.loads(line)
        except ValueError:
            return None
        stream = STDERR if str(e.get("PRIORITY")) == str(PRI_ERR) else STDOUT
        data = _value(e.get("MESSAGE"))
        if _value(e.get("CONTAINER_PARTIAL_MESSAGE")) != b"true":
            data += b"\n"
        ts = 0
        stamp = _value(e.get("SYSLOG_TIMESTAMP")).decode(errors="replace")
        if stamp:
            with contextlib.suppress(ValueError):
                ts = parse_rfc3339_ns(stamp)
        if not ts:
            ts = int(e.get("__REALTIME_TIMESTAMP") or 0) * 1000
        return LogRecord(stream, ts, data), str(e.get("__CURSOR") or "")

    def _entries(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[tuple[LogRecord, str]]:
        """The container's entries, streamed from journalctl as it prints them (docker logs
        writes them out in batches between its reads, as it does for a file)."""
        try:
            proc = subprocess.Popen(self._command(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise Unavailable(f"reading the journal failed: {exc}") from None
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                got = self._entry(line)
                if (got is not None and got[0].timestamp_ns >= since_ns
                        and (not until_ns or got[0].timestamp_ns <= until_ns)):
                    yield got
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()

    async def _entries_async(self) -> list[tuple[LogRecord, str]]:
        proc = await asyncio.create_subprocess_exec(*self._command(), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
        return [got for line in out.splitlines() if (got := self._entry(line)) is not None]

    def records(self, since_ns: int = 0, until_ns: int = 0) -> Iterator[LogRecord]:
        return (r for r, _ in self._entries(since_ns, until_ns))

    def tail(self, n: int, since_ns: int = 0, until_ns: int = 0) -> list[LogRecord]:
        if n <= 0:
            return []
        return list(deque(split_lines(self.records(since_ns, until_ns)), maxlen=n))

    def _complete(self, seen_ns: int) -> bool:
        """The container exited and everything the forwarder sent has been read."""
        if self.exit_path is None or not (self.exit_path.exists() or not self.exit_path.parent.exists()):
            return False
        from ..containers.logforward import read_cursor  # here: not at idle

        cur = read_cursor(self.info.directory)
        return bool(cur.get("ended")) and seen_ns >= int(cur.get("last_ns") or 0)

    async def follow(self, since_ns: int = 0, until_ns: int = 0, tail: int | None = None,
                     poll_interval: float = 0.1) -> AsyncIterator[LogRecord]:
        """History, then new entries (``journalctl -f`` from the last one shown) until the
        container has exited and every message the daemon sent for it has been read."""
        entries = await self._entries_async()
        after = entries[-1][1] if entries else ""
        history = [r for r, _ in entries if r.timestamp_ns >= since_ns and (not until_ns or r.timestamp_ns <= until_ns)]
        if tail is not None and tail >= 0:
            history = list(deque(split_lines(history), maxlen=tail)) if tail else []
        seen = max((r.timestamp_ns for r, _ in entries), default=0)
        for r in history:
            yield r
        if self._complete(seen):
            return
        position = [f"--after-cursor={after}"] if after else []
        proc = await asyncio.create_subprocess_exec(
            *self._command("-f", "--no-tail", *position), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        assert proc.stdout is not None
        idle_after_end = 0
        try:
            while True:
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), poll_interval)
                except asyncio.TimeoutError:
                    if self._complete(seen):
                        return
                    if until_ns and time.time_ns() > until_ns:
                        return
                    # journald may have dropped an entry: a bound once the forwarder is done
                    from ..containers.logforward import read_cursor

                    if read_cursor(self.info.directory).get("ended"):
                        idle_after_end += 1
                        if idle_after_end > 50:
                            return
                    continue
                if not line:
                    return
                got = self._entry(line)
                if got is None:
                    continue
                r = got[0]
                seen = max(seen, r.timestamp_ns)
                if until_ns and r.timestamp_ns > until_ns:
                    return
                if r.timestamp_ns >= since_ns:
                    yield r
                if self._complete(seen):
                    return
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
