"""Replay of what kubelet -> cri-dockerd sends the Engine API for one pod, written from
cri-dockerd's libdocker/ and core/ (field names and values, no code): RunPodSandbox (the
sandbox, "POD", NetworkMode none for CNI, shareable IPC, the pod's CgroupParent),
CreateContainer x2 (joined to the sandbox's net/ipc/pid with container:<id>, a read-only
service-account mount as Mounts with ReadOnlyNonRecursive, read-write binds, resources,
json-file logging), the reads kubelet does through it (inspect, list by label, stats),
then StopContainer / StopPodSandbox / RemoveContainer with their timeouts. The pod cgroup
/<prefix>/kubepods/burstable/pod<uid> is made by "kubelet" (the test) with the pod's memory
limit, as kubelet's cgroupfs manager does; the engine adds <parent>/<id> below it."""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for

from .conftest import LAYOUT, ROOTS, Engine, cgroup_paths

pytestmark = pytest.mark.privileged
MIB = 1024 * 1024


def _cap_sys_resource() -> bool:
    """Lowering oom_score_adj needs CAP_SYS_RESOURCE, which some sandboxes (this kind of VM) lack."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


#: kubelet's sandbox score (-998); 0 where the host cannot lower scores at all
SANDBOX_OOM = -998 if _cap_sys_resource() else 0


@pytest.fixture
def cri(busybox_daemon):
    e = Engine(busybox_daemon, "1.44")  # cri-dockerd negotiates the daemon's version
    yield e
    e.close()


def _labels(pod: str, ns: str, uid: str, **extra: str) -> dict[str, str]:
    return {"io.kubernetes.pod.name": pod, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid, **extra}


def _make_pod_cgroup(parent: str, memory_limit: int) -> None:
    """What kubelet's cgroupfs manager does before RunPodSandbox: the pod cgroup in every
    hierarchy (v1 cpuset ones with their parent's cpus/mems), the pod's memory limit on it."""
    for root in ROOTS:
        d = root
        for part in parent.strip("/").split("/"):
            d = d / part
            if not d.is_dir():
                d.mkdir()
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if (d / f).exists():
                        (d / f).write_text((d.parent / f).read_text())
    if "memory" in LAYOUT.v1:
        mem = Path(LAYOUT.v1["memory"]) / parent.strip("/")
        (mem / "memory.limit_in_bytes").write_text(str(memory_limit))


def test_pod_lifecycle_as_cri_dockerd_drives_it(prefix, cri, tmp_path):
    # -- kubelet start-up: version, info (cgroup driver must match kubelet's), the pause image
    version = cri.json("GET", "/version")
    assert version["ApiVersion"] >= "1.41"
    info = cri.json("GET", "/info")
    assert info["CgroupDriver"] == "cgroupfs"  # kubelet --cgroup-driver=cgroupfs must agree
    cri.json("GET", "/images/busybox/json")

    pod, ns, uid = "web-0", "default", str(uuid.uuid4())
    parent = f"/{prefix}/kubepods/burstable/pod{uid}"
    _make_pod_cgroup(parent, 256 * MIB)

    # -- RunPodSandbox
    sandbox_body = {
        "Hostname": pod,
        "Image": "busybox",
        "Cmd": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],  # the pause container's part
        "Labels": _labels(pod, ns, uid, **{"io.kubernetes.docker.type": "podsandbox",
                                            "io.kubernetes.container.name": "POD",
                                            "annotation.kubernetes.io/config.source": "api"}),
        "HostConfig": {
            "NetworkMode": "none",  # CNI wires the sandbox's netns afterwards
            "IpcMode": "shareable",
            "CgroupParent": parent,
            "OomScoreAdj": SANDBOX_OOM,
            "SecurityOpt": ["no-new-privileges"],
            "CpuShares": 2,
            "LogConfig": {"Type": "json-file", "Config": {}},
        },
    }
    sb = cri.create(f"k8s_POD_{pod}_{ns}_{uid}_0", sandbox_body)
    cri.json("POST", f"/containers/{sb}/start", expect=204)
    sbi = cri.inspect(sb)
    assert sbi["State"]["Running"] and sbi["State"]["Pid"] > 0
    netns = f"/proc/{sbi['State']['Pid']}/ns/net"  # what cri-dockerd hands CNI (GetNetNS)
    assert os.path.exists(netns)
    assert sbi["HostConfig"]["CgroupParent"] == parent and sbi["HostConfig"]["IpcMode"] == "shareable"
    assert sbi["HostConfig"]["OomScoreAdj"] == SANDBOX_OOM

    # -- CreateContainer x2 (app + sidecar), joined to the sandbox
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text("tok\n")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    termlog = tmp_path / "termination-log"
    termlog.write_text("")
    containers = {}
    for name, memory in (("app", 64 * MIB), ("sidecar", 32 * MIB)):
        body = {
            "Image": "busybox",
            "Entrypoint": None,
            "Cmd": ["sh", "-c", "trap 'exit 0' TERM; echo started-$HOSTNAME-$POD_NAME; while :; do sleep 1; done"],
            "Env": [f"POD_NAME={pod}", "KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443"],
            "WorkingDir": "",
            "Tty": False, "OpenStdin": False, "StdinOnce": False,
            "Labels": _labels(pod, ns, uid, **{
                "io.kubernetes.container.name": name,
                "io.kubernetes.docker.type": "container",
                "io.kubernetes.sandbox.id": sb,
                "io.kubernetes.container.logpath": f"/var/log/pods/{ns}_{pod}_{uid}/{name}/0.log",
                "annotation.io.kubernetes.container.hash": secrets.token_hex(4),
                "annotation.io.kubernetes.container.restartCount": "0",
                "annotation.io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                "annotation.io.kubernetes.container.terminationMessagePolicy": "File",
            }),
            "HostConfig": {
                "Binds": [f"{data_dir}:/data", f"{termlog}:/dev/termination-log"],
                "Mounts": [{"Type": "bind", "Source": str(sa_dir),
                            "Target": "/var/run/secrets/kubernetes.io/serviceaccount", "ReadOnly": True,
                            "BindOptions": {"Propagation": "rprivate", "ReadOnlyNonRecursive": True}}],
                "NetworkMode": f"container:{sb}",
                "IpcMode": f"container:{sb}",
                "PidMode": f"container:{sb}",  # shareProcessNamespace: true
                "CgroupParent": parent,
                "OomScoreAdj": 968,
                "Memory": memory, "MemorySwap": memory,
                "CpuShares": 102, "CpuPeriod": 100000, "CpuQuota": 50000,
                "ReadonlyRootfs": False, "Privileged": False,
                "SecurityOpt": ["no-new-privileges"],
                "LogConfig": {"Type": "json-file", "Config": {"max-size": "10Mi", "max-file": "5"}},
            },
        }
        containers[name] = cri.create(f"k8s_{name}_{pod}_{ns}_{uid}_0", body)
        cri.json("POST", f"/containers/{containers[name]}/start", expect=204)

    # -- what kubelet reads back (ContainerStatus, ListContainers, ListPodSandbox, stats)
    for name, cid in containers.items():
        c = cri.inspect(cid)
        assert c["State"]["Running"], c["State"]
        assert c["Config"]["Labels"]["io.kubernetes.sandbox.id"] == sb
        hc = c["HostConfig"]
        assert (hc["NetworkMode"], hc["IpcMode"], hc["PidMode"]) == (f"container:{sb}",) * 3
        assert hc["CgroupParent"] == parent and hc["LogConfig"]["Type"] == "json-file"
        assert c["LogPath"] and os.path.isabs(c["LogPath"])  # cri-dockerd symlinks it into /var/log/pods
        assert_kubelet_reads(c["LogPath"], f"-{pod}\n")
        rw = {m["Destination"]: m["RW"] for m in c["Mounts"]}
        assert rw["/var/run/secrets/kubernetes.io/serviceaccount"] is False and rw["/data"] is True
        assert hc["Mounts"][0]["BindOptions"]["ReadOnlyNonRecursive"] is True
        pid = c["State"]["Pid"]
        for kind in ("net", "ipc", "pid"):
            assert os.readlink(f"/proc/{pid}/ns/{kind}") == os.readlink(f"/proc/{sbi['State']['Pid']}/ns/{kind}"), kind
        paths = cgroup_paths(pid)
        mem_key = next(k for k in paths if "memory" in k.split(","))
        assert paths[mem_key] == f"{parent}/{cid}"
        assert sum(1 for p in paths.values() if p == f"{parent}/{cid}") >= 5, paths
    sandboxes = cri.json("GET", "/containers/json", all="1",
                         filters={"label": ["io.kubernetes.docker.type=podsandbox", f"io.kubernetes.pod.uid={uid}"]})
    assert [s["Id"] for s in sandboxes] == [sb]
    assert sandboxes[0]["Labels"]["io.kubernetes.container.name"] == "POD"
    members = cri.json("GET", "/containers/json", all="1",
                       filters={"label": [f"io.kubernetes.sandbox.id={sb}"], "status": ["running"]})
    assert sorted(m["Id"] for m in members) == sorted(containers.values())
    stats = cri.json("GET", f"/containers/{containers['app']}/stats", stream="false")
    assert stats["memory_stats"]["usage"] > 0 and stats["memory_stats"]["limit"] == 64 * MIB
    assert "total_inactive_file" in stats["memory_stats"]["stats"] or "inactive_file" in stats["memory_stats"]["stats"]
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] > 0

    # -- the pod's mounts and its shared IPC and process namespaces, seen from inside
    app, side = containers["app"], containers["sidecar"]
    code, out = cri.exec(app, ["sh", "-c", "cat /var/run/secrets/kubernetes.io/serviceaccount/token; "
                                           "touch /var/run/secrets/kubernetes.io/serviceaccount/x 2>/dev/null && echo rw || echo ro; "
                                           "echo hi > /data/out; echo shm > /dev/shm/pod"])
    assert code == 0 and out.split() == [b"tok", b"ro"], out
    assert (data_dir / "out").read_text() == "hi\n"
    code, out = cri.exec(side, ["sh", "-c", "cat /dev/shm/pod; ps -o comm | grep -c sleep"])
    assert code == 0 and out.split()[0] == b"shm" and int(out.split()[1]) >= 3, out  # the pod's processes

    # -- limits enforced under the parent: the sidecar's own 32 MiB, then the pod's 256 MiB
    if "memory" in LAYOUT.v1:
        mem = Path(LAYOUT.v1["memory"])
        assert (mem / parent.strip("/") / side / "memory.limit_in_bytes").read_text().strip() == str(32 * MIB)
        code, _ = cri.exec(side, ["tail", "/dev/zero"])
        assert code == 137
        oom = dict(line.split() for line in (mem / parent.strip("/") / side / "memory.oom_control").read_text().splitlines())
        assert int(oom["oom_kill"]) >= 1
        assert cri.inspect(side)["State"]["Running"]  # the OOM took the exec'd process, not the container

    # -- errors cri-dockerd matches on
    r = cri.call("GET", "/containers/k8s_nosuch_pod/json")
    assert r.status_code == 404 and "No such container" in r.json()["message"]

    # -- StopContainer (grace period 30 s), StopPodSandbox (10 s), RemoveContainer / RemovePodSandbox
    for cid in containers.values():
        r = cri.call("POST", f"/containers/{cid}/stop", t="30")
        assert r.status_code == 204, r.text
        assert cri.inspect(cid)["State"]["ExitCode"] == 0  # its TERM trap: a graceful stop
    assert cri.call("POST", f"/containers/{sb}/stop", t="10").status_code == 204
    for cid in [*containers.values(), sb]:
        assert cri.call("DELETE", f"/containers/{cid}", v="1", force="1").status_code == 204
    r = cri.call("DELETE", f"/containers/{sb}", v="1", force="1")
    assert r.status_code == 404 and "No such container" in r.json()["message"]
    # the containers' cgroups are gone; the pod cgroup is kubelet's and stays
    for root in ROOTS:
        assert (root / parent.strip("/")).is_dir()
        assert not list((root / parent.strip("/")).glob(f"{sb[:12]}*"))
        assert not [cid for cid in containers.values() if (root / parent.strip("/") / cid).exists()]


def assert_kubelet_reads(log_path: str, line_end: str) -> None:
    """What kubelet's json-file log reader (pkg/kubelet/kuberuntime/logs) does with the file
    cri-dockerd links into /var/log/pods: one JSON object a line with ``log``, ``stream`` and an
    RFC 3339 nano ``time``."""
    from datetime import datetime

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not Path(log_path).read_text():
        time.sleep(0.05)
    lines = Path(log_path).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records and set(records[0]) == {"log", "stream", "time"}, records
    first = records[0]["log"]
    assert first.startswith("started-") and first.endswith(line_end) and records[0]["stream"] == "stdout", first
    stamp = records[0]["time"]
    assert stamp.endswith("Z")
    whole, _, frac = stamp[:-1].partition(".")
    datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")  # RFC 3339, fraction of up to 9 digits
    assert frac.isdigit() and len(frac) <= 9
