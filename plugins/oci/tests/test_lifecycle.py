"""The same lifecycle, as the docker CLI sees it, under the native runtime and under runc: each
test runs once per runtime (``--runtime native`` / ``--runtime runc`` on one daemon) and asserts
the same results; under runc the container's init is also checked to be runc's child.

A bounded subset of tests/integration for CI. The whole integration suite runs under runc with
``DOCKYARD_TEST_DAEMON_ARGS="--runtime oci"`` (see this plugin's README: known differences)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for

pytestmark = [pytest.mark.privileged,
              pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")]

RUNTIMES = ["native", "runc"]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, busybox_tar):
    from dockyard.testing.daemon import DaemonProcess

    d = DaemonProcess(tmp_path_factory.mktemp("oci-lifecycle"))
    d.start()
    d.load(busybox_tar)
    yield d
    d.finish()


@pytest.fixture(params=RUNTIMES)
def rt(request, daemon):
    """The runtime name under test; every container the test made is removed afterwards."""
    yield request.param
    ids = daemon.docker("ps", "-aq", "--no-trunc").stdout.decode().split()
    if ids:
        daemon.docker("rm", "-fv", *ids)


def dk(d, *args, ok=True, **kw):
    r = d.docker(*args, **kw)
    if ok:
        assert r.returncode == 0, (args, r.stderr.decode())
    return r


def run_d(d, rt, *args) -> str:
    return dk(d, "run", "-d", "--runtime", rt, *args).stdout.decode().strip()


def inspect(d, cid) -> dict:
    return json.loads(dk(d, "inspect", cid).stdout)[0]


def parent_name(pid: int) -> str:
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return Path(Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")[0].decode()).name


def check_runtime(d, rt, cid) -> None:
    """The container runs under the runtime it names: runc's child under runc, not under native."""
    state = inspect(d, cid)
    assert state["HostConfig"]["Runtime"] == rt and state["State"]["Running"]
    assert (parent_name(state["State"]["Pid"]) == "runc") == (rt == "runc")


