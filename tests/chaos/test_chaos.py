"""The bounded chaos run of CI (issue 14): 300 random lifecycle operations from 4 client
threads against a private daemon, 8 ``kill -9`` of the daemon at random moments, invariants
after every restart and a leak check at the end (:mod:`dockyard.testing.chaos`). The long run
is ``bench/chaos.py``. ``CHAOS_SEED`` replays a run; ``CHAOS_OPERATIONS`` / ``CHAOS_KILLS``
resize it."""

from __future__ import annotations

import os

import pytest

from dockyard.testing.chaos import Chaos

pytestmark = pytest.mark.privileged

# Violations of a bug known and being fixed elsewhere: the run is an xfail naming it when these
# are its only violations (never when anything else broke). Remove an entry once fixed.
# (none now: "its line is not in the logs", earlier logs lost when a restart was cut by the kill,
# is fixed and tested in tests/reliability/test_interrupted_restart_logs.py)
KNOWN: dict[str, str] = {}


def test_chaos_kill_9_under_random_lifecycle_load(tmp_path, busybox_tar):
    seed = int(os.environ["CHAOS_SEED"]) if os.environ.get("CHAOS_SEED") else None
    chaos = Chaos(tmp_path / "chaos", busybox_tar, seed=seed,
                  operations=int(os.environ.get("CHAOS_OPERATIONS", 300)), threads=4,
                  kills=int(os.environ.get("CHAOS_KILLS", 8)), log=print)
    result = chaos.run()
    print(result.figures())
    for line in result.unexpected:
        print("unexpected answer:", line)
    assert result.kills == chaos.n_kills, result.figures()
    assert result.leaks == [], f"{result.figures()}\n" + "\n".join(result.leaks)
    known = {finding for v in result.violations for key, finding in KNOWN.items() if key in v}
    if result.violations and all(any(key in v for key in KNOWN) for v in result.violations):
        pytest.xfail("; ".join(sorted(known)))
    assert result.violations == [], f"{result.figures()}\n" + "\n".join(result.violations)
