"""kill -9 of the daemon while it starts an exited container AGAIN (issue 14, the chaos
finding "its line is not in the logs"): at the next daemon start the interrupted start is
adopted or undone, and the undo removes only what that start launched (process, cgroup,
mounts, the runtime's state), never the logs of the earlier runs: Docker keeps a container's
logs across its restarts. The exit file of the earlier run is no proof that the interrupted
start launched anything: it was recorded already."""

from __future__ import annotations

import json

import pytest

from .conftest import cgroup_pids, restart
from .test_crash_consistency import _crash, _docker_ok

pytestmark = pytest.mark.privileged

LINE = "line-of-a-run"


@pytest.mark.parametrize("log_driver", ["json-file", "local"])
@pytest.mark.parametrize("point", ["container.start.after_intent", "container.start.after_launch"])
def test_kill9_during_a_second_start_keeps_the_earlier_logs(own_daemon, point, log_driver):
    daemon = own_daemon()
    cid = _docker_ok(daemon, "create", "--network", "none", "--log-driver", log_driver, "busybox",
                     "sh", "-c", f"echo {LINE}; exit 3")
    r = daemon.docker("start", "-a", cid)
    assert r.returncode == 3 and r.stdout.decode() == LINE + "\n", r.stderr.decode()
    first = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    restart(daemon, env={"DOCKYARD_CRASHPOINT": point})
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.start(cid))  # the second start of the exited container
    api.close()
    restart(daemon)
    _docker_ok(daemon, "wait", cid)  # exited (adopted and ended, or undone): never stuck
    state = json.loads(_docker_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert state["Status"] == "exited" and state["Pid"] == 0 and state["ExitCode"] == 3
    assert not cgroup_pids(cid)
    lines = _docker_ok(daemon, "logs", cid).splitlines()
    if point == "container.start.after_intent":
        # nothing was launched: the start is undone, the earlier run's exit stays as recorded
        assert "its start was interrupted by a daemon stop; removing what it launched" in daemon.log()
        assert state["Error"] == "the daemon stopped while the container was starting"
        assert state["FinishedAt"] == first["FinishedAt"]
        assert lines == [LINE]
    else:  # launched: adopted, and its line follows the first run's
        assert lines == [LINE, LINE]
    # it runs again, and its logs keep growing
    r = daemon.docker("start", "-a", cid)
    assert r.returncode == 3 and r.stdout.decode() == LINE + "\n", r.stderr.decode()
    assert _docker_ok(daemon, "logs", cid).splitlines() == lines + [LINE]
    _docker_ok(daemon, "rm", cid)
