"""The oci runtime driver on a real daemon: ``--runtime runc`` runs under runc (its state in
runc's --root, runc in the process tree), with the native shim monitoring (logs, exit codes,
stop, exec), and ``docker info`` lists runc only when it is really there."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")]


@pytest.fixture(scope="module")
def d(tmp_path_factory, busybox_tar):
    from dockyard.testing.daemon import DaemonProcess

    daemon = DaemonProcess(tmp_path_factory.mktemp("oci"))
    daemon.start()
    daemon.load(busybox_tar)
    yield daemon
    for cid in daemon.docker("ps", "-aq").stdout.decode().split():
        daemon.docker("rm", "-f", cid)
    daemon.finish()


def run(d, *args, ok=True):
    r = d.docker(*args)
    if ok:
        assert r.returncode == 0, r.stderr.decode()
    return r


def runc_root(d) -> Path:
    roots = list(Path(d.base).rglob("oci-state"))
    assert len(roots) == 1, roots
    return roots[0]


def runc_state(d, cid):
    r = subprocess.run(["runc", "--root", str(runc_root(d)), "state", cid], capture_output=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_info_lists_runc_when_available(d):
    info = json.loads(run(d, "info", "--format", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == "native"
    assert set(info["Runtimes"]) == {"native", "runc"}
    assert info["Runtimes"]["runc"]["path"] == shutil.which("runc")


def test_run_prints_and_exit_codes(d):
    assert run(d, "run", "--rm", "--runtime", "runc", "busybox", "echo", "hi").stdout == b"hi\n"
    r = run(d, "run", "--rm", "--runtime", "runc", "busybox", "sh", "-c", "echo err >&2; exit 3", ok=False)
    assert r.returncode == 3 and r.stderr == b"err\n"
    cid = run(d, "run", "-d", "--runtime", "runc", "busybox", "sh", "-c",
              "echo out; echo err >&2; exit 7").stdout.decode().strip()
    assert run(d, "wait", cid).stdout == b"7\n"
    logs = run(d, "logs", cid)
    assert logs.stdout == b"out\n" and logs.stderr == b"err\n"
    state = json.loads(run(d, "inspect", cid).stdout)[0]
    assert state["HostConfig"]["Runtime"] == "runc" and state["State"]["ExitCode"] == 7
    run(d, "rm", cid)


def test_container_runs_under_runc(d):
    cid = run(d, "run", "-d", "--runtime", "runc", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        st = runc_state(d, cid)
        assert st is not None and st["status"] == "running"
        pid = json.loads(run(d, "inspect", cid).stdout)[0]["State"]["Pid"]
        assert st["pid"] == pid
        # the container's init is a child of runc, itself the child of dockyard's shim
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        parent = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")
        assert Path(parent[0].decode()).name == "runc" and b"run" in parent
        # the cgroup is the daemon's: runc put the process there
        assert cid in Path(f"/proc/{pid}/cgroup").read_text()
        # seccomp filter and the default capabilities
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Seccomp:\t2" in status
        assert "CapBnd:\t00000000a80425fb" in status
        r = run(d, "stop", "-t", "1", cid)
        assert r.stdout.decode().strip() == cid
        assert json.loads(run(d, "inspect", cid).stdout)[0]["State"]["ExitCode"] == 137
        assert runc_state(d, cid) is None  # runc forgot it
    finally:
        run(d, "rm", "-f", cid)


def test_exec_and_stop(d):
    cid = run(d, "run", "-d", "--runtime", "runc", "--name", "ocix", "busybox", "sh", "-c",
              "trap 'exit 0' TERM; while true; do sleep 0.1; done").stdout.decode().strip()
    try:
        assert run(d, "exec", cid, "cat", "/etc/hostname").stdout.decode().strip() == cid[:12]
        r = run(d, "exec", cid, "sh", "-c", "exit 5", ok=False)
        assert r.returncode == 5
        r = run(d, "exec", cid, "nosuchcmd", ok=False)  # docker's CLI prints this one on stdout
        assert r.returncode == 127 and b'exec: "nosuchcmd": executable file not found' in r.stdout + r.stderr
        run(d, "stop", cid)
        assert json.loads(run(d, "inspect", cid).stdout)[0]["State"]["ExitCode"] == 0
        # restart: runc's record of the earlier run is gone, it runs again
        run(d, "start", cid)
        assert runc_state(d, cid)["status"] == "running"
    finally:
        run(d, "rm", "-f", cid)


def test_start_failure_is_dockers_error(d):
    r = run(d, "run", "--rm", "--runtime", "runc", "busybox", "nosuchcmd", ok=False)
    assert r.returncode == 127 and b"executable file not found" in r.stderr


def test_runtime_unknown_is_refused(d):
    r = run(d, "run", "--rm", "--runtime", "nosuch", "busybox", "true", ok=False)
    assert r.returncode != 0 and b"unknown or invalid runtime name: nosuch" in r.stderr


def test_info_without_the_plugin_lists_native_only(make_daemon, busybox_tar):
    d2 = make_daemon(env={"DOCKYARD_DISABLE_PLUGINS": "oci"})
    info = json.loads(d2.docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert set(info) == {"native"}
    d2.load(busybox_tar)
    r = d2.docker("run", "--rm", "--runtime", "runc", "busybox", "true")
    assert r.returncode != 0 and b"runtime runc is not available (install dockyard-oci-runtime)" in r.stderr


def test_tty_and_exec_tty(d):
    r = run(d, "run", "--rm", "-t", "--runtime", "runc", "busybox", "tty")
    assert r.stdout.startswith(b"/dev/pts/")
    cid = run(d, "run", "-d", "--runtime", "runc", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        assert run(d, "exec", "-t", cid, "tty").stdout.startswith(b"/dev/pts/")
        assert run(d, "exec", cid, "sh", "-c", "tty || true").stdout == b"not a tty\n"
    finally:
        run(d, "rm", "-f", cid)


def test_privileged_gets_what_the_daemon_has(d):
    own = next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("CapPrm:"))
    r = run(d, "run", "--rm", "--runtime", "runc", "--privileged", "busybox", "grep", "CapBnd", "/proc/self/status")
    assert r.stdout.split()[1].decode() == own
    r = run(d, "run", "--rm", "--runtime", "runc", "--read-only", "--cap-drop", "ALL", "--user", "1000:1000",
            "busybox", "sh", "-c", "id -u; grep CapEff /proc/self/status; touch /x", ok=False)
    assert r.stdout == b"1000\nCapEff:\t0000000000000000\n" and b"Read-only file system" in r.stderr


def test_live_restore_keeps_a_runc_container(make_daemon, busybox_tar, tmp_path):
    d2 = make_daemon("--live-restore")
    d2.load(busybox_tar)
    cid = run(d2, "run", "-d", "--runtime", "runc", "busybox", "sh", "-c",
              "echo before; sleep 300").stdout.decode().strip()
    pid = json.loads(run(d2, "inspect", cid).stdout)[0]["State"]["Pid"]
    d2.stop()
    assert Path(f"/proc/{pid}").exists()  # runc and its container outlive the daemon
    d2.start()
    state = json.loads(run(d2, "inspect", cid).stdout)[0]["State"]
    assert state["Status"] == "running" and state["Pid"] == pid
    assert run(d2, "exec", cid, "echo", "after").stdout == b"after\n"
    assert run(d2, "logs", cid).stdout == b"before\n"
    run(d2, "kill", cid)
    assert run(d2, "wait", cid).stdout == b"137\n"
    run(d2, "rm", cid)


def test_runtimes_key_names_more_binaries(make_daemon, busybox_tar, tmp_path):
    conf = tmp_path / "dockyardd.toml"
    conf.write_text(f'[runtimes.myrunc]\npath = "{shutil.which("runc")}"\n')
    d2 = make_daemon("--config-file", str(conf))
    info = json.loads(d2.docker("info", "--format", "{{json .Runtimes}}").stdout)
    assert set(info) == {"native", "runc", "myrunc"}
    d2.load(busybox_tar)
    assert run(d2, "run", "--rm", "--runtime", "myrunc", "busybox", "echo", "mine").stdout == b"mine\n"


def test_oom_kill_is_recorded(d):
    """runc removes the cgroup before the exit is recorded: the driver's own OOM watch says it."""
    r = run(d, "run", "--runtime", "runc", "--name", "ocioom", "-m", "32m", "busybox",
            "dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1", ok=False)
    try:
        assert r.returncode == 137
        assert json.loads(run(d, "inspect", "ocioom").stdout)[0]["State"]["OOMKilled"] is True
    finally:
        run(d, "rm", "-f", "ocioom")


