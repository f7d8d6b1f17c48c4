"""pytest fixtures for Dockyard and its plugin authors (loaded through the ``pytest11`` entry point).

* ``dockyard_daemon``: one real ``dockyardd`` per test session on a temporary socket.
* ``make_daemon``: a factory for tests that need their own daemon (flags, restarts); every
  daemon it made is stopped at the end of the test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from .daemon import DaemonProcess

# The conformance suites (dockyard.testing.conformance_<kind>) are test code that plugin authors
# subclass: their asserts get pytest's rewriting (the values in a failure), as a test module's.
pytest.register_assert_rewrite(*(f"dockyard.testing.conformance_{kind}" for kind in (
    "cgroups", "logging", "network", "runtime", "storage", "transport", "volume")))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "privileged: needs root and real kernel features")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (privileged test)")
    for item in items:
        if "privileged" in item.keywords:
            item.add_marker(skip)


def check_task_errors(*daemons: DaemonProcess) -> None:
    """Fail if a daemon logged "Task exception was never retrieved": an exception in a
    background task nobody awaited (use ``dockyard.tasks.spawn``, which logs it at once)."""
    found = [f"{d.log_path}:\n{e}" for d in daemons for e in d.unobserved_task_errors()]
    if found:
        pytest.fail("dockyardd left a task exception unobserved:\n" + "\n".join(found), pytrace=False)


@pytest.fixture(scope="session")
def dockyard_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("dockyardd"))
    daemon.start()
    yield daemon
    daemon.finish()
    check_task_errors(daemon)


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(*args: str, base: Path | None = None, start: bool = True,
             env: dict[str, str] | None = None) -> DaemonProcess:
        d = DaemonProcess(base or tmp_path / f"d{len(made)}", *args, env=env)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.finish()
    check_task_errors(*made)


@pytest.fixture
def docker_client(dockyard_daemon: DaemonProcess) -> Iterator[Any]:
    client = dockyard_daemon.docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker-save tar of the offline busybox image (``busybox:latest``), built once."""
    from .images import busybox_image_tar

    return busybox_image_tar(tmp_path_factory.mktemp("images") / "busybox.tar")


@pytest.fixture(scope="session")
def multilayer_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-layer image with whiteouts (``multilayer:latest``), built once."""
    from .images import multilayer_image_tar

    return multilayer_image_tar(tmp_path_factory.mktemp("images") / "multilayer.tar")


@pytest.fixture(scope="session")
def busybox_daemon(dockyard_daemon: DaemonProcess, busybox_tar: Path) -> DaemonProcess:
    """The session daemon with ``busybox:latest`` loaded."""
    dockyard_daemon.load(busybox_tar)
    return dockyard_daemon


@pytest.fixture
def local_registry(tmp_path: Path) -> Iterator[Any]:
    """A real ``docker-registry`` on 127.0.0.1 (plain HTTP), its storage under ``tmp_path``."""
    from .registry import LocalRegistry, registry_available

    if not registry_available():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    with LocalRegistry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Any]:
    """A real ``docker-registry`` with htpasswd basic auth; user ``alice``, password ``s3cret-pass``."""
    from .registry import LocalRegistry, registry_available

    if not registry_available():
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    with LocalRegistry(tmp_path / "auth-registry", users={"alice": "s3cret-pass"}) as reg:
        yield reg
