#!/usr/bin/env python3
"""A fuzz run generated from Docker's own v1.44 spec (schemathesis) against a private dockyardd
on 127.0.0.1: counts requests, server errors (5xx) and responses that do not conform to the
spec's response schemas.

    .venv/bin/python bench/fuzz_spec.py [--max-examples 50] [--max-time 600] [--pythonpath DIR]

Never touches a registry, swarm, plugins or build, and never *runs* a container: those
operations are excluded (pull/push/search/login, swarm objects, plugins, build/session, start/
restart/unpause/attach/wait/exec start, events, archive upload), and so is network create/connect
(a generated subnet would be routed on this host); their bodies are covered by the model's unit
tests. Requests under /containers/{id}/ and /images/{name}/ go to a container (``fuzz1``) and an
image (busybox) that exist, so that bodies and query values reach the handlers instead of a 404;
container rm, rename and prune are left out so that the container stays. ``--pythonpath DIR`` runs the daemon from another checkout (a ``dockyard`` package in DIR),
e.g. a git worktree of an older commit, to compare.

Prints the figures as JSON at the end; the exit status is 1 when a 5xx or a schema violation was
seen. A ``null`` where the spec says array/object/integer is counted apart (``nulls``): Go
decodes null into any field (a nil slice, map or pointer), and dockerd sends those same nulls
(prune answers, Volume.Options, IPAM.Options, GenericResources, an unset MemorySwappiness).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dockyard.testing.daemon import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "fuzz" / "docker-engine-api-v1.44.yaml"

EXCLUDE_PATHS = (
    r"^/(swarm|nodes|services|tasks|secrets|configs|plugins|distribution|session|auth|build|events)"
    r"|^/images/(create|search|\{name\}/push)$"
    r"|^/containers/\{id\}/(start|restart|unpause|attach|attach/ws|wait)$"
    r"|^/exec/\{id\}/start$"
    r"|^/networks/(create|\{id\}/connect)$"
    # these would rename or remove the container the requests below are aimed at (schemathesis
    # reuses ids it saw in answers)
    r"|^/containers/prune$|^/containers/\{id\}$|^/containers/\{id\}/rename$"
)
EXCLUDE_METHODS = ["PUT"]  # the only PUT: /containers/{id}/archive (an upload into a container)

# Requests on an existing container and image (not random ids that all answer 404), so that their
# bodies and query values reach the handlers.
CONFIG = """
[[operations]]
include-path-regex = "^/containers/\\\\{id\\\\}/"
parameters = { "path.id" = "fuzz1" }

