"""Benchmark of the security path: the policy check and the TLS transport (needs root).

    /work/main/.venv/bin/python bench/bench_security.py [--runs 30] [--batch 300] [--decide 20000]

1. ``Policy.decide`` in process: the cost of evaluating a 6-rule policy (the README's kind)
   for typical requests (a list, a create with a body, a denied privileged create).
2. The daemon's CPU per request (utime+stime of the dockyardd process over a batch / batch
   size) for ``GET /_ping`` and ``GET /containers/json?all=1`` (10 containers) over the Unix
   socket, without and with the policy + audit log: the per-request overhead of authorization.
3. The same requests with the same client (one ``http.client`` keep-alive connection,
   sequential requests) over the Unix socket, plain TCP on loopback and TLS (``--tlsverify``,
   client certificate, TLS 1.3, keep-alive: one handshake per connection): requests/s and
   daemon CPU per request.

Each figure is the median over ``--runs`` batches with p10/p90. Daemons use the fake storage and
runtime drivers (no containers run; only the API path is measured), each in its own temp dir.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, cpu_seconds, fmt, stats  # noqa: E402

from dockyard.identity import Identity  # noqa: E402
from dockyard.testing.daemon import DaemonProcess, free_port  # noqa: E402
from dockyard_auth_tls import certs  # noqa: E402
from dockyard_auth_tls.policy import Policy  # noqa: E402
from dockyard_cli.client import UnixHTTPConnection  # noqa: E402

POLICY = '''
[[rule]]
name = "root"
uid = 0
action = "allow"

[[rule]]
name = "ci reads"
cn = ["ci"]
methods = ["GET", "HEAD"]
action = "allow"

[[rule]]
name = "ci runs unprivileged busybox"
cn = ["ci"]
routes = ["/containers/create", "/containers/{id}/start", "/containers/{id}/wait", "/containers/{id}"]
images = ["registry.local/", "busybox"]
privileged = false
binds = false
action = "allow"

[[rule]]
name = "ops group"
group = ["ops"]
action = "allow"

[[rule]]
name = "uid 1001 unprivileged"
uid = 1001
privileged = false
binds = false
images = ["registry.local/"]
action = "allow"

[[rule]]
name = "nobody else"
action = "deny"
message = "ask an admin"
'''

CREATE = {"Image": "busybox", "Cmd": ["true"], "Env": ["A=1"], "Labels": {"x": "y"},
          "HostConfig": {"NetworkMode": "none", "Binds": None, "Privileged": False}}


def bench_decide(tmp: Path, runs: int, n: int) -> None:
    path = tmp / "policy.toml"
    path.write_text(POLICY)
    policy = Policy.load(path)
    ci = Identity(name="ci", kind="tls")
    u1001 = Identity(name="uid:1001", kind="unix", uid=1001, gid=1001, groups=("u1001",))
    cases = {
        "GET /containers/json as uid:1001 (5 rules)": ("GET", "/containers/json", "/v1.44/containers/json", None, u1001),
        "POST /containers/create as CN ci, allowed (3 rules)": (
            "POST", "/containers/create", "/v1.44/containers/create", CREATE, ci),
        "POST /containers/create privileged as uid:1001, denied (6 rules)": (
            "POST", "/containers/create", "/v1.44/containers/create",
            {**CREATE, "HostConfig": {"Privileged": True}}, u1001),
    }
    print("1. Policy.decide, in process")
    for name, args in cases.items():
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            for _ in range(n):
                policy.decide(*args)
            times.append((time.perf_counter() - t) / n)
        print(f"  {name}: {fmt(times, 'µs', 1e6, 2)}")
    print("      goal: < 50 µs (0.05 ms) per request")


class Conn:
    """One keep-alive connection over unix, tcp or tls."""

    def __init__(self, kind: str, target, pki: Path | None = None) -> None:
        if kind == "unix":
            self.conn = UnixHTTPConnection(str(target), timeout=60)
        elif kind == "tcp":
            self.conn = http.client.HTTPConnection("127.0.0.1", target, timeout=60)
        else:
            assert pki is not None
            ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
            ctx.load_cert_chain(str(pki / "client" / "cert.pem"), str(pki / "client" / "key.pem"))
            self.conn = http.client.HTTPSConnection("127.0.0.1", target, timeout=60, context=ctx)

    def get(self, url: str) -> None:
        self.conn.request("GET", url)
        r = self.conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {url}: {r.status}")

    def close(self) -> None:
        self.conn.close()


def measure(plan: list, url: str, runs: int, batch: int) -> dict[str, tuple[list[float], float]]:
    """Per setup: (seconds per request as seen by the client, one value per batch; daemon CPU
    seconds per request over all its batches: the kernel counts CPU time in 10 ms ticks, too
    coarse for one batch). Batches go round-robin over the setups so that the machine's load
    (shared with other work) drifts over all of them alike."""
    for _, _, conn in plan:
        for _ in range(50):
            conn.get(url)  # warm up (and, on TLS, the handshake is behind us)
    wall: dict[str, list[float]] = {label: [] for label, _, _ in plan}
    cpu: dict[str, float] = {label: 0.0 for label, _, _ in plan}
    for _ in range(runs):
        for label, d, conn in plan:
            c0, t0 = cpu_seconds(d.proc.pid), time.perf_counter()
            for _ in range(batch):
                conn.get(url)
            wall[label].append((time.perf_counter() - t0) / batch)
            cpu[label] += cpu_seconds(d.proc.pid) - c0
    return {label: (wall[label], cpu[label] / (runs * batch)) for label in wall}


def make_containers(d: DaemonProcess, n: int) -> None:
    for i in range(n):
        conn = UnixHTTPConnection(str(d.socket), timeout=60)
        conn.request("POST", f"/containers/create?name=bench{i}", body=json.dumps(CREATE).encode(),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        conn.close()
        if r.status != 201:
            raise RuntimeError(f"create: {r.status}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--decide", type=int, default=20000)
    ap.add_argument("--containers", type=int, default=10)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-security-"))
    daemons: list[DaemonProcess] = []
    try:
        bench_decide(tmp, a.runs, a.decide)
        from dockyard.testing.images import busybox_image_tar

        tar = busybox_image_tar(tmp / "busybox.tar")
        pki = tmp / "pki"
        certs.init(pki, clients=["ci"])
        (tmp / "policy.toml").write_text(POLICY)
        (tmp / "with-policy.toml").write_text(f'[plugins.auth_tls]\npolicy = "{tmp / "policy.toml"}"\n'
                                              f'audit_log = "{tmp / "audit.log"}"\naudit_max_size = "50m"\n')
        (tmp / "policy-only.toml").write_text(f'[plugins.auth_tls]\npolicy = "{tmp / "policy.toml"}"\n')
        (tmp / "audit-only.toml").write_text(f'[plugins.auth_tls]\naudit_log = "{tmp / "audit2.log"}"\n'
                                             'audit_max_size = "50m"\n')
        fake = ["-s", "fake", "--runtime", "fake"]
        tcp_port, tls_port = free_port(), free_port()
        setups = {
            "no policy": DaemonProcess(tmp / "plain", *fake, "-H", f"tcp://127.0.0.1:{tcp_port}"),
            "policy + audit": DaemonProcess(tmp / "policy", *fake, "--config-file", str(tmp / "with-policy.toml")),
            "policy only": DaemonProcess(tmp / "ponly", *fake, "--config-file", str(tmp / "policy-only.toml")),
            "audit only": DaemonProcess(tmp / "aonly", *fake, "--config-file", str(tmp / "audit-only.toml")),
            "tls": DaemonProcess(tmp / "tls", *fake, "-H", f"tcp://127.0.0.1:{tls_port}", "--tlsverify",
                                 "--tlscacert", str(pki / "ca.pem"), "--tlscert", str(pki / "cert.pem"),
                                 "--tlskey", str(pki / "key.pem")),
        }
        for d in setups.values():
            daemons.append(d.start())
            d.load(tar)
            make_containers(d, a.containers)
        results: dict[tuple[str, str], tuple[list[float], float]] = {}
        plan = [("unix, no policy", setups["no policy"], Conn("unix", setups["no policy"].socket)),
                ("unix, policy + audit", setups["policy + audit"], Conn("unix", setups["policy + audit"].socket)),
                ("unix, policy only", setups["policy only"], Conn("unix", setups["policy only"].socket)),
                ("unix, audit only", setups["audit only"], Conn("unix", setups["audit only"].socket)),
                ("tcp (plain, loopback)", setups["no policy"], Conn("tcp", tcp_port)),
                ("unix (TLS daemon)", setups["tls"], Conn("unix", setups["tls"].socket)),
                ("tls (client cert)", setups["tls"], Conn("tls", tls_port, pki))]
        for url in ("/_ping", "/v1.44/containers/json?all=1"):
            for label, result in measure(plan, url, a.runs, a.batch).items():
                results[(url, label)] = result
        for _, _, conn in plan:
            conn.close()
        print(f"\n2./3. one keep-alive connection, sequential requests; {a.containers} containers; "
              f"batches of {a.batch}")
        for url in ("/_ping", "/v1.44/containers/json?all=1"):
            print(f"  GET {url}")
            for label, _, _ in plan:
                wall, cpu = results[(url, label)]
                rps = [1 / w for w in wall]
                print(f"    {label:24s} {stats(rps)[0]:8.0f} req/s (p10 {stats(rps)[1]:.0f}, p90 {stats(rps)[2]:.0f}, "
                      f"n={len(rps)}); daemon CPU {cpu * 1000:.3f} ms/request")
            base_cpu = results[(url, "unix, no policy")][1]
            for what in ("policy only", "audit only", "policy + audit"):
                extra = results[(url, f"unix, {what}")][1] - base_cpu
                print(f"    {what} overhead: {extra * 1000:+.3f} ms daemon CPU per request")
            for ref in ("unix (TLS daemon)", "tcp (plain, loopback)"):
                ref_rps = 1 / stats(results[(url, ref)][0])[0]
                tls_rps = 1 / stats(results[(url, "tls (client cert)")][0])[0]
                ref_cpu = results[(url, ref)][1]
                tls_cpu = results[(url, "tls (client cert)")][1]
                print(f"    TLS vs {ref}: {ref_rps / tls_rps:.2f}x the time per request "
                      f"(goal within 1.5x), {tls_cpu / ref_cpu if ref_cpu else float('nan'):.2f}x the daemon CPU")
        print(f"\n  reproduce: {command_line()}")
    finally:
        for d in daemons:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
