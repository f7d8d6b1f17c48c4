"""Fixtures shared by the integration tests: the session daemon (busybox loaded), cleaned
after every test, and docker-py on it."""

import pytest


def _ids(daemon, *args):
    return set(daemon.docker(*args).stdout.decode().split())


@pytest.fixture
def d(busybox_daemon):
    """The shared daemon; every container and image a test makes is removed afterwards."""
    containers = _ids(busybox_daemon, "ps", "-aq", "--no-trunc")
    images = _ids(busybox_daemon, "images", "-aq", "--no-trunc")
    yield busybox_daemon
    for cid in _ids(busybox_daemon, "ps", "-aq", "--no-trunc") - containers:
        busybox_daemon.docker("rm", "-f", cid)
    for iid in _ids(busybox_daemon, "images", "-aq", "--no-trunc") - images:
        busybox_daemon.docker("rmi", "-f", iid)


@pytest.fixture
def client(d):
    c = d.docker_client()
    yield c
    c.close()