[[operations]]
include-path-regex = "^/images/\\\\{name\\\\}/"
parameters = { "path.name" = "busybox" }
"""

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def start_daemon(base: Path, pythonpath: str | None) -> tuple[DaemonProcess, int]:
    port = free_port()
    env = {"PYTHONPATH": pythonpath} if pythonpath else None
    d = DaemonProcess(base / "daemon", "-H", f"tcp://127.0.0.1:{port}", env=env)
    d.start()
    from dockyard.testing.images import busybox_image_tar

    d.load(busybox_image_tar(base / "busybox.tar"))
    # a few objects, so that some generated requests find something
    for args in (("create", "--name", "fuzz1", "busybox", "true"), ("volume", "create", "fuzzvol")):
        d.docker(*args)
    return d, port


def run(max_examples: int, max_time: int, pythonpath: str | None, seed: int | None, workers: int,
        keep: Path | None = None, phases: str = "examples,coverage,fuzzing", mode: str = "all",
        exclude_regex: str | None = None) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="dockyard-fuzz-"))
    d, port = start_daemon(base, pythonpath)
    report = base / "report.ndjson"
    config = base / "schemathesis.toml"
    config.write_text(CONFIG)
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run", str(SPEC),
        "--url", f"http://127.0.0.1:{port}/v1.44",
        "--checks", CHECKS, "--max-examples", str(max_examples), "--max-time", str(max_time),
        "--phases", phases, "--mode", mode, "--workers", str(workers),
        "--exclude-path-regex", EXCLUDE_PATHS + (f"|{exclude_regex}" if exclude_regex else ""),
        "--request-timeout", "30",
        "--continue-on-failure", "--no-shrink", "--suppress-health-check", "all",
        "--report", "ndjson", "--report-ndjson-path", str(report), "--warnings", "off",
    ]
    for method in EXCLUDE_METHODS:
        cmd += ["--exclude-method", method]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=max_time + 600,
                             env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    finally:
        d.finish()
    elapsed = time.monotonic() - t0
    figures = summarize(report)
    figures["seconds"] = round(elapsed, 1)
    figures["schemathesis_exit"] = out.returncode
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(report, keep / "report.ndjson")
        (keep / "stdout.txt").write_text(out.stdout + out.stderr)
        (keep / "daemon.log").write_text(d.log())
    shutil.rmtree(base, ignore_errors=True)
    return figures


def summarize(report: Path) -> dict[str, Any]:
    """Requests, 5xx and schema violations from schemathesis' ndjson event stream (each finished
    scenario records its cases' interactions and check results)."""
    requests = 0
    by_status: dict[str, int] = {}
    errors_5xx: dict[str, int] = {}
    violations: dict[str, int] = {}
    nulls: dict[str, int] = {}
    other_failures: dict[str, int] = {}
    if report.exists():
        for line in report.read_text().splitlines():
            try:
                recorder = json.loads(line)["ScenarioFinished"]["recorder"]
            except (ValueError, KeyError, TypeError):
                continue
            label = recorder.get("label", "?")
            for inter in (recorder.get("interactions") or {}).values():
                status = ((inter or {}).get("response") or {}).get("status_code")
                if status is None:
                    continue
                requests += 1
                by_status[f"{status // 100}xx"] = by_status.get(f"{status // 100}xx", 0) + 1
                if status >= 500:
                    errors_5xx[label] = errors_5xx.get(label, 0) + 1
            for results in (recorder.get("checks") or {}).values():
                for check in results or []:
                    if check.get("status") != "failure":
                        continue
                    if check.get("name") == "response_schema_conformance":
                        message = str(((check.get("failure_info") or {}).get("failure") or {}).get("message", ""))
                        first = message.split("\n", 1)[0]
                        if first.startswith("null is not of type"):
                            # Go decodes null into any field (nil slice/map/pointer, or no change);
                            # dockerd sends these same nulls
                            nulls[label] = nulls.get(label, 0) + 1
                        else:
                            key = f"{label}: {first}"
                            violations[key] = violations.get(key, 0) + 1
                    elif check.get("name") != "not_a_server_error":
                        key = f"{check.get('name')}: {label}"
                        other_failures[key] = other_failures.get(key, 0) + 1
    return {"requests": requests, "by_status": by_status, "5xx": sum(errors_5xx.values()),
            "5xx_by_operation": errors_5xx, "schema_violations": sum(violations.values()),
            "schema_violations_by_operation": violations, "nulls": sum(nulls.values()),
            "nulls_by_operation": nulls, "other_check_failures": other_failures}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-examples", type=int, default=50)
    ap.add_argument("--max-time", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--phases", default="examples,coverage,fuzzing", help="schemathesis phases, in order")
    ap.add_argument("--mode", default="all", choices=("all", "positive", "negative"))
    ap.add_argument("--pythonpath", default=None, help="run the daemon from another checkout")
    ap.add_argument("--keep", type=Path, default=None, help="copy the report and logs here")
    args = ap.parse_args()
    figures = run(args.max_examples, args.max_time, args.pythonpath, args.seed, args.workers, args.keep,
                  args.phases, args.mode)
    print(json.dumps(figures, indent=1, sort_keys=True))
    sys.exit(1 if figures["5xx"] or figures["schema_violations"] else 0)


if __name__ == "__main__":
    main()
