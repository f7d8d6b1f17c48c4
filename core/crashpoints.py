"""Named crash points for crash-consistency tests: ``crashpoint("network.create.link")`` ends
the process at once (``os._exit(137)``, what ``kill -9`` looks like to a parent: no cleanup,
no ``finally``, no flush) when the environment variable ``DOCKYARD_CRASHPOINT`` names it.

Without the variable a crash point costs one dict lookup. ``DOCKYARD_CRASHPOINT`` may name
several points separated by commas; ``name@N`` crashes at the N-th time (1-based) the point
is reached, e.g. ``volume.create.dir@3``. Tests set it in a test daemon's environment
(``make_daemon(env={"DOCKYARD_CRASHPOINT": ...})``), restart the daemon without it and
check that start-up reconciliation left the old state or the new one, never a mix.

Put a crash point between two steps whose order matters (after an intent is written and
before the action, after the action and before the record), never inside a lock a
reconciliation needs (the process dies; kernel locks such as flock go with it).
"""

from __future__ import annotations

import os
import threading

_ENV = "DOCKYARD_CRASHPOINT"
_lock = threading.Lock()
_counts: dict[str, int] = {}


def _armed() -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(_ENV, "").split(","))):
        name, _, nth = item.partition("@")
        out[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return out


_ARMED = _armed()


def crashpoint(name: str) -> None:
    """Die here like ``kill -9`` if ``DOCKYARD_CRASHPOINT`` names this point (see the module)."""
    if not _ARMED or name not in _ARMED:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] < _ARMED[name]:
            return
    os._exit(137)
