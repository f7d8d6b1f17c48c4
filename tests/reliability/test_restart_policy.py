"""Restart policies never wedge a container (issue 14, finding 10).

docker-py's test_create_with_restart_policy: create with RestartPolicy always, start, wait,
rm (409), rm -f. The rm -f used to land in the restart delay: ``_stop`` waited for an exit
of a container that had no process (state "restarting"), forever, and the container stayed
"Restarting" with RestartCount 0 and Pid 0. As moby: ``wait`` on a restarting container
returns when it stops; a stopped ``always`` container stays stopped; ``rm -f`` of a
restarting container cancels the restart and removes it."""

from __future__ import annotations

import threading
import time

import docker
import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def _always(api, cmd):
    return api.create_container("busybox", cmd, host_config=api.create_host_config(
        restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="none"))["Id"]


def test_restart_always_create_start_wait_rm_repeatedly(d):
    api = d.docker_client(timeout=30).api  # a wedge shows as a ReadTimeout, never a hung suite
    try:
        for _ in range(8):
            cid = _always(api, ["sleep", "0.3"])
            api.start(cid)
            assert api.wait(cid)["StatusCode"] == 0
            with pytest.raises(docker.errors.APIError) as exc:
                api.remove_container(cid)
            assert exc.value.status_code == 409 and "You cannot remove " in exc.value.explanation
            api.remove_container(cid, force=True)
            with pytest.raises(docker.errors.NotFound):
                api.inspect_container(cid)
    finally:
        api.close()


def _restarting_for_a_while(api, cid):
    """Wait until the container sits in its restart delay, once the back-off is long (3.2 s
    after 5 restarts). "restarting" is also shown while a restart launches the process: two
    reads 0.3 s apart, both "restarting" with the same count, are the delay."""
    def sample():
        s = api.inspect_container(cid)
        return s["State"]["Status"], s["RestartCount"]

    def ready():
        first = sample()
        if first[0] != "restarting" or first[1] < 5:
            return False
        time.sleep(0.3)
        return sample() == first
    wait_for(ready, timeout=60, interval=0.02)


@pytest.fixture
def api(d):
    a = d.docker_client(timeout=30).api
    yield a
    a.close()


def test_wait_on_a_restarting_container_returns_when_it_is_stopped(api):
    cid = _always(api, ["sh", "-c", "exit 3"])
    api.start(cid)
    _restarting_for_a_while(api, cid)
    result = {}
    waiter = threading.Thread(target=lambda: result.update(api.wait(cid)))
    waiter.start()
    wait_for(lambda: True)  # the wait is registered once the daemon answered its headers
    time.sleep(0.2)
    api.stop(cid, timeout=1)
    waiter.join(30)
    assert not waiter.is_alive() and result["StatusCode"] == 3
    state = api.inspect_container(cid)["State"]
    assert state["Status"] == "exited" and state["Pid"] == 0
    count = api.inspect_container(cid)["RestartCount"]
    time.sleep(4)  # longer than the back-off the restart would have taken
    after = api.inspect_container(cid)
    assert after["State"]["Status"] == "exited" and after["RestartCount"] == count  # stopped stays stopped
    assert api.wait(cid)["StatusCode"] == 3  # not running: answered at once


def test_rm_force_of_a_restarting_container_cancels_the_restart(api):
    cid = _always(api, ["sh", "-c", "exit 3"])
    api.start(cid)
    _restarting_for_a_while(api, cid)
    api.remove_container(cid, force=True)
    with pytest.raises(docker.errors.NotFound):
        api.inspect_container(cid)


def test_kill_and_restart_of_a_restarting_container(api):
    cid = _always(api, ["sh", "-c", "exit 3"])
    api.start(cid)
    _restarting_for_a_while(api, cid)
    api.kill(cid)  # no process: the pending restart is what goes
    assert api.inspect_container(cid)["State"]["Status"] == "exited"
    api.start(cid)
    _restarting_for_a_while(api, cid)
    api.restart(cid, timeout=1)  # stops (cancels the pending restart), then starts
    wait_for(lambda: api.inspect_container(cid)["State"]["Status"] in ("running", "restarting", "exited"))
    api.remove_container(cid, force=True)