@pytest.mark.skipif(not Path("/dev/loop-control").exists(), reason="no /dev/loop-control")
def test_device_permissions_are_the_cgroups_drivers(d):
    """runc rewrites the devices cgroup: it is given the driver's list, so ':r' stays read-only
    and --device-cgroup-rule still allows its device."""
    r = run(d, "run", "--rm", "--runtime", "runc", "--device", "/dev/loop-control:/dev/xloop:r", "busybox", "sh", "-c",
            "(exec 3</dev/xloop) && echo read-ok; (exec 3>/dev/xloop) && echo write-ok", ok=False)
    assert r.stdout == b"read-ok\n" and b"Operation not permitted" in r.stderr
    st = Path("/dev/loop-control").stat()
    major, minor = st.st_rdev >> 8, st.st_rdev & 0xff
    r = run(d, "run", "--rm", "--runtime", "runc", "--device-cgroup-rule", f"c {major}:{minor} rw", "busybox", "sh",
            "-c", f"mknod /dev/lc c {major} {minor} 2>/dev/null; (exec 3</dev/lc) && echo opened", ok=False)
    assert b"opened" in r.stdout, r.stderr


def test_cgroupfs_is_read_only(d):
    r = run(d, "run", "--rm", "--runtime", "runc", "busybox", "sh", "-c",
            "touch /sys/fs/cgroup/x; touch /sys/fs/cgroup/memory/x; echo done", ok=False)
    assert r.stdout == b"done\n" and r.stderr.count(b"Read-only file system") == 2, r.stderr


def named_hierarchies() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if " - cgroup " in line and "name=" in line.rsplit(" ", 1)[-1]]


def test_removal_leaves_nothing_in_named_hierarchies(tmp_path, busybox_tar):
    """runc makes the container's cgroup path in ``name=systemd`` too, which our cgroups driver
    does not manage: once the last container is gone, none of that path is left there."""
    from dockyard.testing.daemon import DaemonProcess

    if not named_hierarchies():
        pytest.skip("no named cgroup v1 hierarchy on this host")
    daemon = DaemonProcess(tmp_path / "d").start()
    try:
        daemon.load(busybox_tar)
        cid = run(daemon, "run", "-d", "--runtime", "runc", "busybox", "sleep", "60").stdout.decode().strip()
        parents = {p.parent for root in named_hierarchies() for p in Path(root).glob(f"*/{cid}")}
        assert parents, "runc made no cgroup in a named hierarchy: nothing to check"
        run(daemon, "rm", "-f", cid)
        assert [p for p in parents if p.exists()] == []
    finally:
        daemon.finish()