def test_run_exit_codes_and_logs(daemon, rt):
    d = daemon
    assert dk(d, "run", "--rm", "--runtime", rt, "busybox", "echo", "hi").stdout == b"hi\n"
    r = dk(d, "run", "--rm", "--runtime", rt, "busybox", "sh", "-c", "echo err >&2; exit 3", ok=False)
    assert r.returncode == 3 and r.stderr == b"err\n"
    cid = run_d(d, rt, "busybox", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert dk(d, "wait", cid).stdout == b"7\n"
    logs = dk(d, "logs", cid)
    assert logs.stdout == b"out\n" and logs.stderr == b"err\n"
    assert inspect(d, cid)["State"]["ExitCode"] == 7
    r = dk(d, "run", "--rm", "--runtime", rt, "busybox", "no-such-command", ok=False)
    assert r.returncode == 127 and b"no-such-command" in r.stderr


def test_stdin_pipe(daemon, rt):
    r = dk(daemon, "run", "--rm", "-i", "--runtime", rt, "busybox", "sh", "-c", "cat; echo done", input=b"a\nb\n")
    assert r.stdout == b"a\nb\ndone\n"


def test_stop_kill_restart(daemon, rt):
    d = daemon
    graceful = run_d(d, rt, "busybox", "sh", "-c", 'trap "exit 5" TERM; while :; do sleep 0.1; done')
    check_runtime(d, rt, graceful)
    dk(d, "stop", "-t", "30", graceful)
    assert inspect(d, graceful)["State"]["ExitCode"] == 5
    stubborn = run_d(d, rt, "busybox", "sh", "-c", 'trap "" TERM; while :; do sleep 0.1; done')
    dk(d, "stop", "-t", "1", stubborn)  # SIGTERM ignored: SIGKILL after the timeout
    assert inspect(d, stubborn)["State"]["ExitCode"] == 137
    sleeper = run_d(d, rt, "busybox", "sleep", "300")
    dk(d, "kill", sleeper)
    assert dk(d, "wait", sleeper).stdout == b"137\n"
    dk(d, "start", sleeper)
    pid1 = inspect(d, sleeper)["State"]["Pid"]
    dk(d, "restart", "-t", "0", sleeper)
    check_runtime(d, rt, sleeper)
    assert inspect(d, sleeper)["State"]["Pid"] != pid1
    dk(d, "rm", "-f", sleeper)
    assert dk(d, "ps", "-aq", "--filter", f"id={sleeper}").stdout == b""


def test_restart_policy(daemon, rt):
    d = daemon
    cid = run_d(d, rt, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1")
    wait_for(lambda: (s := inspect(d, cid))["RestartCount"] == 2 and not s["State"]["Running"]
             and not s["State"]["Restarting"])
    assert dk(d, "logs", cid).stdout == b"run\n" * 3


def test_exec(daemon, rt):
    d = daemon
    cid = run_d(d, rt, "-e", "A=1", "busybox", "sleep", "300")
    r = dk(d, "exec", "-u", "nobody", "-w", "/tmp", "-e", "B=2", cid, "sh", "-c", "echo $A $B; pwd; id -u; exit 4",
           ok=False)
    assert r.returncode == 4 and r.stdout.decode().split() == ["1", "2", "/tmp", "65534"]
    assert dk(d, "exec", "-i", cid, "cat", input=b"piped\n").stdout == b"piped\n"
    r = dk(d, "exec", cid, "no-such-command", ok=False)
    assert r.returncode == 127
    # an exec sees the container's pid namespace: its init is pid 1
    assert dk(d, "exec", cid, "cat", "/proc/1/cmdline").stdout == b"sleep\x00300\x00"


def test_pause_unpause_and_stats(daemon, rt):
    d = daemon
    cid = run_d(d, rt, "busybox", "sh", "-c", "while :; do sleep 0.1; done")
    dk(d, "pause", cid)
    assert inspect(d, cid)["State"]["Status"] == "paused"
    assert dk(d, "exec", cid, "true", ok=False).returncode != 0  # as Docker: no exec while paused
    dk(d, "unpause", cid)
    assert inspect(d, cid)["State"]["Status"] == "running"
    dk(d, "exec", cid, "true")
    stats = json.loads(dk(d, "stats", "--no-stream", "--format", "{{json .}}", cid).stdout)
    assert stats["ID"].startswith(cid[:12]) and stats["PIDs"] != "0"


def test_health_check(daemon, rt):
    d = daemon
    cid = run_d(d, rt, "--health-cmd", "test -e /tmp/ok", "--health-interval", "1s", "--health-retries", "1",
                "busybox", "sh", "-c", "touch /tmp/ok; sleep 300")
    wait_for(lambda: inspect(d, cid)["State"]["Health"]["Status"] == "healthy")
    dk(d, "exec", cid, "rm", "/tmp/ok")
    wait_for(lambda: inspect(d, cid)["State"]["Health"]["Status"] == "unhealthy")


def test_tty_run(daemon, rt):
    d = daemon
    cid = run_d(d, rt, "-t", "busybox", "sh", "-c", "sleep 0.5; stty size; tty")
    assert dk(d, "wait", cid).stdout == b"0\n"
    lines = dk(d, "logs", cid).stdout.replace(b"\r", b"").split(b"\n")
    assert lines[1].startswith(b"/dev/pts/")


def test_default_runtime_oci_runs_under_runc(make_daemon, busybox_tar):
    """``--runtime oci`` (or ``--default-runtime oci``): containers without --runtime run under runc."""
    d = make_daemon("--runtime", "oci")
    d.load(busybox_tar)
    info = json.loads(dk(d, "info", "--format", "{{json .}}").stdout)
    assert info["DefaultRuntime"] == "oci" and "runc" in info["Runtimes"]
    cid = dk(d, "run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        state = inspect(d, cid)
        assert parent_name(state["State"]["Pid"]) == "runc"
        r = subprocess.run(["runc", "--root", str(next(Path(d.base).rglob("oci-state"))), "state", cid],
                           capture_output=True)
        assert r.returncode == 0 and json.loads(r.stdout)["status"] == "running"
    finally:
        dk(d, "rm", "-f", cid)


def test_default_runtime_runc_is_the_oci_drivers_name(make_daemon, busybox_tar, tmp_path):
    """``--default-runtime runc`` (dockerd's spelling): runc is a name the oci driver serves, not a
    driver; containers get it as HostConfig.Runtime and run under runc; ``default-runtime`` in the
    config file names one of its ``runtimes`` the same way; an unknown name is refused naming both."""
    d = make_daemon("--default-runtime", "runc")
    d.load(busybox_tar)
    assert dk(d, "info", "--format", "{{.DefaultRuntime}}").stdout == b"runc\n"
    cid = dk(d, "run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        check_runtime(d, "runc", cid)
    finally:
        dk(d, "rm", "-f", cid)
    conf = tmp_path / "dockyardd.toml"
    conf.write_text(f'default-runtime = "myrunc"\n[runtimes.myrunc]\npath = "{shutil.which("runc")}"\n')
    d2 = make_daemon("--config-file", str(conf))
    d2.load(busybox_tar)
    assert dk(d2, "info", "--format", "{{.DefaultRuntime}}").stdout == b"myrunc\n"
    cid = dk(d2, "run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
    try:
        state = inspect(d2, cid)
        assert state["HostConfig"]["Runtime"] == "myrunc" and parent_name(state["State"]["Pid"]) == "runc"
    finally:
        dk(d2, "rm", "-f", cid)


def test_default_runtime_unknown_name_is_refused(make_daemon):
    d = make_daemon("--default-runtime", "nosuch", start=False)
    with pytest.raises(RuntimeError, match="exited") as exc:
        d.start()
    msg = str(exc.value)
    assert "default runtime 'nosuch' is neither an installed runtime driver nor a runtime name one serves" in msg
    assert "installed runtime drivers: " in msg and "runtime names served: oci, runc" in msg


@pytest.fixture
def tree(tmp_path):
    """<tmp>/src with a tmpfs submount at src/sub holding a file."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dyk-oci-sub", str(src / "sub")], check=True)
    try:
        (src / "sub" / "inner.txt").write_text("inner")
        yield src
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=True)


def test_read_only_binds_recursive_or_not(daemon, rt, tree):
    """Read-only binds are recursive (runc: "rro"); bind-recursive=writable is the top only."""
    probe = ("touch /data/new 2>/dev/null && echo top-rw || echo top-ro; "
             "touch /data/sub/new 2>/dev/null && echo sub-rw || echo sub-ro; cat /data/sub/inner.txt")
    for opts, want in ((",readonly", ["top-ro", "sub-ro", "inner"]),
                       (",readonly,bind-recursive=writable", ["top-ro", "sub-rw", "inner"]),
                       ("", ["top-rw", "sub-rw", "inner"])):
        r = dk(daemon, "run", "--rm", "--runtime", rt, "--network", "none",
               "--mount", f"type=bind,src={tree},dst=/data{opts}", "busybox", "sh", "-c", probe)
        assert r.stdout.decode().split() == want, opts


def test_init_failure_is_reported_as_native_does(daemon, rt):
    """A failure in runc's init (nsexec) is named, not runc's "can't get final child's PID"."""
    with open("/proc/self/status") as f:
        cap_sys_resource = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16) & (1 << 24)
    r = dk(daemon, "run", "--rm", "--runtime", rt, "--oom-score-adj", "-500", "busybox", "cat",
           "/proc/self/oom_score_adj", ok=False)
    if cap_sys_resource:
        assert (r.returncode, r.stdout) == (0, b"-500\n"), r.stderr
    else:
        assert r.returncode != 0 and b"error during container init: oom_score_adj -500: permission denied" \
            in r.stderr, r.stderr
