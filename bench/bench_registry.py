"""Benchmark: push and pull of a multi-layer image between dockyardd and a loopback registry
(Debian's ``docker-registry``), side by side with ``skopeo copy`` doing the same transfer.

* dockyard push: ``POST /images/{name}/push`` of a loaded image to an empty registry (layers
  exported from the storage driver, gzipped, uploaded, manifest PUT).
* dockyard pull: ``POST /images/create`` after ``rmi`` (no layer stored: everything is
  downloaded, verified, unpacked into the storage driver).
* skopeo push: ``skopeo copy docker-archive:<docker save of that image> docker://...`` to an
  empty registry (skopeo gzips too).
* skopeo pull: ``skopeo copy docker://... dir:<dir>`` (download and verify the blobs as they are,
  no decompression, no unpacking: skopeo has no layer store, so it does less than a pull).
* tar floor: ``tar -xzf`` of the same 5 gzip blobs (from skopeo's ``dir:``), one after the
  other into one fresh directory: the cost of unpacking alone, with C tools. dockerd is not
  installed here; its pull (parallel downloads, layers unpacked one after the other) is stood in
  for by skopeo's pull plus this sequential tar, run by run.

Every run uses a fresh registry, so nothing is found already there. The image has ``--layers``
layers of ``--mb`` MB in all: half random bytes (incompressible), half a tree of small text files.

    /work/main/.venv/bin/python bench/bench_registry.py [--runs 30] [--mb 40] [--layers 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import Api, command_line, engine, fmt, ratio, stats  # noqa: E402

from dockyard.testing.images import EPOCH, image_config, image_tar  # noqa: E402
from dockyard.testing.registry import LocalRegistry  # noqa: E402


def _info(name: str, kind: bytes, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.mtime = kind, 0o755 if kind == tarfile.DIRTYPE else 0o644, size, EPOCH
    return info


def layer_tar(index: int, size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(f"l{index}", tarfile.DIRTYPE))
        rnd = os.urandom(size // 2)
        tar.addfile(_info(f"l{index}/random.bin", tarfile.REGTYPE, len(rnd)), io.BytesIO(rnd))
        text = (f"layer {index} line of text that compresses well\n" * 100).encode()
        for i in range(max(1, (size // 2) // len(text))):
            tar.addfile(_info(f"l{index}/t{i:05d}.txt", tarfile.REGTYPE, len(text)), io.BytesIO(text))
    return buf.getvalue()


def build_image(path: Path, total_mb: int, layers: int) -> Path:
    per = total_mb * 1024 * 1024 // layers
    tars = [layer_tar(i, per) for i in range(layers)]
    config = image_config(tars, cmd=["sh"])
    return image_tar(path, [(config, tars, ["bench/registry:latest"])])


def stream_ok(api: Api, method: str, url: str, headers: dict[str, str] | None = None) -> None:
    """A progress stream to its end; an ``error`` line or an HTTP error fails the benchmark."""
    api.conn.request(method, url, headers={"X-Registry-Auth": "e30=", **(headers or {})})
    r = api.conn.getresponse()
    body = r.read()
    if os.environ.get("BENCH_DEBUG"):
        print(body.decode()[-1500:])
    if r.status != 200 or b'"error"' in body:
        raise RuntimeError(f"{method} {url}: {r.status} {body[-500:]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--mb", type=int, default=40)
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--no-push", action="store_true", help="measure pulls only (the push still seeds the registry)")
    args = ap.parse_args()
    if not shutil.which("docker-registry") or not shutil.which("skopeo"):
        sys.exit("needs docker-registry and skopeo (apt-get install docker-registry skopeo)")
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-registry-"))
    results: dict[str, list[float]] = {k: [] for k in ("dockyard push", "dockyard pull", "skopeo push", "skopeo pull",
                                                        "tar -xzf floor")}
    try:
        image = build_image(work / "image.tar", args.mb, args.layers)
        print(f"image: {args.layers} layers, {image.stat().st_size / 1e6:.1f} MB uncompressed; {args.runs} runs")
        with engine(load_busybox=False) as eng:
            eng.daemon.load(image)
            api = eng.api()
            saved = work / "saved.tar"
            status, data = api.call("GET", "/images/bench/registry:latest/get")
            assert status == 200, data[:200]
            saved.write_bytes(data)
            for run in range(args.runs):
                with LocalRegistry(work / f"reg-{run}") as reg, LocalRegistry(work / f"peer-{run}") as peer:
                    name = f"{reg.host}/bench/registry"
                    api.json("POST", f"/images/bench/registry:latest/tag?repo={name}&tag=v1", ok=(201,))
                    t = time.perf_counter()
                    stream_ok(api, "POST", f"/images/{name}/push?tag=v1")
                    results["dockyard push"].append(time.perf_counter() - t)
                    image_id = api.json("GET", f"/images/{name}:v1/json")["Id"]
                    api.json("DELETE", f"/images/{image_id}?force=1")  # no layer left: a full pull
                    t = time.perf_counter()
                    stream_ok(api, "POST", f"/images/create?fromImage={name}&tag=v1")
                    results["dockyard pull"].append(time.perf_counter() - t)
                    api.json("POST", f"/images/{name}:v1/tag?repo=bench/registry&tag=latest", ok=(201,))
                    api.json("DELETE", f"/images/{name}:v1")
                    t = time.perf_counter()
                    subprocess.run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"docker-archive:{saved}",
                                    f"docker://{peer.host}/bench/registry:v1"], check=True, capture_output=True)
                    results["skopeo push"].append(time.perf_counter() - t)
                    out = work / "pulled"
                    t = time.perf_counter()
                    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false",
                                    f"docker://{peer.host}/bench/registry:v1", f"dir:{out}"],
                                   check=True, capture_output=True)
                    results["skopeo pull"].append(time.perf_counter() - t)
                    manifest = json.loads((out / "manifest.json").read_bytes())
                    blobs = [out / d["digest"].split(":")[1] for d in manifest["layers"]]
                    unpacked = work / "unpacked"
                    unpacked.mkdir()
                    t = time.perf_counter()
                    for blob in blobs:
                        subprocess.run(["tar", "-xzf", str(blob), "-C", str(unpacked)], check=True)
                    results["tar -xzf floor"].append(time.perf_counter() - t)
                    shutil.rmtree(unpacked)
                    shutil.rmtree(out)
                shutil.rmtree(work / f"reg-{run}", ignore_errors=True)
                shutil.rmtree(work / f"peer-{run}", ignore_errors=True)
            api.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{command_line()}")
    if args.no_push:
        results = {k: v for k, v in results.items() if not k.endswith("push")}
    for key, xs in results.items():
        print(f"  {key}: {fmt(xs, 's', 1.0, 3)}")
    for op in ("pull",) if args.no_push else ("push", "pull"):
        ours, peer_ = stats(results[f"dockyard {op}"])[0], stats(results[f"skopeo {op}"])[0]
        print(f"  {op}: dockyard vs skopeo copy: {ratio(ours, peer_)}")
    print(f"  pull: dockyard vs tar -xzf floor: {ratio(stats(results['dockyard pull'])[0], stats(results['tar -xzf floor'])[0])}")
    # dockerd's pull downloads in parallel but unpacks the layers one after the other: the
    # stand-in is skopeo's download plus the sequential tar, run by run
    stand_in = [a + b for a, b in zip(results["skopeo pull"], results["tar -xzf floor"])]
    print(f"  pull: skopeo download + sequential tar -xzf (dockerd stand-in): {fmt(stand_in, 's', 1.0, 3)}")
    print(f"  pull: dockyard vs that stand-in: {ratio(stats(results['dockyard pull'])[0], stats(stand_in)[0])}")
    print(json.dumps({k: round(stats(v)[0], 3) for k, v in results.items()}))
    print("raw " + json.dumps({k: [round(x, 3) for x in v] for k, v in results.items()}))


if __name__ == "__main__":
    main()
