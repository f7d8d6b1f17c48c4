"""Shared helpers for bench_api.py and bench_containers.py (not a benchmark itself).

* :func:`engine`: a context manager that starts a private ``dockyardd`` (own data root, exec
  root, socket and cgroup parent under a temp dir), loads the busybox image, and on exit
  removes every container, stops the daemon, checks that no mount or cgroup of ours is left,
  and deletes the temp dir.
* :class:`Api`: a tiny keep-alive HTTP/1.1 client over the Unix socket (``http.client``).
* :func:`pss_kb`, :func:`cpu_seconds`, :func:`stats`: measurements and their summaries.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.images import busybox_image_tar
from dockyard_cli.client import UnixHTTPConnection

CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_ROOT = Path("/sys/fs/cgroup")


# -- measurements ------------------------------------------------------------------------

def pss_kb(pid: int) -> int:
    """Proportional set size of one process (kB), from smaps_rollup; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def pids_named(prefix: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip().startswith(prefix[:15]):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def stats(xs: list[float]) -> tuple[float, float, float]:
    """(median, p10, p90)"""
    return statistics.median(xs), pct(xs, 0.1), pct(xs, 0.9)


def fmt(xs: list[float], unit: str = "ms", scale: float = 1000.0, digits: int = 1) -> str:
    m, lo, hi = stats(xs)
    return f"{m * scale:.{digits}f} {unit} (p10 {lo * scale:.{digits}f}, p90 {hi * scale:.{digits}f}, n={len(xs)})"


def ratio(ours: float, ref: float, lower_is_better: bool = True) -> str:
    """'3.2x better' / '1.5x worse' than a reference number."""
    if ours <= 0 or ref <= 0:
        return "n/a"
    r = ref / ours if lower_is_better else ours / ref
    return f"{r:.2f}x better" if r >= 1 else f"{1 / r:.2f}x worse"


def report(name: str, value: str, refs: dict[str, str], goal: str = "") -> None:
    refs_s = "; ".join(f"{k} {v}" for k, v in refs.items())
    print(f"  {name}: {value}")
    if refs_s:
        print(f"      vs {refs_s}" + (f"; goal {goal}" if goal else ""))


def command_line() -> str:
    return shlex.join([sys.executable, *sys.argv])


# -- an HTTP client over the Unix socket -------------------------------------------------

class Api:
    """One keep-alive connection. ``call`` returns (status, body bytes)."""

    def __init__(self, socket_path: Path | str, timeout: float = 120) -> None:
        self.path, self.timeout = str(socket_path), timeout
        self.conn = UnixHTTPConnection(self.path, timeout=timeout)

    def call(self, method: str, url: str, body: Any = None) -> tuple[int, bytes]:
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (0, 1):
            try:
                self.conn.request(method, url, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = UnixHTTPConnection(self.path, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError

    def json(self, method: str, url: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 204)) -> Any:
        status, data = self.call(method, url, body)
        if status not in ok:
            raise RuntimeError(f"{method} {url}: {status} {data[:300]!r}")
        return json.loads(data) if data else None

    def close(self) -> None:
        self.conn.close()


def create_body(*cmd: str, **host_config: Any) -> dict[str, Any]:
    return {"Image": "busybox", "Cmd": list(cmd),
            "HostConfig": {"NetworkMode": "none", **host_config}}


def api_cycle(api: "Api", host_config: dict[str, Any] | None = None, **config: Any) -> float:
    """Seconds for create + start + wait + delete of a container running ``true``
    (``NetworkMode`` none unless ``host_config`` says otherwise)."""
    body = create_body("true", **(host_config or {}))
    body.update(config)
    t = time.perf_counter()
    cid = api.json("POST", "/containers/create", body)["Id"]
    api.json("POST", f"/containers/{cid}/start")
    api.json("POST", f"/containers/{cid}/wait")
    api.json("DELETE", f"/containers/{cid}")
    return time.perf_counter() - t


# -- a private daemon --------------------------------------------------------------------

class Engine:
    def __init__(self, base: Path, cgroup_parent: str) -> None:
        self.base = base
        self.cgroup_parent = cgroup_parent
        cfg = base / "dockyardd.toml"
        # our own cgroup parent, so that cleanup checks see only what this benchmark made
        cfg.write_text(f'[plugins.auto]\nparent = "{cgroup_parent}"\n')
        # A bytecode cache of our own: this environment sets PYTHONDONTWRITEBYTECODE, so without
        # it the daemon would recompile its own modules on every start (~0.1 s), which no
        # installed daemon does. The first start fills the cache; restarts measure a warm one.
        env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(base / "pycache")}
        self.daemon = DaemonProcess(base / "d", "--cgroups", "auto", "--config-file", str(cfg), env=env)
        self.socket = self.daemon.socket

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def api(self) -> Api:
        return Api(self.socket)

    def start(self) -> "Engine":
        self.daemon.start()
        return self

    def remove_all(self) -> None:
        api = self.api()
        try:
            for c in api.json("GET", "/containers/json?all=1"):
                api.call("DELETE", f"/containers/{c['Id']}?force=1")
        finally:
            api.close()

    def our_mounts(self) -> list[str]:
        return [l for l in Path("/proc/mounts").read_text().splitlines() if str(self.base) in l]

    def our_cgroups(self) -> list[str]:
        return [str(p) for p in CGROUP_ROOT.glob(f"*/{self.cgroup_parent}")] + \
               [str(p) for p in CGROUP_ROOT.glob(self.cgroup_parent)]


@contextlib.contextmanager
def engine(load_busybox: bool = True) -> Iterator[Engine]:
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    eng = Engine(tmp, f"dockyard-bench-{secrets.token_hex(4)}")
    try:
        eng.start()
        if load_busybox:
            busybox_image_tar(tmp / "busybox.tar")
            eng.daemon.load(tmp / "busybox.tar")
        yield eng
    finally:
        try:
            if eng.daemon.proc is not None and eng.daemon.proc.poll() is None:
                eng.remove_all()
        except Exception as exc:  # still stop the daemon and clean up
            print(f"warning: removing containers failed: {exc}", file=sys.stderr)
        eng.daemon.stop()
        cleanup(eng)
        shutil.rmtree(tmp, ignore_errors=True)


def engines(stack: contextlib.ExitStack, baseline_pythonpath: str,
            names: tuple[str, str] = ("baseline", "now")) -> dict[str, Engine]:
    """This tree's daemon (``names[1]``) and, with ``baseline_pythonpath``, first a second one
    running older code from there (``names[0]``), for benchmarks that interleave the two."""
    out = {}
    if baseline_pythonpath:
        os.environ["PYTHONPATH"] = baseline_pythonpath  # the daemon copies the environment
        try:
            out[names[0]] = stack.enter_context(engine())
        finally:
            del os.environ["PYTHONPATH"]
    out[names[1]] = stack.enter_context(engine())
    return out


def cleanup(eng: Engine) -> None:
    """Unmount and rmdir whatever the daemon left (it should leave nothing) and say so."""
    left = eng.our_mounts()
    for line in reversed(left):
        os.system(f"umount -l {shlex.quote(line.split()[1])}")
    cgs = eng.our_cgroups()
    for cg in cgs:
        for d in sorted(Path(cg).glob("**/"), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
    if left or cgs:
        print(f"note: cleanup removed {len(left)} mounts and {len(cgs)} cgroup dirs the daemon left behind",
              file=sys.stderr)


def wait_until(pred, timeout: float, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return False
