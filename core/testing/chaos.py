"""The chaos harness: random lifecycle operations from several client threads against a private
daemon, ``kill -9`` of the daemon at random moments, invariants checked after every restart,
and a leak check at the end. ``tests/chaos`` runs it bounded in CI; ``bench/chaos.py`` runs the
long version and prints its figures.

Operations (Engine API over the Unix socket, one connection each): create with and without a
name, start, stop, kill, rm -f, restart, run --rm (create AutoRemove + start + wait), exec,
logs, network create/rm, volume create/rm. A thread holds a container while it operates on it,
so the model knows what each acknowledged answer means; names come from a small pool, so
threads race for them.

The model keeps what the daemon *acknowledged*. An operation cut by a kill (no answer) leaves
its object *uncertain*: after the restart the harness adopts whatever the daemon says about it.
Everything else must hold after each restart (``Violation`` otherwise):

* every acknowledged container, network and volume exists, unless its removal was acknowledged
  (AutoRemove containers are exempt: they go by themselves); an acknowledged removal stays done;
* a container that ran keeps running with the same pid (live-restore), a created one is still
  created, an exited one has the exit code the model expects;
* no container is stuck ("removing", "restarting" with no restart policy, running with pid 0);
* no process the API does not account for: one that does not run has no process in its cgroups
  and no shim, one that runs has its pid alive;
* names are unique, and each name resolves to the container the model gave it; of five
  concurrent creates of one name exactly one wins;
* logs are never partial: every line is a whole line the container printed;
* no answer is a server error (5xx: a bug, whatever the operation);
* at the end, ``rm -f`` of every container works, and after a clean stop nothing is left on the
  machine (mounts, cgroups, links, nft tables, netns, shims: :mod:`dockyard.testing.leaks`) and
  no temp file of an atomic write is left in the data root.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dockyard_cli.client import UnixHTTPConnection

from . import leaks
from .daemon import DaemonProcess

API = "/v1.44"
NAMES = [f"chaos{i}" for i in range(12)]
NET_NAMES = [f"chaosnet{i}" for i in range(4)]
VOL_NAMES = [f"chaosvol{i}" for i in range(6)]
# what a kill aims at: the killer waits (briefly) until one of these is in flight
KILL_TARGETS = ["create", "create race", "start", "stop", "kill", "rm", "restart", "run --rm", "network", "volume"]


def tracked(name: str) -> bool:
    """Names the model follows: the pool's and the create races'."""
    return name in NAMES or name.startswith("race")
_TEMP = re.compile(r"^\.(.+\.tmp-[A-Za-z0-9_]{8}|tmp-.*)$")


class DaemonDown(Exception):
    """No answer: the daemon was killed under the request (or was not up)."""


@dataclass
class Box:
    """One container as the model knows it."""

    id: str
    name: str
    kind: str  # "long" (prints a line, sleeps) or "short" (prints a line, exits with `code`)
    token: str
    code: int = 0
    auto_remove: bool = False
    state: str = "created"  # created | running | exited | removed | gone (auto-removed)
    pid: int = 0  # the pid acknowledged for a running container (0: not known)
    codes: set[int] = field(default_factory=set)  # exit codes the state allows
    uncertain: bool = False  # an operation on it got no answer: adopt what the daemon says
    history: list[str] = field(default_factory=list)  # what happened to it, for the violation reports

    def line(self) -> bytes:
        return (f"start-{self.token}" if self.kind == "long" else f"out-{self.token}").encode()

    def cmd(self) -> list[str]:
        if self.kind == "long":
            return ["sh", "-c", f"echo start-{self.token}; exec sleep 100000"]
        return ["sh", "-c", f"echo out-{self.token}; exit {self.code}"]


@dataclass
class Result:
    operations: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    interrupted: int = 0
    kills: int = 0
    violations: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # answers that were wrong but no invariant
    leaks: list[str] = field(default_factory=list)
    seconds: float = 0.0
    seed: int = 0

    def figures(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        return (f"seed {self.seed}: {self.operations} operations ({kinds}); {self.interrupted} cut by a kill; "
                f"{self.kills} kills; {len(self.violations)} violations; {len(self.unexpected)} unexpected "
                f"answers; {len(self.leaks)} leaks; {self.seconds:.1f} s")


class Gate:
    """Client threads pass it for each operation; the killer closes it and waits until no
    operation is in flight before it restarts the daemon and checks the invariants."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.open = True
        self.inflight = 0

    def enter(self) -> None:
        with self.cv:
            while not self.open:
                self.cv.wait()
            self.inflight += 1

    def leave(self) -> None:
        with self.cv:
            self.inflight -= 1
            self.cv.notify_all()

    def close(self) -> None:
        with self.cv:
            self.open = False

    def drain(self) -> None:
        with self.cv:
            while self.inflight:
                self.cv.wait()

    def reopen(self) -> None:
        with self.cv:
            self.open = True
            self.cv.notify_all()


