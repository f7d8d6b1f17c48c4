"""Replay of what Nomad's docker task driver (drivers/docker/) sends the Engine API for one
allocation, written from its source (field names and values, no code): the group's pause
container ("nomad_init_<alloc>"), the task container "<task>-<alloc>" with Nomad's labels,
env, alloc/local/secrets binds, resources (Memory, MemorySwap = Memory, MemorySwappiness 0,
CpuShares, PidsLimit), json-file logging with Nomad's rotation, joined to the pause
container's network; then stats polling (stream), exec, list by label, the name conflict it
recovers from, stop with kill_timeout and remove. On cgroup v1 Nomad's cpuset fixer writes
/sys/fs/cgroup/cpuset/<parent>/<id>: the daemon runs with cgroup-parent <prefix>/docker,
the docker default, and the container must be exactly there."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for

from .conftest import LAYOUT, Engine, cgroup_paths

pytestmark = pytest.mark.privileged
MIB = 1024 * 1024


@pytest.fixture
def nomad_daemon(make_daemon, busybox_tar, prefix):
    d = make_daemon("--cgroup-parent", f"/{prefix}/docker")
    d.load(busybox_tar)
    return d


def test_allocation_as_nomad_drives_it(prefix, nomad_daemon, tmp_path):
    nomad = Engine(nomad_daemon, "1.41")
    try:
        _replay(nomad, prefix, tmp_path)
    finally:
        nomad.close()


def _replay(nomad: Engine, prefix: str, tmp_path: Path) -> None:
    alloc, job, group, task = str(uuid.uuid4()), "web", "frontend", "server"
    labels = {"com.hashicorp.nomad.alloc_id": alloc, "com.hashicorp.nomad.job_name": job,
              "com.hashicorp.nomad.job_id": job, "com.hashicorp.nomad.task_group_name": group,
              "com.hashicorp.nomad.task_name": task, "com.hashicorp.nomad.namespace": "default",
              "com.hashicorp.nomad.node_name": "node-1", "com.hashicorp.nomad.node_id": str(uuid.uuid4())}
    # fingerprint: version, info, the image
    assert nomad.json("GET", "/version")["ApiVersion"]
    assert nomad.json("GET", "/info")["CgroupDriver"] == "cgroupfs"
    nomad.json("GET", "/images/busybox/json")

    # the group network's pause container
    pause = nomad.create(f"nomad_init_{alloc}", {
        "Image": "busybox", "Cmd": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
        "Hostname": "", "Labels": {"com.hashicorp.nomad.alloc_id": alloc},
        "HostConfig": {"NetworkMode": "none", "LogConfig": {"Type": "none", "Config": {}}},
    })
    nomad.json("POST", f"/containers/{pause}/start", expect=204)

    # the task's directories (alloc, local, secrets), as the task runner makes them
    dirs = {}
    for name in ("alloc", "local", "secrets"):
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
    (dirs["alloc"] / "marker").write_text("from-alloc\n")
    memory = 48 * MIB
    body = {
        "Image": "busybox",
        "Cmd": ["sh", "-c", "trap 'exit 0' INT TERM; while :; do cat /proc/self/stat > /dev/null; done"],
        "Env": [f"NOMAD_ALLOC_ID={alloc}", f"NOMAD_TASK_NAME={task}", f"NOMAD_GROUP_NAME={group}",
                f"NOMAD_JOB_NAME={job}", "NOMAD_ALLOC_DIR=/alloc", "NOMAD_TASK_DIR=/local",
                "NOMAD_SECRETS_DIR=/secrets", "NOMAD_MEMORY_LIMIT=48", "NOMAD_CPU_LIMIT=500"],
        "Labels": labels,
        "Tty": False, "OpenStdin": False, "StopSignal": "SIGINT",
        "HostConfig": {
            "Memory": memory, "MemorySwap": memory, "MemoryReservation": 0, "MemorySwappiness": 0,
            "CpuShares": 500, "CpuQuota": 0, "CpuPeriod": 0, "PidsLimit": 64,
            "Binds": [f"{dirs['alloc']}:/alloc", f"{dirs['local']}:/local", f"{dirs['secrets']}:/secrets"],
            "NetworkMode": f"container:{pause}",
            "LogConfig": {"Type": "json-file", "Config": {"max-file": "2", "max-size": "2m"}},
            "Privileged": False, "ReadonlyRootfs": False, "Init": False,
            "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
        },
    }
    name = f"{task}-{alloc}"
    r = nomad.call("POST", "/containers/create", body, name=name)
    if r.status_code == 400 and "swappiness" in r.text.lower():
        pytest.xfail(f"MemorySwappiness 0 still refused (the compatibility issue owns it): {r.json()['message']}")
    assert r.status_code == 201, r.text
    cid = r.json()["Id"]
    nomad.made.append(cid)
    nomad.json("POST", f"/containers/{cid}/start", expect=204)

    # a retry of the create (Nomad recovers from the name conflict by inspecting the holder)
    r = nomad.call("POST", "/containers/create", body, name=name)
    assert r.status_code == 409 and "is already in use by container" in r.json()["message"], r.text
    assert cid in r.json()["message"]

    c = nomad.inspect(cid)
    assert c["State"]["Running"] and c["Config"]["Labels"] == labels
    hc = c["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuShares"], hc["PidsLimit"]) == (memory, memory, 500, 64)
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "2", "max-size": "2m"}}
    # a Go client reads a missing field as its zero value: "" (the daemon default applies)
    assert hc["NetworkMode"] == f"container:{pause}" and hc.get("CgroupParent", "") == ""
    assert {m["Destination"] for m in c["Mounts"]} == {"/alloc", "/local", "/secrets"}
    pid = c["State"]["Pid"]
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{nomad.inspect(pause)['State']['Pid']}/ns/net")
    # the cgroup where Nomad's cpuset fixer looks for it: <parent>/<id>
    paths = cgroup_paths(pid)
    assert f"/{prefix}/docker/{cid}" in paths.values(), paths
    if "cpuset" in LAYOUT.v1:
        cpuset = Path(LAYOUT.v1["cpuset"]) / prefix / "docker" / cid / "cpuset.cpus"
        cpus = cpuset.read_text().strip()
        assert cpus
        cpuset.write_text("0")  # what the fixer does with the cores Nomad reserved
        assert cpuset.read_text().strip() == "0"
    if "memory" in LAYOUT.v1:
        mem = Path(LAYOUT.v1["memory"]) / prefix / "docker" / cid
        assert (mem / "memory.limit_in_bytes").read_text().strip() == str(memory)
        if hc.get("MemorySwappiness") == 0 and (mem / "memory.swappiness").exists():
            assert (mem / "memory.swappiness").read_text().strip() == "0"

    # stats polling: Nomad streams /stats and reads these fields every collection interval
    resp = nomad.call("GET", f"/containers/{cid}/stats", _stream=True, stream="1")
    frames = []
    try:
        for line in resp.iter_lines():
            if line:
                frames.append(json.loads(line))
            if len(frames) == 2:
                break
    finally:
        resp.close()
    for s in frames:
        ms, cs = s["memory_stats"], s["cpu_stats"]
        assert ms["usage"] > 0 and ms["limit"] == memory and "max_usage" in ms
        if "memory" in LAYOUT.v1:
            assert {"rss", "cache", "swap"} <= set(ms["stats"]), sorted(ms["stats"])
        assert set(cs["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
        assert cs["cpu_usage"]["total_usage"] > 0 and cs["online_cpus"] >= 1
        assert s["precpu_stats"] is not None and "read" in s and "preread" in s
    # the task forks and reads /proc in a loop: kernel and user time both show
    def times():
        u = nomad.json("GET", f"/containers/{cid}/stats", stream="false")["cpu_stats"]["cpu_usage"]
        return u["usage_in_kernelmode"] > 0 and u["usage_in_usermode"] > 0
    assert wait_for(times, timeout=60)

    # exec (nomad alloc exec)
    code, out = nomad.exec(cid, ["sh", "-c", "cat /alloc/marker; echo $NOMAD_TASK_NAME; echo w > /local/x"])
    assert code == 0 and out.split() == [b"from-alloc", task.encode()], out
    assert (dirs["local"] / "x").read_text() == "w\n"

    # the dangling-container reconciler's list, by Nomad's label
    listed = nomad.json("GET", "/containers/json", all="1",
                        filters={"label": [f"com.hashicorp.nomad.alloc_id={alloc}"]})
    assert sorted(x["Id"] for x in listed) == sorted([pause, cid])
    assert {x["Names"][0] for x in listed} == {f"/{name}", f"/nomad_init_{alloc}"}

    # stop: kill_signal SIGINT then stop with kill_timeout (5 s); then remove with force and volumes
    assert nomad.call("POST", f"/containers/{cid}/kill", signal="SIGINT").status_code == 204
    assert nomad.json("POST", f"/containers/{cid}/wait", condition="not-running")["StatusCode"] == 0
    assert nomad.call("POST", f"/containers/{cid}/stop", t="5").status_code == 304  # already stopped
    assert nomad.call("POST", f"/containers/{pause}/stop", t="5").status_code == 204
    for x in (cid, pause):
        assert nomad.call("DELETE", f"/containers/{x}", force="true", v="true").status_code == 204
    r = nomad.call("DELETE", f"/containers/{cid}", force="true", v="true")
    assert r.status_code == 404 and "No such container" in r.json()["message"]
    wait_for(lambda: not any((Path(m) / prefix).exists() for m in LAYOUT.v1.values()))
    assert not any((Path(m) / prefix / "docker" / cid).exists() for m in LAYOUT.v1.values())
