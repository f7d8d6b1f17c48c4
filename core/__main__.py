"""``dockyardd`` and ``python -m dockyard``: the daemon's entry point.

The daemon runs under ``python -OO``: a long-running process has no use for the docstrings of
every module it imports (its own, the standard library's asyncio, pluggy...), and they are
~1.5 MB of an idle daemon's memory (issue 18). So a start without ``-OO`` execs the same
command line again with it, before anything heavy is imported: same pid (systemd's
``LISTEN_PID`` and ``MAINPID`` stay true), same environment and file descriptors.
``-OO`` also drops ``assert`` statements: the daemon's code uses them only to narrow types,
never to check input (docs/plugins.md tells plugin authors the same).

``--help`` and ``--version`` are answered without the exec (click's help text comes from
docstrings). ``DOCKYARD_NO_OPTIMIZE=1`` keeps the interpreter as started (a debugger's session).
"""

from __future__ import annotations

import os
import sys

NO_EXEC_FLAGS = frozenset({"-h", "--help", "--version"})


def optimized_argv() -> list[str] | None:
    """The command line to exec for ``-OO``, or None when this process should just run."""
    if sys.flags.optimize >= 2 or os.environ.get("DOCKYARD_NO_OPTIMIZE"):
        return None
    if NO_EXEC_FLAGS.intersection(sys.argv[1:]):
        return None
    return [sys.executable, "-OO", *sys.orig_argv[1:]]


def main() -> None:
    argv = optimized_argv()
    if argv is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
    from .daemon import main as run

    run()


if __name__ == "__main__":
    main()