def frames(body: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {1: b"", 2: b""}
    while len(body) >= 8:
        stream, length = struct.unpack(">BxxxL", body[:8])
        out[stream] = out.get(stream, b"") + body[8:8 + length]
        body = body[8 + length:]
    return out


class Chaos:
    def __init__(self, base: Path, busybox_tar: Path, *, operations: int = 300, threads: int = 4, kills: int = 8,
                 seed: int | None = None, log: Callable[[str], None] | None = None) -> None:
        self.base = Path(base)
        self.busybox_tar = busybox_tar
        self.total = operations
        self.threads = threads
        self.n_kills = kills
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.log = log or (lambda s: None)
        self.daemon = DaemonProcess(self.base / "daemon")
        self.gate = Gate()
        self.lock = threading.Lock()  # the model
        self.boxes: dict[str, Box] = {}
        self.busy: set[str] = set()
        self.networks: dict[str, str] = {}  # acknowledged: name -> id
        self.networks_gone: set[str] = set()  # ids whose removal was acknowledged
        self.volumes: set[str] = set()
        self.volumes_gone: set[str] = set()
        self.uncertain_nets: set[str] = set()
        self.uncertain_vols: set[str] = set()
        self.result = Result(seed=self.seed)
        self.started = 0
        self.done = 0
        self.broken = False
        self.epoch = 0  # +1 at each kill
        self.inflight_kinds: dict[str, int] = {}
        self._local = threading.local()
        self.hold_at = operations + 1  # workers take no operation numbered past it
        self.kill_pending = False
        # explicit subnets: the host's default pools may be used up by other daemons' networks
        self.subnet_octet = 200 + random.Random(self.seed).randrange(50)

    # -- the API ----------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, timeout: float = 90) -> tuple[int, bytes]:
        epoch = self.epoch
        conn = UnixHTTPConnection(str(self.daemon.socket), timeout=timeout)
        try:
            headers = {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers = {"Content-Type": "application/json"}
            conn.request(method, API + path, body=data, headers=headers)
            r = conn.getresponse()
            status, data = r.status, r.read()
            if self.epoch != epoch:
                # a kill came during the call: a body delimited by the connection's close (exec,
                # attach) ends "cleanly" when the daemon dies, so no answer of it can be trusted
                self._cut()
                raise DaemonDown(f"{method} {path}: the daemon was killed during the call")
            return status, data
        except TimeoutError:
            if self.daemon.proc is not None and self.daemon.proc.poll() is None:
                raise AssertionError(f"{method} {path}: no answer in {timeout} s (the daemon is up)") from None
            self._cut()
            raise DaemonDown(f"{method} {path}") from None
        except (OSError, http.client.HTTPException) as exc:
            self._cut()
            raise DaemonDown(f"{method} {path}: {exc}") from None
        finally:
            conn.close()

    def _cut(self) -> None:
        with self.lock:
            self.result.interrupted += 1

    def unexpected(self, what: str, status: int, body: bytes) -> None:
        """A wrong answer that breaks no invariant; a 5xx is a bug all the same (DESIGN 1)."""
        with self.lock:
            self.result.unexpected.append(f"{what}: {status} {body[:200]!r}")
        if status >= 500:
            self.violation(f"server error on {what}: {status} {body[:200]!r}")

    def violation(self, text: str) -> None:
        with self.lock:
            self.result.violations.append(text)
        self.log(f"VIOLATION {text}")

    def inspect(self, ref: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/containers/{ref}/json")
        if status == 404:
            return None
        if status != 200:
            raise AssertionError(f"inspect {ref}: {status} {body[:200]!r}")
        return json.loads(body)

    # -- picking objects ------------------------------------------------------------------

    def checkout(self, rng: random.Random, pred: Callable[[Box], bool]) -> Box | None:
        with self.lock:
            free = [b for b in self.boxes.values() if b.id not in self.busy and b.state not in ("removed", "gone")
                    and not b.uncertain and pred(b)]
            if not free:
                return None
            box = rng.choice(free)
            self.busy.add(box.id)
            box.history.append(getattr(self._local, "kind", "?"))
            return box

    def release(self, box: Box) -> None:
        with self.lock:
            self.busy.discard(box.id)

    def live(self) -> int:
        with self.lock:
            return sum(b.state not in ("removed", "gone") for b in self.boxes.values())

    # -- operations -----------------------------------------------------------------------------

    def op_create(self, rng: random.Random, auto_remove: bool = False, named: bool | None = None) -> Box | None:
        kind = "short" if auto_remove or rng.random() < 0.4 else "long"
        box = Box(id="", name="", kind=kind, token=secrets.token_hex(4), code=rng.randrange(3, 10),
                  auto_remove=auto_remove)
        named = rng.random() < 0.5 if named is None else named
        name = rng.choice(NAMES) if named else ""
        body = {"Image": "busybox", "Cmd": box.cmd(), "HostConfig": {"AutoRemove": auto_remove}}
        try:
            status, data = self.call("POST", "/containers/create" + (f"?name={name}" if name else ""), body)
        except DaemonDown:
            return None  # may exist: adopted at the next check
        if status == 409 and name:
            return None  # taken (by the model's holder, a create in flight, or a cut one that happened)
        if status != 201:
            self.unexpected("create", status, data)
            return None
        box.id = json.loads(data)["Id"]
        with self.lock:
            if name:
                clash = [b for b in self.boxes.values() if b.name == name and b.state not in ("removed", "gone")
                         and not b.uncertain and b.id not in self.busy]  # (busy: an rm may be answered)
                if clash:
                    self.result.violations.append(f"duplicate name: {name} given to {box.id[:12]} while "
                                                  f"{clash[0].id[:12]} holds it")
            box.name = name
            self.boxes[box.id] = box
            self.busy.add(box.id)
        return box

    def op_create_race(self, rng: random.Random) -> str:
        """Five creates of one new name at once: exactly one may win (Docker: the others 409)."""
        if self.live() >= 16:
            return "skip"
        name = f"race{secrets.token_hex(4)}"
        token = secrets.token_hex(4)
        body = {"Image": "busybox", "Cmd": ["sh", "-c", f"echo out-{token}; exit 3"]}
        answers: list[tuple[int, bytes] | None] = []

        def create() -> None:
            try:
                answers.append(self.call("POST", f"/containers/create?name={name}", body))
            except DaemonDown:
                answers.append(None)

        threads = [threading.Thread(target=create) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [json.loads(a[1])["Id"] for a in answers if a is not None and a[0] == 201]
        for a in answers:
            if a is not None and a[0] not in (201, 409):
                self.unexpected("create race", *a)
        if len(won) > 1:
            self.violation(f"duplicate name: {len(won)} of 5 concurrent creates named {name} succeeded")
        with self.lock:
            for cid in won:
                self.boxes[cid] = Box(id=cid, name=name, kind="short", token=token, code=3)
        return "create race"

    def _started(self, box: Box) -> None:
        """After an acknowledged start or restart: what runs now."""
        info = self.inspect(box.id)
        if info is None:
            if box.auto_remove:
                box.state = "gone"
                return
            self.violation(f"{box.id[:12]}: gone right after its start was acknowledged")
            box.state = "removed"
            return
        st = info["State"]
        if st["Running"]:
            box.state, box.pid = "running", st["Pid"]
            if not box.pid:
                self.violation(f"{box.id[:12]}: running with pid 0 after start")
        else:
            box.state, box.pid = "exited", 0
            box.codes = {box.code}

    def op_start(self, rng: random.Random) -> str:
        box = self.checkout(rng, lambda b: b.state in ("created", "exited") and not b.auto_remove)
        if box is None:
            return "skip"
        try:
            status, data = self.call("POST", f"/containers/{box.id}/start")
            if status in (204, 304):
                self._started(box)
            else:
                self.unexpected("start", status, data)
        except DaemonDown:
            box.uncertain = True
            box.history.append("cut")
        finally:
            self.release(box)
        return "start"

    def op_stop_or_kill(self, rng: random.Random, verb: str) -> str:
        box = self.checkout(rng, lambda b: b.state == "running" or (verb == "stop" and b.state == "exited"))
        if box is None:
            return "skip"
        try:
            path = f"/containers/{box.id}/stop?t=1" if verb == "stop" else f"/containers/{box.id}/kill"
            status, data = self.call("POST", path)
            if status in (204, 304) or (verb == "kill" and status == 409):
                if status == 204:
                    if box.state == "running" and box.kind == "short":
                        box.codes = {box.code, 137, 143}
                    elif box.state == "running":
                        box.codes = {137, 143} if verb == "stop" else {137}
                    box.state, box.pid = "exited", 0
                    if verb == "kill":  # the answer comes once the signal is sent: wait for the exit
                        self.call("POST", f"/containers/{box.id}/wait?condition=not-running")
                    info = self.inspect(box.id)
                    if info is not None and info["State"]["Running"]:
                        self.violation(f"{box.id[:12]}: still running after an acknowledged {verb}")
            else:
                self.unexpected(verb, status, data)
        except DaemonDown:
            box.uncertain = True
            box.history.append("cut")
        finally:
            self.release(box)
        return verb

    def op_rm(self, rng: random.Random) -> str:
        box = self.checkout(rng, lambda b: True)
        if box is None:
            return "skip"
        try:
            status, data = self.call("DELETE", f"/containers/{box.id}?force=1&v=1")
            if status == 204 or (status == 404 and box.auto_remove):
                box.state = "removed"
            else:
                self.violation(f"rm -f {box.id[:12]} ({box.state}): {status} {data[:200]!r}")
        except DaemonDown:
            box.uncertain = True
            box.history.append("cut")
        finally:
            self.release(box)
        return "rm"

    def op_restart(self, rng: random.Random) -> str:
        box = self.checkout(rng, lambda b: b.state in ("running", "exited") and not b.auto_remove)
        if box is None:
            return "skip"
        try:
            status, data = self.call("POST", f"/containers/{box.id}/restart?t=1")
            if status == 204:
                self._started(box)
            else:
                self.unexpected("restart", status, data)
        except DaemonDown:
            box.uncertain = True
            box.history.append("cut")
        finally:
            self.release(box)
        return "restart"

    def op_run_rm(self, rng: random.Random) -> str:
        if self.live() >= 16:
            return "skip"
        box = self.op_create(rng, auto_remove=True, named=False)
        if box is None:
            return "run --rm"
        try:
            status, data = self.call("POST", f"/containers/{box.id}/start")
            if status != 204:
                self.unexpected("run --rm start", status, data)
                return "run --rm"
            box.state = "running"
            status, data = self.call("POST", f"/containers/{box.id}/wait?condition=removed")
            if status == 200:
                code = json.loads(data.strip().splitlines()[-1])["StatusCode"]
                if code != box.code:
                    self.violation(f"run --rm {box.id[:12]}: wait said {code}, the command exits {box.code}")
                if self.inspect(box.id) is not None:
                    self.violation(f"run --rm {box.id[:12]}: still there after wait condition=removed")
                box.state = "gone"
            elif status == 404:  # removed before the wait was registered
                box.state = "gone"
            else:
                self.unexpected("run --rm wait", status, data)
        except DaemonDown:
            box.uncertain = True
            box.history.append("cut")
        finally:
            self.release(box)
        return "run --rm"

    def op_exec(self, rng: random.Random) -> str:
        box = self.checkout(rng, lambda b: b.state == "running" and b.kind == "long")
        if box is None:
            return "skip"
        token = secrets.token_hex(4)
        try:
            status, data = self.call("POST", f"/containers/{box.id}/exec",
                                     {"Cmd": ["echo", f"exec-{token}"], "AttachStdout": True, "AttachStderr": True})
            if status != 201:
                self.unexpected("exec create", status, data)
                return "exec"
            eid = json.loads(data)["Id"]
            status, data = self.call("POST", f"/exec/{eid}/start", {"Detach": False, "Tty": False})
            if status != 200:
                self.unexpected("exec start", status, data)
            elif frames(data)[1] != f"exec-{token}\n".encode():
                self.violation(f"exec in {box.id[:12]}: output {data[:100]!r}")
        except DaemonDown:
            pass  # an exec changes nothing the model tracks
        finally:
            self.release(box)
        return "exec"

    def check_logs(self, box: Box, data: bytes, where: str) -> None:
        out = frames(data)[1]
        if out and (not out.endswith(b"\n") or any(line != box.line() for line in out[:-1].split(b"\n"))):
            self.violation(f"{where}: partial or foreign logs of {box.id[:12]}: {out[:120]!r}")
        if box.state == "exited" and box.codes == {box.code} and box.kind == "short" and not out:
            self.violation(f"{where}: {box.id[:12]} exited with its code but its line is not in the logs "
                           f"(history: {', '.join(box.history[-12:])})")

    def op_logs(self, rng: random.Random) -> str:
        box = self.checkout(rng, lambda b: b.state in ("running", "exited") and not b.auto_remove)
        if box is None:
            return "skip"
        try:
            status, data = self.call("GET", f"/containers/{box.id}/logs?stdout=1&stderr=1")
            if status == 200:
                self.check_logs(box, data, "logs")
            else:
                self.unexpected("logs", status, data)
        except DaemonDown:
            pass
        finally:
            self.release(box)
        return "logs"

    def op_network(self, rng: random.Random) -> str:
        name = rng.choice(NET_NAMES)
        with self.lock:
            if name in self.busy:
                return "skip"
            self.busy.add(name)
        try:
            if name in self.networks:
                nid = self.networks[name]
                status, data = self.call("DELETE", f"/networks/{nid}")
                if status == 204:
                    del self.networks[name]
                    self.networks_gone.add(nid)
                else:
                    self.unexpected("network rm", status, data)
                return "network rm"
            status, data = self.call("POST", "/networks/create", {"Name": name, "IPAM": {"Config": [
                {"Subnet": f"10.{self.subnet_octet}.{NET_NAMES.index(name)}.0/24"}]}})
            if status == 201:
                self.networks[name] = json.loads(data)["Id"]
            elif status != 409 or name not in self.uncertain_nets:
                self.unexpected("network create", status, data)
            return "network create"
        except DaemonDown:
            self.uncertain_nets.add(name)
            return "network"
        finally:
            with self.lock:
                self.busy.discard(name)

    def op_volume(self, rng: random.Random) -> str:
        name = rng.choice(VOL_NAMES)
        with self.lock:
            if name in self.busy:
                return "skip"
            self.busy.add(name)
        try:
            if name in self.volumes:
                status, data = self.call("DELETE", f"/volumes/{name}")
                if status == 204:
                    self.volumes.discard(name)
                    self.volumes_gone.add(name)
                else:
                    self.unexpected("volume rm", status, data)
                return "volume rm"
            status, data = self.call("POST", "/volumes/create", {"Name": name})
            if status == 201:
                self.volumes.add(name)
                self.volumes_gone.discard(name)
            else:
                self.unexpected("volume create", status, data)
            return "volume create"
        except DaemonDown:
            self.uncertain_vols.add(name)
            return "volume"
        finally:
            with self.lock:
                self.busy.discard(name)

    def one(self, rng: random.Random) -> str:
        live = self.live()
        choices = [("create", 14 if live < 16 else 0), ("create race", 2), ("start", 12), ("stop", 6), ("kill", 4),
                   ("rm", 8 if live > 4 else 3), ("restart", 5), ("run --rm", 6), ("exec", 10), ("logs", 10),
                   ("network", 5), ("volume", 5)]
        kind = rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
        with self.lock:
            self.inflight_kinds[kind] = self.inflight_kinds.get(kind, 0) + 1
        self._local.kind = kind
        try:
            return self._one(rng, kind)
        finally:
            with self.lock:
                self.inflight_kinds[kind] -= 1

    def _one(self, rng: random.Random, kind: str) -> str:
        if kind == "create race":
            return self.op_create_race(rng)
        if kind == "create":
            box = self.op_create(rng)
            if box is not None:
                self.release(box)
            return "create"
        if kind == "start":
            return self.op_start(rng)
        if kind in ("stop", "kill"):
            return self.op_stop_or_kill(rng, kind)
        if kind == "rm":
            return self.op_rm(rng)
        if kind == "restart":
            return self.op_restart(rng)
        if kind == "run --rm":
            return self.op_run_rm(rng)
        if kind == "exec":
            return self.op_exec(rng)
        if kind == "logs":
            return self.op_logs(rng)
        if kind == "network":
            return self.op_network(rng)
        return self.op_volume(rng)

    # -- threads ----------------------------------------------------------------------------

    def worker(self, n: int) -> None:
        rng = random.Random(self.seed * 100 + n)
        while True:
            self.gate.enter()
            try:
                while (self.started >= self.hold_at or (self.started >= self.total and self.kill_pending)) \
                        and not self.broken:
                    # the killer is behind (aiming, restarting): no run-away past its next point,
                    # and no end of the run before its last kill
                    self.gate.leave()
                    time.sleep(0.005)
                    self.gate.enter()
                with self.lock:
                    if self.started >= self.total or self.broken:
                        return
                    self.started += 1
                try:
                    kind = self.one(rng)
                except DaemonDown:
                    kind = "cut"
                except (AssertionError, KeyError, ValueError) as exc:  # a hang or a broken answer
                    self.violation(f"{type(exc).__name__}: {exc}")
                    kind = "failed"
                with self.lock:
                    if kind == "skip":
                        self.started -= 1
                        continue
                    self.done += 1
                    self.result.operations += 1
                    self.result.by_kind[kind] = self.result.by_kind.get(kind, 0) + 1
            finally:
                self.gate.leave()

    def killer(self, points: list[int], stop: threading.Event) -> None:
        try:
            self._kill_at(points, stop)
        finally:  # whatever happened, the workers may finish
            self.kill_pending, self.hold_at = False, self.total + 1

    def _kill_at(self, points: list[int], stop: threading.Event) -> None:
        rng = random.Random(self.seed * 7)
        for point in points:
            self.kill_pending, self.hold_at = True, point + 40
            while self.done < point and not stop.is_set():
                time.sleep(0.005)
            if stop.is_set():
                return
            target = rng.choice(KILL_TARGETS)  # aim at one kind of transition, if one comes soon
            deadline = time.monotonic() + 2
            while not self.inflight_kinds.get(target) and time.monotonic() < deadline and not stop.is_set():
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))  # somewhere inside the operations in flight
            self.gate.close()
            try:
                self.epoch += 1
                self.daemon.kill()
                self.result.kills += 1
                self.gate.drain()
                self.log(f"kill {self.result.kills} after {self.done} operations; restarting")
                self.daemon.start()
                self.check(f"after kill {self.result.kills}")
            except Exception as exc:  # the daemon does not come back, or answers nonsense
                self.violation(f"after kill {self.result.kills}: {type(exc).__name__}: {exc}")
                with self.lock:
                    self.broken = True
                return
            finally:
                if point == points[-1]:
                    self.kill_pending, self.hold_at = False, self.total + 1
                self.gate.reopen()
        self.kill_pending, self.hold_at = False, self.total + 1

    # -- invariants ---------------------------------------------------------------------------

    def check(self, where: str) -> None:
        """All threads are parked: compare the daemon with the model, then adopt the uncertain."""
        status, data = self.call("GET", "/containers/json?all=1")
        listed = {c["Id"]: c for c in json.loads(data)}
        names: dict[str, list[str]] = {}
        for c in listed.values():
            for n in c.get("Names") or []:
                names.setdefault(n.lstrip("/"), []).append(c["Id"])
        for n, ids in names.items():
            if len(ids) > 1:
                self.violation(f"{where}: name {n} held by {len(ids)} containers")
        for box in list(self.boxes.values()):
            if box.state in ("removed", "gone"):
                if box.id in listed and not box.uncertain and box.state == "removed":
                    self.violation(f"{where}: {box.id[:12]} is back after its removal was acknowledged")
                continue
            info = self.inspect(box.id) if box.id in listed else None
            if info is None:
                if not box.uncertain and not box.auto_remove:
                    self.violation(f"{where}: acknowledged container {box.id[:12]} ({box.state}) is lost")
                box.state = "gone" if box.auto_remove or box.uncertain else "removed"
                continue
            st = info["State"]
            if st["Status"] in ("removing", "dead") or (st["Running"] and not st["Pid"]) or \
                    (st["Status"] == "restarting" and not (info["HostConfig"].get("RestartPolicy") or {}).get("Name")):
                self.violation(f"{where}: {box.id[:12]} is stuck: {st['Status']} pid {st['Pid']}")
            if box.name and info["Name"].lstrip("/") != box.name and not box.uncertain:
                self.violation(f"{where}: {box.id[:12]} is called {info['Name']}, not {box.name}")
            if not box.uncertain and not box.auto_remove:
                if box.state == "running" and box.kind == "long":
                    if not st["Running"] or (box.pid and st["Pid"] != box.pid):
                        self.violation(f"{where}: {box.id[:12]} ran with pid {box.pid}, now "
                                       f"{st['Status']} pid {st['Pid']}")
                elif box.state == "running" and box.kind == "short":
                    if not st["Running"] and st["ExitCode"] != box.code:
                        self.violation(f"{where}: {box.id[:12]} exited {st['ExitCode']}, its command exits {box.code}")
                elif box.state == "created" and st["Status"] != "created":
                    self.violation(f"{where}: {box.id[:12]} was created, now {st['Status']}")
                elif box.state == "exited":
                    if st["Running"]:
                        self.violation(f"{where}: {box.id[:12]} exited, now running")
                    elif box.codes and st["ExitCode"] not in box.codes:
                        self.violation(f"{where}: {box.id[:12]} exit code {st['ExitCode']}, expected one of "
                                       f"{sorted(box.codes)}")
                if box.state in ("running", "exited"):
                    status, logs = self.call("GET", f"/containers/{box.id}/logs?stdout=1&stderr=1")
                    if status == 200:
                        self.check_logs(box, logs, where)
            # adopt what the daemon says (the uncertain ones, and short ones that exited by themselves)
            adopted = box.uncertain
            if adopted:
                box.history.append(f"adopted {st['Status']} {st['ExitCode']}")
            box.uncertain = False
            box.name = info["Name"].lstrip("/") if tracked(info["Name"].lstrip("/")) else ""
            if st["Running"]:
                # an operation cut by the kill (a restart) may have started a new process:
                # adopt its pid too, not only the state
                if adopted or box.state != "running" or not box.pid:
                    box.state, box.pid = "running", st["Pid"]
            elif st["Status"] == "created":
                box.state = "created"
            else:
                box.state, box.pid = "exited", 0
                box.codes = {st["ExitCode"]}
        self._check_processes(where, listed)
        for cid, c in listed.items():  # creates that were cut by a kill, yet happened
            if cid not in self.boxes:
                new_box = self._adopt(cid, c)
                if new_box is not None:
                    self.boxes[cid] = new_box
        self._check_networks_volumes(where)

    def _processes(self) -> dict[str, set[int]]:
        """Container id -> the processes of it on the machine: in its cgroups (any hierarchy,
        under this daemon's parent ``dockyard-<instance>``) and shims whose spec names it."""
        found: dict[str, set[int]] = {}
        parent = f"dockyard-{leaks.instance_of(self.daemon.data_root)}"
        for ctl in leaks._subdirs(leaks.CGROUP_ROOT):
            for cg in leaks._subdirs(ctl / parent):
                try:
                    pids = {int(x) for x in (cg / "cgroup.procs").read_text().split()}
                except (OSError, ValueError):
                    continue
                if pids:
                    found.setdefault(cg.name, set()).update(pids)
        runtime = str(self.daemon.exec_root / "runtime")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if len(argv) > 1 and b"dockyard-shim" in argv[0] and argv[1].decode(errors="replace").startswith(runtime):
                parts = Path(argv[1].decode(errors="replace")).relative_to(runtime).parts
                if len(parts) > 1:
                    found.setdefault(parts[1], set()).add(int(pid))
        return found

    def _check_processes(self, where: str, listed: dict[str, Any]) -> None:
        """No process the API does not account for: a container that does not run has none (a
        start cut by a kill must not leave an unmanaged one, finding 4 of issue 14), one that
        runs has its pid alive."""
        deadline = time.monotonic() + 10  # a shim that recorded its exit may still be on its way out
        while True:
            procs = self._processes()
            bad = []
            for cid in listed:
                info = self.inspect(cid)
                if info is None:
                    continue
                st = info["State"]
                if st["Running"] and st["Pid"] and not os.path.exists(f"/proc/{st['Pid']}"):
                    bad.append(f"{cid[:12]} is running with pid {st['Pid']}, which does not exist")
                elif not st["Running"] and st["Status"] != "paused" and procs.get(cid):
                    bad.append(f"{cid[:12]} is {st['Status']} (pid {st['Pid']}) yet processes "
                               f"{sorted(procs[cid])} of it run: unmanaged")
            for cid in set(procs) - set(listed):
                if len(cid) == 64:
                    bad.append(f"processes {sorted(procs[cid])} of {cid[:12]}, which the API does not list")
            if not bad or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for line in bad:
            self.violation(f"{where}: {line}")

    def _adopt(self, cid: str, c: dict[str, Any]) -> Box | None:
        cmd = c.get("Command") or ""
        m = re.search(r"(start|out)-([0-9a-f]{8})", cmd)
        if m is None:
            return None
        info = self.inspect(cid)
        if info is None:
            return None
        code_m = re.search(r"exit (\d+)", cmd)
        box = Box(id=cid, name=info["Name"].lstrip("/") if tracked(info["Name"].lstrip("/")) else "",
                  kind="long" if m.group(1) == "start" else "short", token=m.group(2),
                  code=int(code_m.group(1)) if code_m else 0,
                  auto_remove=bool(info["HostConfig"].get("AutoRemove")))
        st = info["State"]
        box.state = "running" if st["Running"] else ("created" if st["Status"] == "created" else "exited")
        box.pid = st["Pid"] if st["Running"] else 0
        box.codes = {st["ExitCode"]} if box.state == "exited" else set()
        return box

    def _check_networks_volumes(self, where: str) -> None:
        status, data = self.call("GET", "/networks")
        nets = {n["Name"]: n["Id"] for n in json.loads(data)}
        for name, nid in list(self.networks.items()):
            if nets.get(name) != nid and name not in self.uncertain_nets:
                self.violation(f"{where}: acknowledged network {name} is lost")
        for nid in self.networks_gone:
            if nid in nets.values() and not {n for n, i in nets.items() if i == nid} & self.uncertain_nets:
                self.violation(f"{where}: network {nid[:12]} is back after its removal was acknowledged")
        for name in NET_NAMES:  # adopt what cut creates and removals left
            if name in nets:
                self.networks[name] = nets[name]
            else:
                self.networks.pop(name, None)
        self.uncertain_nets.clear()
        status, data = self.call("GET", "/volumes")
        vols = {v["Name"] for v in json.loads(data)["Volumes"] or []}
        for name in self.volumes - vols:
            if name not in self.uncertain_vols:
                self.violation(f"{where}: acknowledged volume {name} is lost")
        for name in (self.volumes_gone & vols) - self.uncertain_vols:
            self.violation(f"{where}: volume {name} is back after its removal was acknowledged")
        self.volumes = {v for v in vols if v in VOL_NAMES}
        self.volumes_gone -= vols
        self.uncertain_vols.clear()
        voldirs = {p.name for p in (self.daemon.data_root / "volumes").iterdir() if p.is_dir() and p.name != "_meta"}
        if voldirs - vols:
            self.violation(f"{where}: volume directories without a volume: {sorted(voldirs - vols)}")

    # -- the run ----------------------------------------------------------------------------------

    def temp_files(self) -> list[str]:
        """Temp files of atomic writes (``.<name>.tmp-XXXXXXXX``, ``.tmp-*``) anywhere in the data
        and exec roots, except inside volumes' data and image layers (user content)."""
        found = []
        for top in (self.daemon.data_root, self.daemon.exec_root):
            for dirpath, dirnames, filenames in os.walk(top):
                rel = Path(dirpath).relative_to(top).parts
                if rel[:1] == ("volumes",) and len(rel) >= 2 and rel[1] != "_meta":
                    dirnames[:] = []
                if rel[:1] == ("storage",) and len(rel) >= 3:
                    dirnames[:] = []  # a layer's or container's tree
                for name in filenames + dirnames:
                    if _TEMP.match(name):
                        found.append(str(Path(dirpath) / name))
        return found

    def run(self) -> Result:
        t0 = time.monotonic()
        before = leaks.snapshot()
        self.daemon.start()
        self.daemon.load(self.busybox_tar)
        rng = random.Random(self.seed)
        lo, hi = max(1, self.total // 10), max(2, self.total * 95 // 100)
        points = sorted(rng.sample(range(lo, hi), min(self.n_kills, hi - lo)))
        self.log(f"chaos seed {self.seed}: {self.total} operations, {self.threads} threads, kills after {points}")
        stop = threading.Event()
        killer = threading.Thread(target=self.killer, args=(points, stop), name="chaos-killer")
        workers = [threading.Thread(target=self.worker, args=(n,), name=f"chaos-{n}") for n in range(self.threads)]
        killer.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stop.set()
        killer.join()
        try:
            if not self.broken:
                self.check("at the end")
                self.finish()
        except Exception as exc:
            self.violation(f"at the end: {type(exc).__name__}: {exc}")
        finally:
            if self.broken:
                self.salvage()
            self.daemon.stop()
        self.result.leaks = self.leftovers(before)
        self.result.seconds = time.monotonic() - t0
        return self.result

    def salvage(self) -> None:
        """A run that broke (the daemon did not come back): start it again, a few times if need
        be (another engineer's half-saved file in a shared tree), to remove what it holds."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.daemon.proc is None or self.daemon.proc.poll() is not None:
                    self.daemon.start()
                self.daemon.finish()
                return
            except RuntimeError:
                time.sleep(5)

    def finish(self) -> None:
        """``rm -f`` every container (each must work), then the networks and volumes."""
        status, data = self.call("GET", "/containers/json?all=1")
        for c in json.loads(data):
            status, body = self.call("DELETE", f"/containers/{c['Id']}?force=1&v=1")
            if status not in (204, 404):
                self.violation(f"final rm -f {c['Id'][:12]} ({c['State']}): {status} {body[:200]!r}")
        for name in NET_NAMES:
            self.call("DELETE", f"/networks/{name}")
        for name in VOL_NAMES:
            self.call("DELETE", f"/volumes/{name}")

    def leftovers(self, before: leaks.Snapshot) -> list[str]:
        who = leaks.owner([self.base])
        found = leaks.leaks(before, leaks.snapshot(), who)
        deadline = time.monotonic() + 30
        while found and time.monotonic() < deadline:  # netns teardown and shim exits are asynchronous
            time.sleep(0.2)
            found = leaks.leaks(before, leaks.snapshot(), who)
        return found + self.subnet_links() + [f"temp file: {p}" for p in self.temp_files()]

    def subnet_links(self) -> list[str]:
        """Links holding an address of this run's networks (10.<octet>.<i>.0/24): ours for sure,
        even a bridge no record names (the leak check cannot tell those from another daemon's)."""
        import subprocess

        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
        prefix = f" 10.{self.subnet_octet}."
        return [f"link: {line.split()[1]} holds {line.split()[3]}" for line in out.splitlines() if prefix in line]
