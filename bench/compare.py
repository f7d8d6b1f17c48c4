"""Issue 18's whole table, dockerd and Dockyard side by side in one run (driven by compare.sh).

    bench/compare.sh [--quick] [--only ROW ...] [--engines dockerd,dockyard]
                     [--baseline-pythonpath DIR] [--runs N] [-n N]

Both daemons run at the same time, each with its own roots, socket, cgroup parent and (dockerd)
bridge; every row measures the engines alternately (sample by sample where a row has many
samples), so the machine's noise hits both alike. Same busybox image in both (built offline by
dockyard.testing.images, `docker load`-ed). The docker CLI is /usr/local/bin/docker (28).

dockerd (docker.io 20.10, its own containerd) is started with --data-root/--exec-root/--pidfile/
-H unix:// under the work dir, a bridge of our own (created here, deleted at the end),
--iptables=false --ip-forward=false (the host firewall and sysctls are not touched; no row
publishes a port, so no per-container rule is missing), --cgroup-parent of our own.
Both exec roots are a private tmpfs each (as /run is in production; --exec-root-on-disk: not).
Everything it leaves (containerd + shims, mounts, cgroups, the bridge) is removed at the end by
``cleanup`` (also run by compare.sh's trap with ``--cleanup-only`` if this process dies).

``--baseline-pythonpath DIR`` adds a third engine, Dockyard on older code (DIR holds a
``dockyard`` symlink to an older core/), for before/after. Podman is not installed here: skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Api, Engine, cleanup as dockyard_cleanup, cpu_seconds, pss_kb  # noqa: E402

DOCKER = "/usr/local/bin/docker"  # the docker CLI 28 client
DOCKERD = "/usr/sbin/dockerd"
CGROUP_ROOT = Path("/sys/fs/cgroup")

# key, label, unit, lower is better, goal (op, value | None), issue's figures (dockerd, Dockyard)
ROWS: list[tuple[str, str, str, bool, tuple[str, float] | None, tuple[str, str]]] = [
    ("api_none", "API create+start+wait+delete `true`, net none", "ms", True, ("<=", 10), ("180", "20.2")),
    ("api_bridge", "API create+start+wait+delete `true`, bridge", "ms", True, ("<=", 15), ("246", "27.5")),
    ("cli_run", "`docker run --rm busybox true` (CLI 28)", "ms", True, ("<=", 35), ("283", "48.6")),
    ("concurrent", "50 concurrent starts until all running", "s", True, ("<=", 0.3), ("5.13", "0.53")),
    ("memory", "memory per running container (PSS)", "MB", True, ("keep", 0.15), ("2.93", "0.15")),
    ("idle_pss", "idle daemon PSS (dockerd: +containerd)", "MB", True, ("<=", 30), ("126", "56.9")),
    ("ping_cpu", "/_ping daemon CPU per request, 32 conns", "ms", True, ("<=", 0.016), ("0.0165", "0.060")),
    ("list_cpu", "containers/json with 50 running, CPU per request", "ms", True, ("<=", 0.15), ("2.30", "0.30")),
    ("logs_run", "106 MB stdout: run to exit", "s", True, ("keep", 0.47), ("2.12", "0.47")),
    ("logs_read", "106 MB stdout: GET logs", "s", True, ("keep", 0.12), ("3.70", "0.12")),
    ("exec", "`docker exec C true`", "ms", True, ("<=", 10), ("58.4", "20.2")),
    ("exec_i", "100 MB through `docker exec -i C cat`", "MB/s", False, (">=", 300), ("146.5", "147.9")),
    ("load", "`docker load` 222 MB / 20k files, fresh root", "s", True, ("x<=", 1.3), ("2.73", "2.83")),
    ("save", "`docker save` of it (repeated: median of runs)", "s", True, ("x<=", 1.2), ("2.29", "1.06")),
    # the first save of an image: Dockyard's layer tar cache (core/images/layercache.py) has
    # nothing yet and is filled while it streams
    ("save_first", "`docker save` of it, first save", "s", True, ("x<=", 1.2), ("", "")),
    ("thousand", "1,000 containers create+start+rm, 10 at a time", "s", True, ("<=", 8), ("", "21.7")),
]
KEYS = [r[0] for r in ROWS]
GROUPS = {  # --only names that select several rows
    "api": ["api_none", "api_bridge"], "logs": ["logs_run", "logs_read"],
    "images": ["load", "save", "save_first"],
    "lifecycle": ["api_none", "api_bridge", "cli_run", "concurrent", "thousand", "exec", "list_cpu"],
}

# results[key][engine name] = list of samples (value in the row's unit); floors[key] = tar samples
results: dict[str, dict[str, list[float]]] = {k: {} for k in KEYS}
floors: dict[str, list[float]] = {}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def add(key: str, eng: "Target", value: float) -> None:
    results[key].setdefault(eng.name, []).append(value)


# -- the engines -------------------------------------------------------------------------

class Target:
    """What the rows need of an engine."""

    name: str
    socket: Path
    base: Path

    def daemon_pids(self) -> list[int]: ...
    def shim_pids(self) -> list[int]: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...

    def api(self, timeout: float = 300) -> Api:
        return Api(self.socket, timeout=timeout)

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.base / "cli")}

    def docker(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[bytes]:
        r = subprocess.run([DOCKER, *args], env=self.env(), capture_output=True, timeout=600, **kw)
        if r.returncode != 0:
            raise RuntimeError(f"{self.name}: docker {' '.join(args)}: {r.stderr.decode()[-500:]}")
        return r

    def pss_mb(self) -> float:
        return sum(pss_kb(p) for p in self.daemon_pids()) / 1024

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.daemon_pids())

    def log_config(self) -> dict[str, Any]:
        return {"Type": "json-file", "Config": {}}

    def procs_with(self, comm: str, exact: bool = False) -> list[int]:
        """Processes whose command name or argv[0]'s base name is (starts with) ``comm`` and
        whose command line names our base directory (Dockyard's shim runs from a memfd: its
        command name is the fd number, its argv[0] the shim's path)."""
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    cmdline = (p / "cmdline").read_bytes()
                    names = ((p / "comm").read_text().strip(), os.path.basename(cmdline.split(b"\0")[0].decode()))
                    if any(n == comm[:15] if exact else n.startswith(comm) for n in names) and \
                            str(self.base).encode() in cmdline:
                        out.append(int(p.name))
                except (OSError, UnicodeDecodeError):
                    pass
        return out


class DockyardTarget(Target):
    def __init__(self, work: Path, name: str, pythonpath: str = "") -> None:
        self.name, self.pythonpath = name, pythonpath
        self.base = work / name
        self.base.mkdir(parents=True)
        self.cgroup_parent = f"dycmp-{name}-{secrets.token_hex(3)}"
        (work / f"cgroup-parent.{name}").write_text(self.cgroup_parent)
        self.eng = Engine(self.base, self.cgroup_parent)
        if pythonpath:
            self.eng.daemon.env["PYTHONPATH"] = pythonpath
        self.socket = self.eng.socket

    def start(self) -> None:
        exec_tmpfs(self.eng.daemon.exec_root)
        # once to fill the private bytecode cache (a pip-installed daemon has its .pyc files;
        # this environment sets PYTHONDONTWRITEBYTECODE), then the start that is measured
        self.eng.start()
        self.eng.daemon.stop()
        self.eng.start()

    def daemon_pids(self) -> list[int]:
        return [self.eng.pid]

    def shim_pids(self) -> list[int]:
        return self.procs_with("dockyard-shim")

    def log_config(self) -> dict[str, Any]:
        # keep all of it, like docker's json-file default (Dockyard's default keeps ~30 MB);
        # --dockyard-log-driver local: the issue's own figures were taken with it
        return {"Type": DOCKYARD_LOG_DRIVER, "Config": {"max-size": "0"}}

    def stop(self) -> None:
        try:
            if self.eng.daemon.proc is not None and self.eng.daemon.proc.poll() is None:
                self.eng.daemon.finish()
        except Exception as exc:
            log(f"{self.name}: removing containers failed: {exc}")
        self.eng.daemon.stop()
        dockyard_cleanup(self.eng)


EXEC_TMPFS = True  # --exec-root-on-disk turns it off
DOCKYARD_LOG_DRIVER = "json-file"  # --dockyard-log-driver


def exec_tmpfs(path: Path) -> None:
    """A private tmpfs for a daemon's exec root, as /run is in production (/run/docker,
    /run/dockyard): state files there are not on the data root's disk. Unmounted by cleanup."""
    path.mkdir(parents=True, exist_ok=True)
    if EXEC_TMPFS:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711,size=256m", "dycmp-exec", str(path)], check=True)


def free_subnet() -> str:
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    for _ in range(200):
        a, b = 10, 100 + secrets.randbelow(150)
        c = secrets.randbelow(250)
        if f"{a}.{b}.{c}." not in used and f"{a}.{b}.0.0/16" not in used:
            return f"{a}.{b}.{c}"
    raise RuntimeError("no free 10.x subnet")


class DockerdTarget(Target):
    def __init__(self, work: Path) -> None:
        self.name = "dockerd"
        self.base = work / "dockerd"
        self.base.mkdir(parents=True)
        self.socket = self.base / "docker.sock"
        self.bridge = f"dyc{secrets.token_hex(3)}"  # <= 15 chars
        self.cgroup_parent = f"dycmp-dockerd-{secrets.token_hex(3)}"
        (work / "bridge").write_text(self.bridge)
        (work / "cgroup-parent.dockerd").write_text(self.cgroup_parent)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        net = free_subnet()
        subprocess.run(["ip", "link", "add", self.bridge, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{net}.1/24", "dev", self.bridge], check=True)
        subprocess.run(["ip", "link", "set", self.bridge, "up"], check=True)
        (self.base / "daemon.json").write_text("{}")
        exec_tmpfs(self.base / "exec")
        cmd = [DOCKERD, "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
               "--pidfile", str(self.base / "dockerd.pid"), "-H", f"unix://{self.socket}",
               "--config-file", str(self.base / "daemon.json"), "--bridge", self.bridge,
               "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false",
               "--cgroup-parent", self.cgroup_parent, "--storage-driver", "overlay2",
               "--log-level", "warn"]
        logf = open(self.base / "dockerd.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, start_new_session=True)
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited: {(self.base / 'dockerd.log').read_text()[-3000:]}")
            try:
                a = self.api(timeout=2)
                st, _ = a.call("GET", "/_ping")
                a.close()
                if st == 200 and self.containerd_pid():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("dockerd did not answer in 60 s")

    def containerd_pid(self) -> int | None:
        pids = self.procs_with("containerd", exact=True)
        return pids[0] if pids else None

    def daemon_pids(self) -> list[int]:
        assert self.proc is not None
        c = self.containerd_pid()
        return [self.proc.pid] + ([c] if c else [])

    def shim_pids(self) -> list[int]:
        return self.procs_with("containerd-shim-runc-v2")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                a = self.api(timeout=60)
                for c in a.json("GET", "/containers/json?all=1"):
                    a.call("DELETE", f"/containers/{c['Id']}?force=1")
                a.close()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def cleanup(work: Path) -> None:
    """Remove everything the daemons under ``work`` may have left: processes whose command line
    names ``work`` (daemons, containerd, shims), processes in our cgroups, mounts, cgroup
    directories, dockerd's bridge. Safe to run twice."""
    work = work.resolve()
    mine = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            with contextlib.suppress(OSError):
                if str(work).encode() in (p / "cmdline").read_bytes():
                    mine.append(int(p.name))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in mine:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        if mine and sig == signal.SIGTERM:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in mine):
                time.sleep(0.1)
    parents = [f.read_text().strip() for f in work.glob("cgroup-parent.*")]
    for parent in parents:
        for procs in CGROUP_ROOT.glob(f"*/{parent}/**/cgroup.procs"):
            with contextlib.suppress(OSError):
                for pid in procs.read_text().split():
                    os.kill(int(pid), signal.SIGKILL)
    for line in reversed(Path("/proc/self/mountinfo").read_text().splitlines()):
        mp = line.split()[4]
        if mp.startswith(str(work) + "/"):
            subprocess.run(["umount", "-l", mp], capture_output=True)
    for parent in parents:
        for top in CGROUP_ROOT.glob(f"*/{parent}"):
            for d in sorted(top.glob("**/"), key=lambda p: -len(p.parts)):
                for _ in range(20):
                    try:
                        d.rmdir()
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.05)
    bridge = work / "bridge"
    if bridge.exists():
        subprocess.run(["ip", "link", "del", bridge.read_text().strip()], capture_output=True)
        # docker's veth host ends go with their containers; the bridge is ours alone


# -- rows --------------------------------------------------------------------------------

def body(*cmd: str, net: str = "none", **host: Any) -> dict[str, Any]:
    return {"Image": "busybox", "Cmd": list(cmd), "HostConfig": {"NetworkMode": net, **host}}


def api_cycle(api: Api, net: str) -> float:
    t = time.perf_counter()
    cid = api.json("POST", "/containers/create", body("true", net=net))["Id"]
    api.json("POST", f"/containers/{cid}/start")
    res = api.json("POST", f"/containers/{cid}/wait")
    api.json("DELETE", f"/containers/{cid}")
    dt = time.perf_counter() - t
    assert res["StatusCode"] == 0, res
    return dt


def row_api(engines: list[Target], n: int) -> None:
    apis = {e.name: e.api() for e in engines}
    for net, key in (("none", "api_none"), ("bridge", "api_bridge")):
        if key not in SELECTED:
            continue
        log(f"{key}: {n} cycles per engine, interleaved")
        for i in range(n + 3):
            for e in engines:
                dt = api_cycle(apis[e.name], net)
                if i >= 3:
                    add(key, e, dt * 1000)
    for a in apis.values():
        a.close()


def row_cli(engines: list[Target], n: int) -> None:
    log(f"cli_run: {n} runs per engine, interleaved")
    for i in range(n + 2):
        for e in engines:
            t = time.perf_counter()
            e.docker("run", "--rm", "busybox", "true")
            if i >= 2:
                add("cli_run", e, (time.perf_counter() - t) * 1000)


def running(api: Api) -> int:
    return sum(c["State"] == "running" for c in api.json("GET", "/containers/json?all=1"))


def remove_all(e: Target, ids: list[str]) -> None:
    def rm(cid: str) -> None:
        a = e.api()
        a.call("DELETE", f"/containers/{cid}?force=1")
        a.close()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(rm, ids))


def concurrent_once(e: Target, count: int, run: int, list_n: int) -> None:
    api = e.api()
    time.sleep(0.5)
    pss0 = e.pss_mb()
    ids = [api.json("POST", "/containers/create", body("sleep", "600"))["Id"] for _ in range(count)]
    conns = [e.api() for _ in range(count)]
    t0: list[float] = []
    barrier = threading.Barrier(count, action=lambda: t0.append(time.perf_counter()))

    def start(i: int) -> None:
        barrier.wait()
        conns[i].json("POST", f"/containers/{ids[i]}/start")

    with ThreadPoolExecutor(count) as pool:
        for f in [pool.submit(start, i) for i in range(count)]:
            f.result()
        while running(api) < count:
            time.sleep(0.002)
        add("concurrent", e, time.perf_counter() - t0[0])
    for c in conns:
        c.close()
    if "memory" in SELECTED:
        time.sleep(1.0)
        shims = e.shim_pids()
        if len(shims) != count:
            log(f"{e.name}: {len(shims)} shims for {count} containers")
        shim_mb = sum(pss_kb(p) for p in shims) / 1024
        add("memory", e, (shim_mb + max(e.pss_mb() - pss0, 0)) / count)
    if "list_cpu" in SELECTED and run == 0:
        for _ in range(20):
            api.call("GET", "/containers/json?all=1")
        for _ in range(3):
            c0 = e.cpu()
            for _ in range(list_n):
                st, _ = api.call("GET", "/containers/json?all=1")
                assert st == 200
            add("list_cpu", e, (e.cpu() - c0) / list_n * 1000)
    remove_all(e, ids)
    api.close()


def row_concurrent(engines: list[Target], count: int, runs: int, list_n: int) -> None:
    log(f"concurrent/memory/list_cpu: {count} containers, {runs} runs per engine")
    for run in range(runs):
        for e in engines:
            concurrent_once(e, count, run, list_n)


def build_unixload(work: Path) -> Path:
    exe = work / "unixload"
    if not exe.exists():
        subprocess.run(["cc", "-O2", "-o", str(exe), str(Path(__file__).with_name("unixload.c"))], check=True)
    return exe


def row_ping(engines: list[Target], work: Path, seconds: float, runs: int) -> None:
    log(f"ping_cpu: 32 connections, {seconds:g} s x {runs} per engine")
    exe = build_unixload(work)
    for e in engines:  # warm-up
        subprocess.run([str(exe), str(e.socket), "/_ping", "32", "0.5"], capture_output=True, check=True)
    for _ in range(runs):
        for e in engines:
            c0 = e.cpu()
            out = subprocess.run([str(exe), str(e.socket), "/_ping", "32", str(seconds)],
                                 capture_output=True, text=True, check=True).stdout
            r = {k: float(v) for k, v in (kv.split("=") for kv in out.split())}
            add("ping_cpu", e, (e.cpu() - c0) / max(r["responses"], 1) * 1000)


def read_logs(e: Target, cid: str) -> int:
    from dockyard_cli.client import UnixHTTPConnection
    import struct

    conn = UnixHTTPConnection(str(e.socket), timeout=300)
    conn.request("GET", f"/containers/{cid}/logs?stdout=1")
    r = conn.getresponse()
    assert r.status == 200, r.status
    buf, payload = bytearray(), 0
    while True:
        chunk = r.read1(1 << 20)
        if not chunk:
            break
        buf += chunk
        pos = 0
        while len(buf) - pos >= 8:
            _, size = struct.unpack_from(">BxxxI", buf, pos)
            if len(buf) - pos - 8 < size:
                break
            payload += size
            pos += 8 + size
        del buf[:pos]
    conn.close()
    return payload


def row_logs(engines: list[Target], mb: int, runs: int) -> None:
    log(f"logs: {mb} MB, {runs} runs per engine")
    for _ in range(runs):
        for e in engines:
            api = e.api()
            cid = api.json("POST", "/containers/create",
                           body("dd", "if=/dev/zero", "bs=1M", f"count={mb}", LogConfig=e.log_config()))["Id"]
            t = time.perf_counter()
            api.json("POST", f"/containers/{cid}/start")
            res = api.json("POST", f"/containers/{cid}/wait")
            add("logs_run", e, time.perf_counter() - t)
            assert res["StatusCode"] == 0, res
            t = time.perf_counter()
            got = read_logs(e, cid)
            add("logs_read", e, time.perf_counter() - t)
            assert got == mb << 20, (e.name, got)
            api.json("DELETE", f"/containers/{cid}")
            api.close()


def row_exec(engines: list[Target], work: Path, n: int, mb: int, runs: int) -> None:
    cids = {}
    for e in engines:
        api = e.api()
        cids[e.name] = api.json("POST", "/containers/create", body("sleep", "600"))["Id"]
        api.json("POST", f"/containers/{cids[e.name]}/start")
        api.close()
    if "exec" in SELECTED:
        log(f"exec: {n} runs per engine, interleaved")
        for i in range(n + 2):
            for e in engines:
                t = time.perf_counter()
                e.docker("exec", cids[e.name], "true")
                if i >= 2:
                    add("exec", e, (time.perf_counter() - t) * 1000)
    if "exec_i" in SELECTED:
        log(f"exec_i: {mb} MB x {runs} per engine")
        size = mb * 1000 * 1000
        data = work / "exec-input"
        with open(data, "wb") as f:
            block = os.urandom(1 << 20)
            left = size
            while left:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))
        for _ in range(runs):
            for e in engines:
                with open(data, "rb") as f:
                    t = time.perf_counter()
                    p = subprocess.Popen([DOCKER, "exec", "-i", cids[e.name], "cat"], env=e.env(), stdin=f,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
                    watchdog = threading.Timer(300, p.kill)  # a stream that never ends fails the row
                    watchdog.start()
                    got = 0
                    assert p.stdout is not None
                    while chunk := p.stdout.read1(1 << 20):
                        got += len(chunk)
                    p.wait()
                    watchdog.cancel()
                    dt = time.perf_counter() - t
                assert p.returncode == 0 and got == size, (e.name, p.returncode, got)
                add("exec_i", e, size / dt / 1e6)
        data.unlink()
    for e in engines:
        remove_all(e, [cids[e.name]])


def row_images(engines: list[Target], work: Path, big_mb: int, small: int, runs: int) -> None:
    from bench_images import build_image

    log(f"images: building a {big_mb} MB + {small} files image")
    img_dir = work / "image"
    img_dir.mkdir()
    image, layers = build_image(img_dir, big_mb, small)
    for e in engines:  # one load per engine: its root is fresh (nothing was extracted in it yet)
        subprocess.run(["sync"])
        t = time.perf_counter()
        e.docker("load", "-q", "-i", str(image))
        add("load", e, time.perf_counter() - t)
    for i in range(runs):  # the floor: tar -x into fresh directories
        dest = work / f"floor{i}"
        dest.mkdir()
        subprocess.run(["sync"])
        t = time.perf_counter()
        for layer in layers:
            subprocess.run(["tar", "-x", "-f", str(layer), "-C", str(dest)], check=True)
        subprocess.run(["sync", "-f", str(dest)], check=True)
        floors.setdefault("load", []).append(time.perf_counter() - t)
    if SELECTED & {"save", "save_first"}:
        for i in range(runs):
            for e in engines:
                out = work / "saved.tar"
                subprocess.run(["sync"])
                t = time.perf_counter()
                e.docker("save", "-o", str(out), "bench:latest")
                if i == 0:
                    add("save_first", e, time.perf_counter() - t)
                if i > 0 or runs == 1:
                    add("save", e, time.perf_counter() - t)
                out.unlink()
            subprocess.run(["sync"])
            t = time.perf_counter()
            subprocess.run(["tar", "-c", "-f", str(work / "floor.tar"), "-C", str(work / "floor0"), "."], check=True)
            floors.setdefault("save", []).append(time.perf_counter() - t)
            floors["save_first"] = floors["save"]
            (work / "floor.tar").unlink()
    for e in engines:
        with contextlib.suppress(RuntimeError):
            e.docker("rmi", "bench:latest")
    for i in range(runs):
        shutil.rmtree(work / f"floor{i}", ignore_errors=True)
    shutil.rmtree(img_dir, ignore_errors=True)


def row_thousand(engines: list[Target], total: int, par: int) -> None:
    log(f"thousand: {total} containers, {par} at a time, per engine")
    for e in engines:
        per = [total // par + (i < total % par) for i in range(par)]

        def worker(k: int, e: Target = e) -> None:
            a = e.api()
            for _ in range(k):
                cid = a.json("POST", "/containers/create", body("true"))["Id"]
                a.json("POST", f"/containers/{cid}/start")
                a.json("DELETE", f"/containers/{cid}?force=1")
            a.close()

        t = time.perf_counter()
        with ThreadPoolExecutor(par) as pool:
            for f in [pool.submit(worker, k) for k in per]:
                f.result()
        add("thousand", e, (time.perf_counter() - t) * 1000 / total)  # scaled to 1,000 below


# -- the table ---------------------------------------------------------------------------

def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("ms",):
        return f"{v:.4f}" if v < 0.1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if unit == "MB/s":
        return f"{v:.0f}"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(engines: list[Target], args: argparse.Namespace) -> None:
    names = [e.name for e in engines]
    ours = [n for n in names if n != "dockerd"]
    head = ["measure", "unit", *names]
    head += [f"ratio dockerd/{n}" for n in ours if "dockerd" in names]
    head += ["goal", *[f"met ({n})" for n in ours], "issue: dockerd / Dockyard", "n"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for key, label, unit, lower, goal, issue in ROWS:
        if key not in SELECTED or not results[key]:
            continue
        med = {n: statistics.median(results[key][n]) for n in names if results[key].get(n)}
        if key == "thousand":
            pass  # samples are ms per container: x 1,000 containers / 1,000 ms = s per 1,000
            label += f" (ran {args.thousand}, scaled to 1,000)" if args.thousand != 1000 else ""
        cells = [label, unit, *[fmt(med.get(n), unit) for n in names]]
        if "dockerd" in names:
            for n in ours:
                if n in med and "dockerd" in med and med[n] > 0:
                    r = med["dockerd"] / med[n] if lower else med[n] / med["dockerd"]
                    cells.append(f"{r:.2f}x")
                else:
                    cells.append("-")
        gtext, limit = "-", None  # limit: (op, value) a median is checked against
        if goal:
            op, gv = goal
            if op == "x<=":
                fl = statistics.median(floors[key]) if floors.get(key) else None
                tar = "tar -x" if key == "load" else "tar -c"
                gtext = f"<= {gv}x {tar} ({fl:.2f} s here)" if fl else f"<= {gv}x {tar}"
                limit = ("<=", gv * fl) if fl else None
            elif op == "keep":
                gtext = f"keep ({gv:g} {unit} in the issue)"
                limit = ("<=", gv * 1.25)  # within the noise of the issue's figure
            elif op == "<=":
                gtext, limit = f"<= {gv:g} {unit}", ("<=", gv)
            else:
                gtext, limit = f">= {gv:g} {unit}", (">=", gv)
        cells.append(gtext)
        for n in ours:
            if limit is None or n not in med:
                cells.append("-")
            else:
                ok = med[n] <= limit[1] if limit[0] == "<=" else med[n] >= limit[1]
                cells.append("met" if ok else "NOT met")
        cells.append(" / ".join(issue))
        cells.append(str(min(len(v) for v in results[key].values())))
        print("| " + " | ".join(cells) + " |")
    if floors:
        print("\nfloors: " + ", ".join(f"{'tar -x' if k == 'load' else 'tar -c'} {statistics.median(v):.2f} s"
                                       for k, v in floors.items() if k != "save_first"))
    print("ratio: dockerd's median / ours for times and memory, ours / dockerd's for MB/s (> 1: ours is better)")


SELECTED: set[str] = set(KEYS)


def main() -> int:
    global SELECTED
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cleanup-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="a short pass: few samples, small sizes")
    ap.add_argument("--tiny", action="store_true",
                    help="the smallest pass that still fills every row (the CI smoke test): no timing means anything")
    ap.add_argument("--only", nargs="+", default=[], help=f"rows: {', '.join(KEYS)}; groups: {', '.join(GROUPS)}")
    ap.add_argument("--engines", default="dockerd,dockyard", help="dockerd and/or dockyard (comma-separated)")
    ap.add_argument("--baseline-pythonpath", default="", help="also a Dockyard on older code (engine 'base')")
    ap.add_argument("-n", type=int, help="samples of the per-operation rows (api, cli, exec)")
    ap.add_argument("--runs", type=int, help="repetitions of the heavy rows")
    ap.add_argument("--thousand", type=int, help="containers of the 1,000 row")
    ap.add_argument("--exec-root-on-disk", action="store_true",
                    help="exec roots on the work dir's disk instead of a tmpfs each (/run is a tmpfs in production)")
    ap.add_argument("--dockyard-log-driver", default="json-file", choices=("json-file", "local"),
                    help="Dockyard's driver in the logs rows (dockerd: json-file)")
    args = ap.parse_args()
    work = Path(args.workdir).resolve()
    if args.cleanup_only:
        cleanup(work)
        return 0
    sel: set[str] = set()
    for o in args.only:
        for x in o.split(","):
            if x in GROUPS:
                sel.update(GROUPS[x])
            elif x in KEYS:
                sel.add(x)
            else:
                ap.error(f"unknown row {x!r}")
    SELECTED = sel or set(KEYS)
    global EXEC_TMPFS, DOCKYARD_LOG_DRIVER
    EXEC_TMPFS = not args.exec_root_on_disk
    DOCKYARD_LOG_DRIVER = args.dockyard_log_driver
    q = args.quick or args.tiny
    n = args.n or (2 if args.tiny else 8 if q else 30)
    runs = args.runs or (1 if q else 3)
    args.thousand = args.thousand or (20 if args.tiny else 100 if q else 1000)
    log_mb = 2 if args.tiny else 20 if q else 106
    exec_mb = 2 if args.tiny else 20 if q else 100
    big_mb, small = (2, 200) if args.tiny else (20, 2000) if q else (200, 20000)
    concurrent = 10 if args.tiny else 50

    wanted = [x.strip() for x in args.engines.split(",") if x.strip()]
    engines: list[Target] = []
    if "dockerd" in wanted:
        if shutil.which(DOCKERD) is None:
            log("dockerd not installed: its column is skipped")
        else:
            engines.append(DockerdTarget(work))
    if args.baseline_pythonpath:
        engines.append(DockyardTarget(work, "base", args.baseline_pythonpath))
    if "dockyard" in wanted:
        engines.append(DockyardTarget(work, "dockyard"))
    if shutil.which("podman") is None:
        log("podman not installed: skipped")
    started: list[Target] = []
    try:
        from dockyard.testing.images import busybox_image_tar

        for e in engines:
            log(f"starting {e.name}")
            e.start()
            started.append(e)
        if "idle_pss" in SELECTED:
            time.sleep(6.0)  # idle: past the start-up work and the janitor's first trim (api/janitor.py)
            for e in engines:
                add("idle_pss", e, e.pss_mb())
        tar = busybox_image_tar(work / "busybox.tar")
        for e in engines:
            e.docker("load", "-q", "-i", str(tar))
        if SELECTED & {"load", "save", "save_first"}:
            row_images(engines, work, big_mb, small, runs)
        if SELECTED & {"api_none", "api_bridge"}:
            row_api(engines, n)
        if "cli_run" in SELECTED:
            row_cli(engines, n)
        if SELECTED & {"concurrent", "memory", "list_cpu"}:
            row_concurrent(engines, concurrent, runs, 20 if args.tiny else 200 if q else 1000)
        if "ping_cpu" in SELECTED:
            row_ping(engines, work, 0.3 if args.tiny else 1.0 if q else 5.0, runs if q else 2)
        if SELECTED & {"logs_run", "logs_read"}:
            row_logs(engines, log_mb, runs)
        if SELECTED & {"exec", "exec_i"}:
            row_exec(engines, work, n, exec_mb, runs)
        if "thousand" in SELECTED:
            row_thousand(engines, args.thousand, 10)
    finally:
        for e in reversed(started):
            log(f"stopping {e.name}")
            try:
                e.stop()
            except Exception as exc:
                log(f"stopping {e.name}: {exc}")
        cleanup(work)
    print(f"# {' '.join(sys.argv)}  (load average at the end: {os.getloadavg()[0]:.1f})")
    if q:
        print(f"# --{'tiny' if args.tiny else 'quick'}: few samples and small sizes (logs/exec -i {log_mb} MB, "
              f"image {big_mb} MB + {small} files, {concurrent} concurrent): not comparable with the issue's figures")
    table(engines, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
