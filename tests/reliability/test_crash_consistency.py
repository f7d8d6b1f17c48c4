"""kill -9 of the daemon in the middle of ``rm`` and ``start`` (issue 14, findings 2 and 4).

The daemon dies at a named step (``dockyard.crashpoints``: ``DOCKYARD_CRASHPOINT``), is
started again on the same data root, and start-up reconciliation must leave the old state or
the new one: a removal is finished (nothing left: record, layer, mounts, cgroups,
processes, anonymous volumes); a start is adopted (running, the real pid, monitored,
stoppable) or undone (no process the API does not know)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from dockyard.testing.daemon import wait_for

from .conftest import cgroup_pids, restart, traces

pytestmark = pytest.mark.privileged


def _crash(daemon, action) -> None:
    """Run ``action`` (an API call the crash point ends) and wait for the daemon's death."""
    with pytest.raises((requests.exceptions.ConnectionError, OSError)):
        action()
    assert daemon.proc.wait(30) == 137


def _docker_ok(daemon, *args) -> str:
    r = daemon.docker(*args)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


@pytest.mark.parametrize("point", ["container.rm.after_intent", "container.rm.after_runtime",
                                   "container.rm.after_layer"])
def test_kill9_during_rm_is_finished_at_restart(own_daemon, point):
    daemon = own_daemon(env={"DOCKYARD_CRASHPOINT": point})
    cid = _docker_ok(daemon, "run", "-d", "--network", "none", "-v", "/data", "busybox", "sleep", "300")
    volume = _docker_ok(daemon, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", cid)
    keep = _docker_ok(daemon, "create", "--network", "none", "--name", "bystander", "busybox", "true")
    before = {t.split(":")[0] for t in traces(daemon, cid)}
    assert {"file", "mount", "cgroup", "process"} <= before  # what the check below must see gone
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.remove_container(cid, force=True, v=True))
    api.close()
    restart(daemon)
    assert "finishing the removal of container " + cid[:12] in daemon.log()
    assert _docker_ok(daemon, "ps", "-aq", "--no-trunc").split() == [keep]
    assert traces(daemon, cid) == []
    assert volume not in _docker_ok(daemon, "volume", "ls", "-q").split()  # rm -v: it went too
    _docker_ok(daemon, "container", "prune", "-f")
    assert _docker_ok(daemon, "ps", "-aq") == ""


def _storage_dir(daemon, cid) -> Path:
    found = [Path(p) for p in (daemon.data_root / "storage").glob(f"*/{cid}")]
    assert len(found) == 1, found
    return found[0]


def test_removal_half_done_by_an_older_version_is_finished(own_daemon):
    """What an interrupted removal of the old code left: the record says "removing", the
    layer directory lost work/ and merged/ (so it looked like a layer: rm answered 409 "is a
    layer, not a container" for ever). Start-up finishes it; so does a second case with
    diff/ gone too, by rm -f."""
    daemon = own_daemon()
    cids = [_docker_ok(daemon, "run", "-d", "--network", "none", "busybox", "sleep", "300") for _ in range(2)]
    for cid in cids:
        _docker_ok(daemon, "stop", "-t", "0", cid)
    daemon.stop()
    for i, cid in enumerate(cids):
        record = daemon.data_root / "containers" / cid / "config.v2.json"
        data = json.loads(record.read_text())
        data["status"] = "removing"
        record.write_text(json.dumps(data))
        layer = _storage_dir(daemon, cid)
        for sub in ("work", "merged") + (("diff",) if i else ()):
            shutil.rmtree(layer / sub, ignore_errors=True)
    restart(daemon)
    assert _docker_ok(daemon, "ps", "-aq") == ""
    for cid in cids:
        assert traces(daemon, cid) == []


