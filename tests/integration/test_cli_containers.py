"""The ``dockyard`` CLI's container commands against a real dockyardd (busybox loaded), plus
unit tests of the pure pieces: the frame demuxer, flag -> API body translation, formulas."""

import json
import signal
import subprocess
import sys
import tarfile
import threading
import time

import click
import pytest

from dockyard.testing.daemon import wait_for

from dockyard_cli import containers as C
from dockyard_cli.streams import Demuxer, copy_output, demux, frame

pytestmark = pytest.mark.privileged


def ids(d):
    return set(d.cli("ps", "-aq", "--no-trunc").stdout.decode().split())


@pytest.fixture
def d(busybox_daemon):
    """The shared daemon; every container a test makes is removed afterwards."""
    before = ids(busybox_daemon)
    procs = []
    busybox_daemon.procs = procs
    yield busybox_daemon
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for cid in ids(busybox_daemon) - before:
        busybox_daemon.cli("rm", "-f", cid)


def ok(d, *args):
    r = d.cli(*args)
    assert r.returncode == 0, f"dockyard {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode()


def popen(d, *args):
    p = subprocess.Popen([sys.executable, "-m", "dockyard_cli", "-H", d.url, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=d.env)
    d.procs.append(p)
    return p


LOOP = "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done"


# -- run --------------------------------------------------------------------------------------


def test_run_rm_splits_streams_and_propagates_exit_code(d):
    before = ids(d)
    r = d.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"out\n" and r.stderr == b"err\n"
    assert ids(d) == before  # --rm removed it


def test_run_tty_is_raw_on_stdout(d):
    r = d.cli("run", "--rm", "-t", "busybox", "sh", "-c", "echo tty >&2; exit 2")
    assert r.returncode == 2
    assert r.stdout.replace(b"\r\n", b"\n") == b"tty\n" and r.stderr == b""


def test_run_flags_reach_the_container(d):
    r = d.cli("run", "--rm", "--ulimit", "nofile=1024:2048", "--pids-limit", "50", "-m", "32m", "--cpus", "0.5",
              "-e", "A=1", "-w", "/tmp", "-u", "1000", "-h", "boat", "--entrypoint", "sh", "busybox",
              "-c", "ulimit -n; ulimit -Hn; echo $A; pwd; id -u; hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["1024", "2048", "1", "/tmp", "1000", "boat"]


def test_run_forwards_signals(d):
    p = popen(d, "run", "--rm", "busybox", "sh", "-c",
              "trap 'echo got INT; exit 7' INT; echo ready; while true; do sleep 0.1; done")
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=30) == 7
    assert p.stdout.read() == b"got INT\n"


def test_run_detached_ps_logs_stop_rm(d):
    cid = ok(d, "run", "-d", "--name", "cli-web", "-l", "tier=web", "busybox", "sh", "-c", LOOP).strip()
    assert len(cid) == 64
    table = ok(d, "ps").splitlines()
    for column in ("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"):
        assert column in table[0]
    row = next(line for line in table if line.startswith(cid[:12]))
    assert '"sh -c trap \'echo by…"' in row and " ago " in row and "Up " in row and row.endswith("cli-web")

    assert ok(d, "ps", "-q", "--filter", "name=cli-web").split() == [cid[:12]]
    assert ok(d, "ps", "-q", "-f", "label=tier=web", "--no-trunc").split() == [cid]
    assert ok(d, "ps", "-q", "-f", "label=tier=db") == ""
    assert ok(d, "ps", "--format", "{{.Names}} {{.State}}", "-f", "id=" + cid) == "cli-web running\n"
    rows = [json.loads(line) for line in ok(d, "ps", "--format", "json", "-f", "name=cli-web").splitlines()]
    assert [(r["ID"], r["Names"], r["State"], r["Labels"]) for r in rows] == [(cid[:12], "cli-web", "running", "tier=web")]
    assert rows[0]["Command"].startswith('"sh -c')

    wait_for(lambda: b"ready" in d.cli("logs", "cli-web").stdout)
    follower = popen(d, "logs", "-f", "cli-web")
    assert ok(d, "stop", "cli-web") == "cli-web\n"
    out, _ = follower.communicate(timeout=30)
    assert follower.returncode == 0 and out == b"ready\nbye\n"  # -f ends when the container does
    assert ok(d, "logs", "cli-web") == "ready\nbye\n"
    assert ok(d, "ps", "-q", "-f", "name=cli-web") == ""
    assert ok(d, "ps", "-aq", "-f", "status=exited", "-f", "name=cli-web") == cid[:12] + "\n"
    assert cid[:12] in ok(d, "ps", "-l", "-q")
    assert ok(d, "rm", "cli-web") == "cli-web\n"
    r = d.cli("inspect", "cli-web")
    assert r.returncode == 1 and b"No such object: cli-web" in r.stderr and json.loads(r.stdout) == []


def test_logs_follow_streams_live(d):
    ok(d, "run", "-d", "--name", "cli-live", "busybox", "sh", "-c", LOOP)
    wait_for(lambda: b"ready" in d.cli("logs", "cli-live").stdout)
    follower = popen(d, "logs", "-f", "cli-live")
    first = []
    reader = threading.Thread(target=lambda: first.append(follower.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)  # the first line must come while the container still runs (a bound, not a timing)
    live = list(first)
    ok(d, "stop", "cli-live")
    follower.wait(timeout=30)
    assert live == [b"ready\n"]


def test_create_start_attach_and_inspect(d):
    cid = ok(d, "create", "--name", "cli-created", "busybox", "sh", "-c", "echo created; echo oops >&2; exit 4").strip()
    assert ok(d, "inspect", "-f", "{{.State.Status}}", "cli-created") == "created\n"
    data = json.loads(ok(d, "container", "inspect", cid))
    assert data[0]["Id"] == cid and data[0]["Name"] == "/cli-created"
    r = d.cli("start", "-a", "cli-created")
    assert r.returncode == 4, r.stderr
    assert r.stdout == b"created\n" and r.stderr == b"oops\n"
    assert ok(d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}", cid) == "exited 4 false\n"


# -- the other verbs --------------------------------------------------------------------------


def test_rename_pause_unpause_top_stats_diff(d):
    ok(d, "run", "-d", "--name", "cli-busy", "-m", "64m", "busybox", "sh", "-c", "touch /newfile; " + LOOP)
    wait_for(lambda: b"ready" in d.cli("logs", "cli-busy").stdout)
    assert ok(d, "rename", "cli-busy", "cli-renamed") == ""
    assert ok(d, "inspect", "-f", "{{.Name}}", "cli-renamed") == "/cli-renamed\n"

    assert ok(d, "pause", "cli-renamed") == "cli-renamed\n"
    assert ok(d, "inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cli-renamed") == "paused true\n"
    assert "(Paused)" in ok(d, "ps", "-f", "name=cli-renamed")
    assert ok(d, "unpause", "cli-renamed") == "cli-renamed\n"
    assert ok(d, "inspect", "-f", "{{.State.Status}}", "cli-renamed") == "running\n"

    top = ok(d, "top", "cli-renamed").splitlines()
    assert "PID" in top[0].split() and any("sh -c" in line for line in top[1:])
    assert "PID" in ok(d, "top", "cli-renamed", "-o", "pid,comm").split()

    lines = ok(d, "stats", "--no-stream", "cli-renamed").splitlines()
    assert [c.strip() for c in lines[0].split("   ") if c.strip()] == [
        "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]
    assert len(lines) == 2 and "cli-renamed" in lines[1]
    fields = ok(d, "stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}",
                "cli-renamed").strip().split("|")
    assert fields[0].endswith("%") and fields[1].endswith(" / 64MiB") and fields[2].endswith("%")
    assert int(fields[3]) >= 1

    assert "A /newfile" in ok(d, "diff", "cli-renamed").splitlines()
    assert ok(d, "container", "rm", "-f", "cli-renamed") == "cli-renamed\n"


def test_wait_kill_restart_prune(d):
    ok(d, "run", "-d", "--name", "cli-five", "busybox", "sh", "-c", "exit 5")
    assert ok(d, "wait", "cli-five") == "5\n"

    ok(d, "run", "-d", "--name", "cli-sig", "busybox", "sh", "-c",
       "trap 'echo usr1; exit 9' USR1; echo ready; while true; do sleep 0.1; done")
    wait_for(lambda: b"ready" in d.cli("logs", "cli-sig").stdout)
    assert ok(d, "kill", "-s", "USR1", "cli-sig") == "cli-sig\n"
    assert ok(d, "wait", "cli-sig") == "9\n"
    assert ok(d, "logs", "cli-sig") == "ready\nusr1\n"

    started = ok(d, "inspect", "-f", "{{.State.StartedAt}}", "cli-sig")
    assert ok(d, "restart", "-t", "1", "cli-sig") == "cli-sig\n"
    assert ok(d, "inspect", "-f", "{{.State.Status}}", "cli-sig") == "running\n"
    assert ok(d, "inspect", "-f", "{{.State.StartedAt}}", "cli-sig") != started
    assert ok(d, "kill", "cli-sig") == "cli-sig\n"
    ok(d, "wait", "cli-sig")

    out = ok(d, "container", "prune", "-f")
    assert out.startswith("Deleted Containers:\n") and "Total reclaimed space:" in out
    assert ok(d, "ps", "-aq", "-f", "name=cli-five") == "" and ok(d, "ps", "-aq", "-f", "name=cli-sig") == ""


# -- errors ---------------------------------------------------------------------------------


def test_errors_and_exit_codes(d):
    r = d.cli("run", "--rm", "--pull", "never", "no-such-image-here")  # never: no pull from the Hub
    assert r.returncode == 125 and b"No such image" in r.stderr

    before = ids(d)
    r = d.cli("run", "--rm", "busybox", "no-such-command")
    assert r.returncode == 127 and b"executable file not found" in r.stderr
    assert ids(d) == before

    r = d.cli("run", "--no-such-flag", "busybox")
    assert r.returncode == 125

    ok(d, "run", "-d", "--name", "cli-running", "busybox", "sh", "-c", LOOP)
    r = d.cli("rm", "cli-running")
    assert r.returncode != 0
    assert b"Error response from daemon: You cannot remove a running container" in r.stderr
    assert b"Stop the container before attempting removal or force remove" in r.stderr
    assert ok(d, "rm", "-f", "cli-running") == "cli-running\n"

    r = d.cli("stop", "no-such-container")
    assert r.returncode == 1 and b"No such container: no-such-container" in r.stderr


# -- unit tests: pure functions ----------------------------------------------------------------


def test_demux_whole_partial_and_split_frames():
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"")
    frames, rest = demux(data + frame(1, b"partial")[:10])
    assert frames == [(1, b"out\n"), (2, b"err\n"), (1, b"")]
    assert rest == frame(1, b"partial")[:10]
    assert demux(b"\x01\x00\x00")[0] == []
    assert frame(2, b"ab") == b"\x02\x00\x00\x00\x00\x00\x00\x02ab"

    big = frame(1, b"x" * 70000) + frame(2, b"tail")
    dm, got = Demuxer(), []
    for i in range(0, len(big), 7):  # byte dribbles across every boundary
        got += dm.feed(big[i:i + 7])
    assert got == [(1, b"x" * 70000), (2, b"tail")] and dm.rest == b""


def test_copy_output_routes_streams():
    import io

    outs = {1: io.BytesIO(), 2: io.BytesIO()}
    data = frame(1, b"a") + frame(2, b"b") + frame(1, b"c")
    copy_output([data[:5], data[5:]], True, out=lambda s: outs[s])
    assert outs[1].getvalue() == b"ac" and outs[2].getvalue() == b"b"
    outs = {1: io.BytesIO(), 2: io.BytesIO()}
    copy_output([b"raw", b" tty"], False, out=lambda s: outs[s])
    assert outs[1].getvalue() == b"raw tty" and outs[2].getvalue() == b""


def test_create_body_translates_flags():
    body = C.create_body("busybox", ["echo", "hi"], {
        "name": "x", "env": ("A=1", "FROM_HOST", "UNSET"), "workdir": "/w", "user": "1000:1000",
        "memory": "32m", "memory_swap": "-1", "cpus": 1.5, "cpu_shares": 512, "cpuset_cpus": "0-1",
        "pids_limit": 100, "restart": "on-failure:3", "init": True, "read_only": True,
        "ulimit": ("nofile=1024:2048", "nproc=64"), "cap_add": ("NET_ADMIN",), "cap_drop": ("ALL",),
        "privileged": False, "hostname": "boat", "label": ("a=b", "flag"), "entrypoint": "sh", "tty": True,
        "security_opt": ("no-new-privileges",), "stop_signal": "SIGUSR1", "stop_timeout": 3, "network": "none",
    }, attach=True, environ={"FROM_HOST": "h"})
    assert body == {
        "Image": "busybox", "Cmd": ["echo", "hi"], "Entrypoint": ["sh"], "Env": ["A=1", "FROM_HOST=h"],
        "WorkingDir": "/w", "User": "1000:1000", "Hostname": "boat", "StopSignal": "SIGUSR1", "StopTimeout": 3,
        "Labels": {"a": "b", "flag": ""}, "Tty": True, "OpenStdin": False, "StdinOnce": False,
        "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
        "HostConfig": {
            "Memory": 32 * 1024 * 1024, "MemorySwap": -1, "NanoCpus": 1_500_000_000, "CpuShares": 512,
            "CpusetCpus": "0-1", "PidsLimit": 100, "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "Init": True, "ReadonlyRootfs": True,
            "Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}, {"Name": "nproc", "Soft": 64, "Hard": 64}],
            "CapAdd": ["CAP_NET_ADMIN"], "CapDrop": ["ALL"], "SecurityOpt": ["no-new-privileges"], "NetworkMode": "none",
        },
    }
    minimal = C.create_body("busybox", [], {"rm": True, "entrypoint": ""})
    assert minimal["Cmd"] is None and minimal["Entrypoint"] == [] and minimal["HostConfig"] == {"AutoRemove": True}
    assert minimal["AttachStdout"] is False


@pytest.mark.parametrize("opts", [
    {"memory": "lots"}, {"ulimit": ("nofile",)}, {"ulimit": ("nofile=10:5",)}, {"restart": "sometimes"},
    {"restart": "always:3"}, {"rm": True, "restart": "always"}, {"env": ("=x",)},
])
def test_create_body_rejects_bad_flags(opts):
    with pytest.raises(click.UsageError):
        C.create_body("busybox", [], opts)


def test_start_exit_codes_and_times():
    assert C.start_exit_code('exec: "x": executable file not found in $PATH: unknown') == 127
    assert C.start_exit_code('exec: "/x": stat /x: no such file or directory') == 127
    assert C.start_exit_code('exec: "/etc": permission denied') == 126
    assert C.start_exit_code("cgroup trouble") == 125
    assert C.to_unix("1700000000.5") == "1700000000.5"
    assert float(C.to_unix("1h30m", now=10000.0)) == 10000.0 - 5400
    assert float(C.to_unix("2023-11-14T22:13:20Z")) == 1700000000
    assert float(C.to_unix("2023-11-14T22:13:20.123456789+00:00")) == pytest.approx(1700000000.123456)
    with pytest.raises(click.BadParameter):
        C.to_unix("yesterday")


def test_stats_formulas_and_ps_row():
    s = {
        "id": "a" * 64, "name": "/web",
        "cpu_stats": {"cpu_usage": {"total_usage": 400}, "system_cpu_usage": 2000, "online_cpus": 4},
        "precpu_stats": {"cpu_usage": {"total_usage": 200}, "system_cpu_usage": 1000},
        "memory_stats": {"usage": 3 << 20, "limit": 8 << 20, "stats": {"cache": 1 << 20}},
        "pids_stats": {"current": 3},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 1500}, {"op": "write", "value": 2}]},
    }
    assert C.cpu_percent(s) == pytest.approx(80.0)  # (200/1000) * 4 CPUs * 100
    row = C.stats_row(s)
    assert row == {"ID": "a" * 12, "Container": "a" * 12, "Name": "web", "CPUPerc": "80.00%",
                   "MemUsage": "2MiB / 8MiB", "MemPerc": "25.00%", "NetIO": "0B / 0B",
                   "BlockIO": "1.5kB / 2B", "PIDs": "3"}
    assert C.memory_used({"usage": 1000, "stats": {"inactive_file": 300}}) == 700  # cgroup v2
    assert C.memory_used({"usage": 1000}) == 1000

    c = {"Id": "b" * 64, "Names": ["/web"], "Image": "busybox", "Command": "sh -c 'while true; do sleep 1; done'",
         "Created": 1000, "State": "running", "Status": "Up 5 seconds", "Labels": {"b": "2", "a": "1"}}
    r = C.ps_row(c, now=1005)
    assert r["ID"] == "b" * 12 and r["Command"] == '"sh -c \'while true; …"' and r["RunningFor"] == "5 seconds ago"
    assert r["Names"] == "web" and r["Labels"] == "a=1,b=2"
    assert C.ps_row(c, no_trunc=True, now=1005)["Command"] == json.dumps(c["Command"])
    assert C.render("{{.State.Running}} {{json .Labels}} {{.Args}}",
                    {"State": {"Running": True}, "Labels": {"a": "1"}, "Args": ["-c", "x"]}) == 'true {"a":"1"} [-c x]'


