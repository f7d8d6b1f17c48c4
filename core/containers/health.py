"""Healthchecks: ``Config.Healthcheck`` (from the image, or ``--health-*``) run on schedule
inside the running container through the exec machinery, as moby's ``daemon/health.go``.

One task per running container with a healthcheck: wait ``Interval`` (``StartInterval``
during the start period), run the probe as an exec, kill it after ``Timeout``; exit 0 is a
success, anything else a failure. ``Retries`` failures in a row make the container
``unhealthy``; failures during ``StartPeriod`` do not count. Each change of status is a
``health_status: <status>`` container event. The state (``State.Health`` in inspect,
``(healthy)`` in ``ps``) is saved in the container record after every probe, as Docker saves
it in ``config.v2.json``: it survives a daemon restart, and probing resumes for a container
still running (live-restore). As Docker's ``initHealthMonitor``, every (re)start or restore
of the monitor sets the status back to ``starting`` and the streak to 0 and keeps the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import Conflict, DockyardError, InvalidArgument
from ..runtime.state import pid_alive
from .record import rfc3339
from ..tasks import spawn

log = logging.getLogger("dockyard.health")

DEFAULT_INTERVAL = 30 * 10**9
DEFAULT_TIMEOUT = 30 * 10**9
DEFAULT_RETRIES = 3
MAX_LOG = 5
MAX_OUTPUT = 4096  # moby's maxOutputLen
MIN_DURATION = 10**6  # 1 ms, Docker's minimum for the intervals

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass
class Result:
    start_ns: int
    end_ns: int
    exit_code: int
    output: str

    def to_json(self) -> dict[str, Any]:
        return {"Start": rfc3339(self.start_ns), "End": rfc3339(self.end_ns), "ExitCode": self.exit_code,
                "Output": self.output}


@dataclass
class Health:
    status: str = STARTING
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)  # Result.to_json()s, oldest first

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.status, "FailingStreak": self.failing_streak, "Log": list(self.log)}

    @classmethod
    def restarted(cls, saved: dict[str, Any] | None) -> "Health":
        """The state when monitoring (re)starts: ``starting``, the saved log kept."""
        log = (saved or {}).get("Log") or []
        return cls(log=[r for r in log if isinstance(r, dict)][-MAX_LOG:])


FIELDS = ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")


def merge(own: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's ``Config.Healthcheck`` at create time, as Docker's ``merge``
    (daemon/commit.go): none given takes the image's; given fields win and each missing or zero
    one (``Test`` included: ``--health-interval`` without ``--health-cmd``) comes from the image."""
    if not own:
        return image or None
    if not isinstance(own, dict) or not image:
        return own
    merged = dict(own)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for key in FIELDS:
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return merged


def probe(config: dict[str, Any]) -> dict[str, Any] | None:
    """The container's healthcheck, or None when it has none (absent, empty or ``NONE``)."""
    hc = config.get("Healthcheck") or {}
    test = hc.get("Test") or []
    if not test or test[0] == "NONE":
        return None
    return hc


