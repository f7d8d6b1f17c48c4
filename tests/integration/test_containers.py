"""Containers end to end: the real docker CLI and docker-py against dockyardd, real kernel."""

import json
import os
import signal
import time

import docker
import pytest

from dockyard.testing.daemon import wait_for

pytestmark = pytest.mark.privileged


def test_run_rm_prints_and_leaves_nothing(d):
    r = d.docker("run", "--rm", "busybox", "echo", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\n"
    assert d.docker("ps", "-aq").stdout == b""


def test_exit_codes_and_streams_propagate(d):
    r = d.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_container_sees_its_own_namespaces(d):
    r = d.docker("run", "--rm", "--hostname", "boat", "busybox", "sh", "-c",
                 "echo $$; hostname; cat /etc/hostname; grep CapEff /proc/self/status; echo $(ls /sys/class/net)")
    assert r.returncode == 0, r.stderr
    pid, hostname, etc_hostname, caps, nets = r.stdout.decode().splitlines()
    assert pid == "1" and hostname == "boat" and etc_hostname == "boat"
    assert caps.split()[1] == "00000000a80425fb"  # Docker's default capability set
    assert nets.split() == ["eth0", "lo"]  # the default bridge network


def test_detached_ps_logs_stop_rm(d):
    r = d.docker("run", "-d", "--name", "web", "busybox", "sh", "-c",
                 "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip().decode()
    ps = d.docker("ps", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout.decode()
    assert f"{cid[:12]} web Up" in ps
    wait_for(lambda: b"ready" in d.docker("logs", "web").stdout)
    assert d.docker("stop", "web").returncode == 0
    assert d.docker("logs", "web").stdout == b"ready\nbye\n"
    state = json.loads(d.docker("inspect", "web").stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    assert d.docker("rm", "web").returncode == 0
    assert d.docker("inspect", "web").returncode != 0


def test_stop_falls_back_to_sigkill(d):
    cid = d.docker("run", "-d", "busybox", "sleep", "60").stdout.strip().decode()
    r = d.docker("stop", "-t", "1", cid)  # pid 1 ignores SIGTERM without an init
    assert r.returncode == 0
    assert json.loads(d.docker("inspect", cid).stdout)[0]["State"]["ExitCode"] == 137


def test_init_forwards_sigterm(d):
    cid = d.docker("run", "-d", "--init", "busybox", "sleep", "60").stdout.strip().decode()
    assert d.docker("stop", "-t", "10", cid).returncode == 0
    assert json.loads(d.docker("inspect", cid).stdout)[0]["State"]["ExitCode"] == 143


def test_logs_follow_and_tail(d):
    cid = d.docker("run", "-d", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; sleep 0.05; done").stdout.strip().decode()
    r = d.docker("logs", "-f", cid, timeout=20)
    assert r.stdout.decode().split() == [f"line{i}" for i in range(1, 6)]
    assert d.docker("logs", "--tail", "2", cid).stdout == b"line4\nline5\n"
    stamped = d.docker("logs", "-t", cid).stdout.decode().splitlines()
    assert stamped[0].endswith(" line1") and stamped[0][:4].isdigit()


def test_memory_limit_oom_kill(d):
    r = d.docker("run", "--name", "oom", "-m", "32m", "busybox", "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1")
    assert r.returncode == 137
    state = json.loads(d.docker("inspect", "oom").stdout)[0]["State"]
    assert state["OOMKilled"] is True


def test_pids_limit(d):
    r = d.docker("run", "--rm", "--pids-limit", "5", "busybox", "sh", "-c",
                 "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; wait")
    assert b"can't fork" in r.stderr.lower() or b"resource temporarily unavailable" in r.stderr.lower()


def test_pause_unpause(d):
    cid = d.docker("run", "-d", "busybox", "sh", "-c", "while true; do sleep 0.1; done").stdout.strip().decode()
    assert d.docker("pause", cid).returncode == 0
    info = json.loads(d.docker("inspect", cid).stdout)[0]["State"]
    assert info["Status"] == "paused" and info["Paused"] is True
    with open(f"/proc/{info['Pid']}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] in ("D", "S")  # frozen tasks sleep in the freezer
    assert b"(Paused)" in d.docker("ps", "--format", "{{.Status}}", "-f", f"id={cid}").stdout
    assert d.docker("unpause", cid).returncode == 0
    assert json.loads(d.docker("inspect", cid).stdout)[0]["State"]["Status"] == "running"


def test_restart_policy_on_failure(d):
    cid = d.docker("run", "-d", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 7").stdout.strip().decode()
    wait_for(lambda: json.loads(d.docker("inspect", cid).stdout)[0]["RestartCount"] == 2
             and json.loads(d.docker("inspect", cid).stdout)[0]["State"]["Status"] == "exited")
    assert json.loads(d.docker("inspect", cid).stdout)[0]["State"]["ExitCode"] == 7


def test_rename_top_diff(d):
    d.docker("run", "-d", "--name", "old", "busybox", "sh", "-c", "touch /made; sleep 60")
    assert d.docker("rename", "old", "new").returncode == 0
    top = d.docker("top", "new").stdout.decode()
    assert "sleep 60" in top and "PID" in top
    wait_for(lambda: b"A /made" in d.docker("diff", "new").stdout)


def test_ps_filters_and_quiet(d):
    d.docker("run", "-d", "--name", "lab", "--label", "team=a", "busybox", "sleep", "60")
    d.docker("run", "--name", "done", "busybox", "sh", "-c", "exit 4")
    assert d.docker("ps", "-q", "-f", "label=team=a").stdout.strip() != b""
    assert d.docker("ps", "-aq", "-f", "label=team=b").stdout == b""
    names = d.docker("ps", "-a", "--filter", "exited=4", "--format", "{{.Names}}").stdout.split()
    assert names == [b"done"]
    names = d.docker("ps", "-a", "--filter", "status=running", "--format", "{{.Names}}").stdout.split()
    assert b"lab" in names and b"done" not in names
    assert d.docker("ps", "-a", "--filter", "ancestor=busybox", "-q").stdout.count(b"\n") >= 2


def test_prune_until_takes_durations_and_times(d):
    """``until`` as the docker CLI passes it: a Go duration, an RFC 3339 time or unix seconds."""
    old = d.docker("create", "busybox", "true").stdout.decode().strip()
    for until in ("1h", "2026-01-01T00:00:00Z", "1000000000"):  # all before the container was made
        for what in ("container", "network", "image"):
            r = d.docker(what, "prune", "-f", "--filter", f"until={until}")
            assert r.returncode == 0, r.stderr
        assert d.docker("inspect", old).returncode == 0
    r = d.docker("container", "prune", "-f", "--filter", "until=soon")
    assert r.returncode != 0 and b"invalid value for until: 'soon'" in r.stderr
    assert d.docker("inspect", old).returncode == 0
    assert old in d.docker("container", "prune", "-f", "--filter", "until=0s").stdout.decode()
    assert d.docker("inspect", old).returncode != 0


def test_bad_input_is_refused_cleanly(d):
    r = d.docker("run", "--rm", "nosuchimage:1", "true")
    assert r.returncode == 125 and b"nosuchimage" in r.stderr
    r = d.docker("create", "--name", "bad name!", "busybox")
    assert r.returncode != 0 and b"Invalid container name" in r.stderr
    d.docker("create", "--name", "twin", "busybox")
    r = d.docker("create", "--name", "twin", "busybox")
    assert r.returncode != 0 and b"is already in use" in r.stderr
    d.docker("run", "-d", "--name", "busy", "busybox", "sleep", "60")
    r = d.docker("rm", "busy")
    assert r.returncode != 0 and b"cannot remove a running container" in r.stderr
    r = d.docker("run", "busybox", "nosuchbinary")
    assert r.returncode == 127 and b"executable file not found" in r.stderr
    r = d.docker("run", "-m", "1k", "busybox", "true")
    assert r.returncode != 0 and b"Minimum memory limit" in r.stderr


def test_docker_py_run_returns_the_output(client, d):
    """docker-py's foreground ``containers.run`` reads the output only when
    ``HostConfig.LogConfig.Type`` is json-file (Docker's default), as dockerd reports it."""
    assert client.containers.run("busybox", "echo hi", remove=True) == b"hi\n"
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], stderr=True, remove=True)
    assert sorted(out.splitlines()) == [b"err", b"out"]
    assert client.info()["LoggingDriver"] == "json-file"
    cid = d.docker("create", "busybox", "true").stdout.decode().strip()  # the CLI sends Type ""
    assert d.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout.strip() == \
        b'{"Type":"json-file","Config":{}}'
    d.docker("rm", cid)


def test_docker_py_lifecycle(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 0.2; echo b"], detach=True)
    lines = list(c.logs(stream=True, follow=True))
    assert b"".join(lines) == b"a\nb\n"
    assert c.wait()["StatusCode"] == 0
    c.reload()
    assert c.status == "exited"
    c.remove()
    c = client.containers.run("busybox", "sleep 60", detach=True, name="pystats", mem_limit="64m")
    stats = c.stats(stream=False)
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["pids_stats"]["current"] >= 1
    r = client.api._post(client.api._url("/containers/{0}/start", c.id))
    assert r.status_code == 304  # already started: Docker's "not modified"
    c.remove(force=True)
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pystats")
    with pytest.raises(docker.errors.ImageNotFound):
        client.containers.create("nosuch:tag", "true")


def test_wait_conditions(client):
    c = client.containers.create("busybox", ["sh", "-c", "exit 5"])
    c.start()
    assert c.wait(condition="not-running")["StatusCode"] == 5
    c.remove()


def test_user_env_workdir(d):
    r = d.docker("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c", "echo $A; pwd; id -u")
    assert r.stdout.decode().split() == ["1", "/tmp", "65534"], r.stderr


def test_live_restore_after_kill_9(make_daemon, busybox_tar):
    d = make_daemon()
    d.load(busybox_tar)
    ids = [d.docker("run", "-d", "busybox", "sh", "-c", f"echo c{i}; sleep 60").stdout.strip().decode() for i in range(5)]
    short = d.docker("run", "-d", "busybox", "sh", "-c", "sleep 1; exit 9").stdout.strip().decode()
    d.kill()
    # the short one exits while the daemon is down: its monitor writes the exit record (in the
    # state dir of whichever runtime driver runs it: native, or oci under --runtime oci)
    wait_for(lambda: any((d.exec_root / "runtime").glob(f"*/{short}/exit")))
    d.start()
    running = d.docker("ps", "-q", "--no-trunc").stdout.decode().split()
    assert sorted(running) == sorted(ids)
    state = json.loads(d.docker("inspect", short).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 9
    wait_for(lambda: d.docker("logs", ids[0]).stdout == b"c0\n")  # the echo may run late on a loaded machine
    assert d.docker("stop", "-t", "0", ids[0]).returncode == 0
    r = d.docker("wait", ids[0])
    assert r.stdout.strip() == b"137"
    assert d.docker("rm", "-f", *ids, short).returncode == 0
    assert d.docker("ps", "-aq").stdout == b""


def test_image_in_use_cannot_be_removed(d, multilayer_tar):
    d.load(multilayer_tar)
    cid = d.docker("create", "multilayer", "true").stdout.strip().decode()
    r = d.docker("rmi", "multilayer")
    assert r.returncode != 0 and b"container" in r.stderr and b"is using its referenced image" in r.stderr
    d.docker("rm", cid)
    assert d.docker("rmi", "multilayer").returncode == 0


def test_events_for_a_container_lifecycle(d):
    since = f"{time.time():.3f}"
    d.docker("run", "--rm", "--name", "evented", "busybox", "true")
    r = d.docker("events", "--since", since, "--until", f"{time.time() + 0.5:.3f}",
                 "--filter", "container=evented", "--format", "{{.Action}}")
    actions = r.stdout.decode().split()
    assert actions[:1] == ["create"] and "start" in actions and "die" in actions and actions[-1] == "destroy"


def test_rm_force_kills_at_once_as_moby(d):
    """``rm -f`` of a running container is moby's Kill: SIGKILL, one ``kill`` event with
    signal 9, no stop signal first (a TERM trap never runs)."""
    cid = d.docker("run", "-d", "busybox", "sh", "-c",
                   "trap 'echo term' TERM; echo ready; while true; do sleep 0.1; done").stdout.strip().decode()
    wait_for(lambda: b"ready" in d.docker("logs", cid).stdout)
    since = f"{time.time():.3f}"
    assert d.docker("rm", "-f", cid).returncode == 0
    r = d.docker("events", "--since", since, "--until", f"{time.time() + 0.5:.3f}",
                 "--filter", f"container={cid}", "--format", "{{.Action}} {{index .Actor.Attributes \"signal\"}}")
    lines = r.stdout.decode().splitlines()
    assert [line for line in lines if line.startswith("kill")] == ["kill 9"], lines
    assert lines[-1].startswith("destroy"), lines


def test_log_rotation_per_container(d):
    cid = d.docker("run", "-d", "--log-opt", "max-size=10k", "--log-opt", "max-file=2", "busybox", "sh", "-c",
                   # ~100 KB of output, five times what two 10k files keep, however it is chunked
                   "i=0; while [ $i -lt 2000 ]; do echo line-$i ........................................; "
                   "i=$((i+1)); done").stdout.strip().decode()
    assert d.docker("wait", cid).stdout.strip() == b"0"
    out = [w for w in d.docker("logs", cid).stdout.decode().split() if w.startswith("line-")]
    assert out[-1] == "line-1999" and "line-0" not in out  # older lines rotated away
    assert 0 < len(out) < 2000
    r = d.docker("run", "--rm", "--log-opt", "colour=blue", "busybox", "true")
    assert r.returncode == 125 and b"unknown log opt" in r.stderr


def test_two_daemons_keep_their_own_cgroups(d, make_daemon):
    cid = d.docker("run", "-d", "busybox", "sleep", "60").stdout.strip().decode()
    other = make_daemon()  # a second daemon (own data root) reconciles at start
    assert other.ping()
    assert d.docker("pause", cid).returncode == 0, "the other daemon removed this container's cgroup"
    assert d.docker("unpause", cid).returncode == 0


def test_update_changes_resources_and_nothing_else(client):
    """``POST /containers/{id}/update`` applies what moby's does (resources, restart policy);
    any other HostConfig field in the body is ignored and never stored, so an unprivileged
    container cannot be updated into a privileged one."""
    c = client.containers.run("busybox", "sleep 60", detach=True, mem_limit="64m")
    url = client.api._url("/containers/{0}/update", c.id)
    try:
        r = client.api._post_json(url, data={
            "Memory": 128 << 20, "MemorySwap": 256 << 20, "PidsLimit": 50,
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2},
            "Privileged": True, "CapAdd": ["ALL"], "PidMode": "host", "Binds": ["/:/host"], "Mounts": ["x"]})
        assert r.status_code == 200, r.text
        c.reload()
        hc = c.attrs["HostConfig"]
        assert hc["Memory"] == 128 << 20 and hc["PidsLimit"] == 50
        assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert not hc["Privileged"] and not hc.get("CapAdd") and not hc.get("PidMode")
        assert not hc.get("Binds") and not hc.get("Mounts")
        limit = c.exec_run(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                                        "cat /sys/fs/cgroup/memory.max"]).output.strip()
        assert limit == str(128 << 20).encode()  # applied to the running container's cgroup
        c.restart(timeout=0)
        caps = c.exec_run(["grep", "CapEff", "/proc/self/status"]).output.split()[-1]
        assert caps != b"000001ffffffffff" and int(caps, 16) != (1 << 41) - 1  # still Docker's default set
        r = client.api._post_json(url, data={"CpuRealtimeRuntime": 1000})
        assert r.status_code == 400 and "--cpu-rt-runtime is not supported" in r.text
        r = client.api._post_json(url, data={"Memory": 1 << 70})
        assert r.status_code == 400 and "overflows a 64-bit integer" in r.text
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 128 << 20
    finally:
        c.remove(force=True)