def test_cp_export_commit(d, tmp_path):
    ok(d, "run", "-d", "--name", "cli-files", "busybox", "sh", "-c", "mkdir /data; echo inside > /data/f; sleep 60")
    # the file may exist before the echo has written it: wait for its content
    wait_for(lambda: d.cli("cp", "cli-files:/data/f", str(tmp_path / "f")).returncode == 0
             and (tmp_path / "f").read_text() == "inside\n")
    ok(d, "cp", "cli-files:/data", str(tmp_path))  # a directory into an existing directory
    assert (tmp_path / "data" / "f").read_text() == "inside\n"
    (tmp_path / "up.txt").write_text("from the host\n")
    ok(d, "cp", str(tmp_path / "up.txt"), "cli-files:/data/")
    ok(d, "cp", str(tmp_path / "up.txt"), "cli-files:/renamed.txt")
    ok(d, "cp", "cli-files:/renamed.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "from the host\n"
    r = d.cli("cp", "cli-files:/nope", str(tmp_path))
    assert r.returncode != 0 and b"Could not find the file /nope" in r.stderr
    ok(d, "export", "-o", str(tmp_path / "fs.tar"), "cli-files")
    with tarfile.open(tmp_path / "fs.tar") as t:
        assert "data/up.txt" in t.getnames() and "bin/busybox" in t.getnames()
    image_id = ok(d, "commit", "-c", 'CMD ["cat", "/data/up.txt"]', "cli-files", "cli-committed:1").strip()
    assert image_id.startswith("sha256:")
    assert ok(d, "run", "--rm", "cli-committed:1") == "from the host\n"
    ok(d, "rm", "-f", "cli-files")
    ok(d, "rmi", "cli-committed:1")