def validate(config: dict[str, Any]) -> None:
    """Docker's create-time checks of ``Config.Healthcheck`` (400 on bad values)."""
    hc = config.get("Healthcheck")
    if not hc:
        return
    if not isinstance(hc, dict):
        raise InvalidArgument("Healthcheck must be an object")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = hc.get(key) or 0
        if not isinstance(value, int) or (value and value < MIN_DURATION):
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    if not isinstance(hc.get("Retries") or 0, int) or (hc.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")
    test = hc.get("Test") or []
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(f"unknown healthcheck type {test[0]!r} (expected NONE, CMD or CMD-SHELL)")


class HealthMonitor:
    def __init__(self, containers: Any) -> None:
        self.containers = containers
        self.state: dict[str, Health] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- hooks called by ContainerService ----------------------------------------------------

    def start(self, c: Any) -> None:
        """The container runs (started, or found running after a daemon restart); its
        ``Config.Healthcheck`` was merged with the image's at create time (:func:`merge`)."""
        hc = probe(c.config)
        if hc is None or c.id in self.tasks:
            return
        h = self.state[c.id] = Health.restarted(c.health)
        self._persist(c, h)
        self.tasks[c.id] = spawn(self._loop(c.id, hc, c.started_ns or time.time_ns()),
                                 f"healthcheck of container {c.id[:12]}")

    def _persist(self, c: Any, h: Health) -> None:
        c.health = h.to_json()
        with contextlib.suppress(OSError):  # the container's directory is being removed
            self.containers.save(c)

    def stop(self, cid: str) -> None:
        """The container stopped: no more probes; the last result stays for inspect."""
        task = self.tasks.pop(cid, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def forget(self, cid: str) -> None:
        self.stop(cid)
        self.state.pop(cid, None)

    # -- views -------------------------------------------------------------------------------

    def _saved(self, cid: str) -> dict[str, Any] | None:
        """The state in the container record (a container not run since the daemon started)."""
        c = self.containers.containers.get(cid)
        return getattr(c, "health", None) if c is not None else None

    def status(self, cid: str) -> str:
        """``starting``/``healthy``/``unhealthy``, or ``none`` (the ``ps --filter health=`` values)."""
        h = self.state.get(cid)
        if h is not None:
            return h.status
        return (self._saved(cid) or {}).get("Status") or "none"

    def inspect(self, cid: str) -> dict[str, Any] | None:
        h = self.state.get(cid)
        return h.to_json() if h is not None else self._saved(cid)

    def status_suffix(self, c: Any) -> str:
        """What ``ps`` appends to ``Up ...``."""
        h = self.state.get(c.id)
        if h is None or not c.running:
            return ""
        return " (health: starting)" if h.status == STARTING else f" ({h.status})"

    # -- the probe loop ----------------------------------------------------------------------

    async def _loop(self, cid: str, hc: dict[str, Any], started_ns: int) -> None:
        interval = int(hc.get("Interval") or DEFAULT_INTERVAL)
        start_interval = int(hc.get("StartInterval") or interval)
        timeout = int(hc.get("Timeout") or DEFAULT_TIMEOUT)
        retries = int(hc.get("Retries") or DEFAULT_RETRIES)
        start_period = int(hc.get("StartPeriod") or 0)
        try:
            while True:
                h = self.state.get(cid)
                if h is None:
                    return
                in_start = time.time_ns() - started_ns < start_period
                await asyncio.sleep((start_interval if in_start and h.status == STARTING else interval) / 1e9)
                with contextlib.suppress(DockyardError):
                    if self.containers.get(cid).state.value == "paused":
                        continue  # as Docker: no probe while paused
                result = await self._probe(cid, hc, timeout)
                c = self.containers.containers.get(cid)
                if result is None or c is None or not c.running or not pid_alive(c.pid, exiting_is_dead=True):
                    # gone or stopped meanwhile: as moby, a probe that raced the stop is dropped. The
                    # probe can end (killed with the pid namespace) before the daemon hears of the exit.
                    return
                self._record(cid, result, retries, started_ns, start_period)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("healthcheck of %s failed", cid[:12])
        finally:
            if self.tasks.get(cid) is asyncio.current_task():
                del self.tasks[cid]

    def _record(self, cid: str, result: Result, retries: int, started_ns: int, start_period: int) -> None:
        h = self.state.get(cid)
        if h is None:
            return
        old = h.status
        h.log = (h.log + [result.to_json()])[-MAX_LOG:]
        if result.exit_code == 0:
            h.failing_streak = 0
            h.status = HEALTHY
        elif not (result.start_ns - started_ns < start_period and h.status == STARTING):
            h.failing_streak += 1
            if h.failing_streak >= retries:
                h.status = UNHEALTHY
        c = self.containers.containers.get(cid)
        if c is None:
            return
        self._persist(c, h)
        if h.status != old:
            self.containers.emit(f"health_status: {h.status}", c)

    async def _probe(self, cid: str, hc: dict[str, Any], timeout_ns: int) -> Result | None:
        svc = self.containers
        try:
            c = svc.get(cid)
        except DockyardError:
            return None
        if not c.running:
            return None
        test = hc["Test"]
        if test[0] == "CMD-SHELL":
            argv = [*(c.config.get("Shell") or ["/bin/sh", "-c"]), test[1] if len(test) > 1 else ""]
        else:
            argv = list(test[1:])
        execs = svc.execs
        start = time.time_ns()
        try:
            e = execs.create(cid, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
        except DockyardError as exc:  # no longer running
            log.debug("healthcheck of %s not run: %s", cid[:12], exc)
            return None
        try:
            try:
                await execs.start(e)
            except Conflict:
                return None  # the container stopped under the probe: not a health result
            except DockyardError as exc:
                return Result(start, time.time_ns(), -1, exc.message[:MAX_OUTPUT])
            try:
                await asyncio.wait_for(e.done.wait(), timeout_ns / 1e9)
            except asyncio.TimeoutError:
                with contextlib.suppress(Exception):
                    await svc.runtime.exec_kill(cid, e.id, 9)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(e.done.wait(), 5)
                return Result(start, time.time_ns(), -1,
                              f"Health check exceeded timeout ({_seconds(timeout_ns)})")
            output = b""
            with contextlib.suppress(Exception):
                for r in execs.logs(e).records():
                    output += r.data
                    if len(output) > MAX_OUTPUT:
                        break
            code = e.exit_code if e.exit_code is not None else -1
            return Result(start, time.time_ns(), code, output[:MAX_OUTPUT].decode(errors="replace"))
        finally:
            execs.execs.pop(e.id, None)  # a probe is not one of the container's ExecIDs
            with contextlib.suppress(Exception):
                await svc.runtime.exec_delete(cid, e.id)


def _seconds(ns: int) -> str:
    s = ns / 1e9
    return f"{s:g}s"