def test_storage_removes_what_an_interrupted_removal_left(tmp_path):
    """The overlay driver: a container directory without work/, merged/ or diff/ is still a
    container (listed, removable); a real layer is still refused."""
    from dockyard.errors import Conflict
    from dockyard_storage_overlay.overlay import OverlayDriver

    drv = OverlayDriver(root=tmp_path / "overlay")
    for cid, gone in (("c1", ("work", "merged")), ("c2", ("work", "merged", "diff")), ("c3", ("work",))):
        drv.create_rw(cid, None)
        for sub in gone:
            shutil.rmtree(tmp_path / "overlay" / cid / sub)
    assert drv.containers() == ["c1", "c2", "c3"]
    for cid in ("c1", "c2", "c3"):
        drv.remove_rw(cid)
        assert not (tmp_path / "overlay" / cid).exists()
    assert drv.containers() == []
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w"):
        pass
    buf.seek(0)
    drv.create_layer("layer1", None, buf)
    with pytest.raises(Conflict):
        drv.remove_rw("layer1")
    # a crash in the middle of a removal leaves only a .tmp-* directory, deleted at start
    drv.create_rw("c4", None)
    (tmp_path / "overlay" / "c4").rename(tmp_path / "overlay" / ".tmp-rm-c4-0000")
    drv = OverlayDriver(root=tmp_path / "overlay")
    assert not list((tmp_path / "overlay").glob(".tmp-*")) and drv.containers() == []


def test_kill9_after_launch_adopts_the_process(own_daemon):
    daemon = own_daemon(env={"DOCKYARD_CRASHPOINT": "container.start.after_launch"})
    cid = _docker_ok(daemon, "create", "--network", "none", "busybox", "sleep", "300")
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.start(cid))
    api.close()
    launched = cgroup_pids(cid)
    assert launched  # the crash left a process the old record did not name
    restart(daemon)
    state = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert state["Status"] == "running" and state["Pid"] in launched
    assert "adopting container " + cid[:12] in daemon.log()
    assert _docker_ok(daemon, "exec", cid, "echo", "hi") == "hi"
    _docker_ok(daemon, "stop", "-t", "1", cid)  # monitored: the stop is seen
    state = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert state["Status"] == "exited" and state["Pid"] == 0
    assert not cgroup_pids(cid)
    _docker_ok(daemon, "rm", cid)
    assert traces(daemon, cid) == []


def test_kill9_before_launch_leaves_no_process_and_can_start(own_daemon):
    daemon = own_daemon(env={"DOCKYARD_CRASHPOINT": "container.start.after_intent"})
    cid = _docker_ok(daemon, "create", "--network", "none", "busybox", "sleep", "300")
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.start(cid))
    api.close()
    restart(daemon)
    state = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert state["Status"] == "created" and state["Pid"] == 0
    # what the interrupted start set up (rootfs mount, cgroup) is gone; only the record and
    # the writable layer of the created container remain
    assert [t for t in traces(daemon, cid) if not t.startswith("file: ")] == []
    _docker_ok(daemon, "start", cid)
    assert json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))["Status"] == "running"
    _docker_ok(daemon, "rm", "-f", cid)
    assert traces(daemon, cid) == []


def test_kill9_while_a_restart_policy_launches_adopts_the_process(own_daemon):
    """The second launch (the restart policy's) is cut short: after the restart the container
    is running with its real pid, not "restarting" with Pid 0 for ever."""
    daemon = own_daemon(env={"DOCKYARD_CRASHPOINT": "container.start.after_launch@2"})
    cid = _docker_ok(daemon, "run", "-d", "--network", "none", "--restart", "always", "busybox", "sh", "-c",
                     "test -f /ran && exec sleep 300; touch /ran")  # exits once, then runs
    assert daemon.proc.wait(60) == 137
    launched = cgroup_pids(cid)
    assert launched
    restart(daemon)
    state = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert state["Status"] == "running" and state["Pid"] in launched
    assert _docker_ok(daemon, "inspect", "-f", "{{.RestartCount}}", cid) == "1"
    _docker_ok(daemon, "rm", "-f", cid)
    assert traces(daemon, cid) == []
