"""The daemon runs under ``python -OO`` (core/__main__.py): a start without it execs itself
again with it, keeping its pid; ``--help`` keeps its docstring-made text (issue 18, idle PSS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from dockyard import __main__ as entry


@pytest.mark.parametrize("args, env, optimize, want", [
    (["-H", "unix:///x"], {}, 0, True),
    (["-H", "unix:///x"], {}, 1, True),
    (["-H", "unix:///x"], {}, 2, False),  # the exec'd process itself: no loop
    (["--help"], {}, 0, False),
    (["-h"], {}, 0, False),
    (["--version"], {}, 0, False),
    (["-D"], {"DOCKYARD_NO_OPTIMIZE": "1"}, 0, False),
])
def test_optimized_argv(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str],
                        optimize: int, want: bool) -> None:
    monkeypatch.delenv("DOCKYARD_NO_OPTIMIZE", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["dockyardd", *args])
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "-X", "dev", "/venv/bin/dockyardd", *args])

    class Flags:
        pass

    flags: Any = Flags()
    flags.optimize = optimize
    monkeypatch.setattr(sys, "flags", flags)
    argv = entry.optimized_argv()
    if want:
        # the same command line, interpreter options included, with -OO first
        assert argv == [sys.executable, "-OO", "-X", "dev", "/venv/bin/dockyardd", *args]
    else:
        assert argv is None


def test_help_keeps_its_text() -> None:
    out = subprocess.run([sys.executable, "-m", "dockyard", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "the Dockyard container engine daemon" in out.stdout  # click takes it from a docstring


@pytest.mark.privileged
def test_daemon_runs_optimized_with_its_pid(make_daemon: Callable[..., Any]) -> None:
    d = make_daemon()
    cmdline = Path(f"/proc/{d.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[:2] == [sys.executable.encode(), b"-OO"], cmdline  # the process we started, exec'd
    assert int((d.exec_root / "dockyardd.pid").read_text()) == d.proc.pid
    assert d.docker("info").returncode == 0  # and it serves
