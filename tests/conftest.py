"""Suite-wide checks. After the whole run nothing of the suite's daemons may be left on the
machine: no mount, cgroup, shim or daemon process, bridge or veth, nftables table, iptables
accept or pinned network namespace. A leftover fails the run.

Only what the suite made counts (:mod:`dockyard.testing.leaks`): the machine is observed at the
start and at the end of the session, and of what is new, only what belongs to the test
daemons (their data and exec roots live under pytest's base temp dir, or wherever a
``DaemonProcess`` of this session started one) is a leak. Another
dockyardd running on the machine (a user's service, another test run) never makes the suite
red. ``DOCKYARD_SKIP_LEAK_CHECK=1`` turns the check off."""

from __future__ import annotations

import os
import time

import pytest

_BEFORE = pytest.StashKey[object]()


def _enabled(config: pytest.Config) -> bool:
    return os.geteuid() == 0 and not config.option.collectonly and not os.environ.get("DOCKYARD_SKIP_LEAK_CHECK")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    if _enabled(session.config):
        from dockyard.testing import leaks

        session.config.stash[_BEFORE] = leaks.snapshot()


def suite_leftovers(config: pytest.Config, before: object) -> list[str]:
    from dockyard.testing import leaks
    from dockyard.testing.daemon import DaemonProcess

    dirs = [config._tmp_path_factory.getbasetemp(), *DaemonProcess.started_bases]  # type: ignore[attr-defined]
    owner = leaks.owner(dirs, DaemonProcess.started_data_roots)
    return leaks.leaks(before, leaks.snapshot(), owner)  # type: ignore[arg-type]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _enabled(session.config) or _BEFORE not in session.config.stash:
        return
    before = session.config.stash[_BEFORE]
    left = suite_leftovers(session.config, before)
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        # the kernel deletes a released network namespace (and the veths in it) in the
        # background, and a shim may still be exiting: wait for what goes away by itself
        time.sleep(0.2)
        left = suite_leftovers(session.config, before)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {item}" for item in left)
        if reporter is not None:
            reporter.write_line(f"\nDockyard left things behind after the tests:\n{lines}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
