"""Fixtures shared by the security tests: the session daemon (busybox loaded), cleaned after
every test, and docker-py on it (the same ``d``/``client`` as tests/integration/conftest.py).
Tests that attack the daemon itself make their own with ``make_daemon``."""

import pytest


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
