"""What the healthcheck and Dockerfile-substitution changes cost, without a daemon.

    /work/main/.venv/bin/python bench/bench_health.py [-n 30]

* saving a container record that carries ``State.Health`` (5 log entries), as the health
  monitor now does after every probe (``sync=False``: atomic, no fsync, as Docker's
  ``CheckpointTo``), against the same record without it;
* processing one Dockerfile word with ``${VAR:-...}`` substitution (``dockyard.build.shell``)
  against dockerfile-parse's ``WordSplitter`` (the previous implementation, ``$VAR`` only).

Each sample is the mean of a batch (1,000 saves, 10,000 words); the median of n samples is
reported. dockerd is not installed here, so there is no side-by-side number.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import command_line, fmt, report  # noqa: E402

from dockerfile_parse.util import WordSplitter  # noqa: E402

from dockyard.build import shell  # noqa: E402
from dockyard.containers.health import Health, Result  # noqa: E402
from dockyard.containers.record import Container  # noqa: E402


def record(with_health: bool) -> Container:
    c = Container(id="a" * 64, name="bench", image="busybox", image_id="sha256:" + "b" * 64,
                  config={"Cmd": ["sleep", "60"], "Env": ["PATH=/usr/bin:/bin"], "Labels": {"a": "b"},
                          "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 10**9}},
                  host_config={"NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0}})
    if with_health:
        h = Health()
        h.log = [Result(i, i + 10**6, 0, "ok\n").to_json() for i in range(5)]
        c.health = h.to_json()
    return c


def per_save(c: Container, directory: Path, batch: int = 1000) -> float:
    t = time.perf_counter()
    for _ in range(batch):
        c.save(directory, sync=False)
    return (time.perf_counter() - t) / batch


def per_word(fn, batch: int = 10000) -> float:
    t = time.perf_counter()
    for _ in range(batch):
        fn()
    return (time.perf_counter() - t) / batch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("-n", type=int, default=30)
    n = p.parse_args().n
    print(command_line())
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        directory = Path(tmp)
        plain, healthy = record(False), record(True)
        a, b = [], []
        for _ in range(n):  # alternate so both see the same noise
            a.append(per_save(plain, directory))
            b.append(per_save(healthy, directory))
    report("record save, no health", fmt(a, "µs", 1e6), {})
    report("record save with State.Health (per probe)", fmt(b, "µs", 1e6), {})
    env = {"HOME_DIR": "/home/app", "SUB": "x"}
    word = '${UNSET:-/opt/${SUB}}/$HOME_DIR/"quoted part"'
    old_word = '/opt/${SUB}/$HOME_DIR/"quoted part"'
    ours, old = [], []
    for _ in range(n):
        ours.append(per_word(lambda: shell.process(word, env)))
        old.append(per_word(lambda: WordSplitter(old_word, envs=env).dequote()))
    report("shell.process one word (with ${VAR:-...})", fmt(ours, "µs", 1e6, 2), {})
    report("dockerfile-parse WordSplitter one word ($VAR only)", fmt(old, "µs", 1e6, 2), {})


if __name__ == "__main__":
    main()
