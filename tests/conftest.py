"""Suite-wide checks. After the whole run nothing of the suite's daemons may be left on the
machine: no mount, cgroup, shim or daemon process, bridge or veth, nftables table, iptables
accept or pinned network namespace. A leftover fails the run.

Only what the suite made counts (:mod:`dockyard.testing.leaks`): the machine is observed at the
start and at the end of the session, and of what is new, only what belongs to the test
daemons (their data and exec roots live under pytest's base temp dir, or wherever a
``DaemonProcess`` of this session started one) is a leak. Another
dockyardd running on the machine (a user's service, another test run) never makes the suite
red. ``DOCKYARD_SKIP_LEAK_CHECK=1`` turns the check off.

Also the fixtures most test directories share: ``d`` (the session's busybox daemon, cleaned
after every test) and ``client`` (docker-py on it)."""

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


# -- the shared busybox daemon for integration, security and scheduler tests --------------------
def _ids(daemon, *args):
    return set(daemon.docker(*args).stdout.decode().split())


@pytest.fixture
def d(busybox_daemon):
    """The shared daemon; every container, image, network and volume a test makes is removed
    afterwards (also when the test failed half-way)."""
    listings = {"container": ("ps", "-aq", "--no-trunc"), "image": ("images", "-aq", "--no-trunc"),
                "network": ("network", "ls", "-q", "--no-trunc"), "volume": ("volume", "ls", "-q")}
    removals = {"container": ("rm", "-fv"), "image": ("rmi", "-f"), "network": ("network", "rm"),
                "volume": ("volume", "rm", "-f")}
    before = {kind: _ids(busybox_daemon, *cmd) for kind, cmd in listings.items()}
    yield busybox_daemon
    for kind, cmd in listings.items():  # containers first: they hold the rest
        for obj in _ids(busybox_daemon, *cmd) - before[kind]:
            busybox_daemon.docker(*removals[kind], obj)


@pytest.fixture
def client(d):
    c = d.docker_client()
    yield c
    c.close()
