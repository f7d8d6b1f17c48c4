"""``dockyard run``/``create`` flags against the docker CLI 28 itself.

1. Request bodies: both CLIs send ``create`` to a capture server on a temporary socket; the
   fields docker sets must come out the same from ours (and the same usage errors).
2. Inspect: ``dockyard create`` and ``docker create`` with the same flags on a real dockyardd;
   ``docker inspect`` shows the same Config/HostConfig for both.
3. Effects: a few runs show the flags reach the container.
"""

import http.server
import json
import os
import shlex
import socketserver
import subprocess
import sys
import threading

import pytest

pytestmark = pytest.mark.privileged

CID = "0123456789ab" * 5 + "0123"


# -- a capture server: records what a CLI sends ---------------------------------------------------


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Capture:
    """An Engine API stand-in on a Unix socket: answers ``_ping`` and ``containers/create``
    (404 "No such image" ``missing`` times first) and a pull; records every request."""

    def __init__(self, path):
        self.path, self.requests, self.missing = str(path), [], 0
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                path = "/" + path.split("/", 2)[2] if path.startswith("/v1.") else path
                capture.requests.append({"method": self.command, "path": path, "query": query,
                                         "body": json.loads(raw) if raw else None})
                status, body = 500, {"message": "not captured"}
                if path == "/_ping":
                    status, body = 200, "OK"
                elif path == "/containers/create" and capture.missing:
                    capture.missing -= 1
                    status, body = 404, {"message": "No such image: busybox:latest"}
                elif path == "/containers/create":
                    status, body = 201, {"Id": CID, "Warnings": []}
                elif path == "/images/create":
                    status, body = 200, None
                elif path == "/containers/c1/json":
                    status, body = 200, {"Id": "c1", "State": {"Running": True}, "Config": {"Tty": False}}
                elif path == "/containers/c1/exec":
                    status, body = 201, {"Id": "e1"}
                elif path == "/exec/e1/start":
                    status, body = 200, ""
                data = (b'{"status":"Pulling from library/busybox","id":"latest"}\n{"status":"Status: '
                        b'Downloaded newer image for busybox:latest"}\n') if body is None else \
                    (body.encode() if isinstance(body, str) else json.dumps(body).encode())
                self.send_response(status)
                self.send_header("Api-Version", "1.44")
                self.send_header("Ostype", "linux")
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_DELETE = _answer

        self.server = _Server(self.path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)

    def run(self, cli, *args, missing=0):
        """(CompletedProcess, the requests) of one ``cli`` ("docker" or "dockyard") command."""
        self.requests, self.missing = [], missing
        argv = ["docker"] if cli == "docker" else [sys.executable, "-m", "dockyard_cli"]
        r = subprocess.run([*argv, "-H", f"unix://{self.path}", *args], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        return r, [q for q in self.requests if q["path"] != "/_ping"]

    def create_body(self, cli, args):
        r, requests = self.run(cli, "create", *args, "busybox")
        creates = [q for q in requests if q["path"] == "/containers/create"]
        assert r.returncode == 0 and creates, f"{cli} create {args}: {r.stderr}"
        return creates[0]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    c = Capture(tmp_path_factory.mktemp("capture") / "api.sock")
    yield c
    c.close()


def _empty(value):
    return value in (None, "", 0, [], {}, False)


def _fields(body):
    """Config fields, ``HostConfig.X`` and ``Endpoint.<net>.X`` of a create body."""
    out = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    out.update({f"HostConfig.{k}": v for k, v in (body.get("HostConfig") or {}).items()})
    for net, ep in ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).items():
        out.update({f"Endpoint.{net}.{k}": v for k, v in (ep or {}).items()})
    return out


BODY_CASES = [
    "--add-host a:1.2.3.4 --add-host b=::1 --add-host c=[::2] --add-host host.docker.internal:host-gateway",
    "--dns 1.1.1.1 --dns ::ffff:1.2.3.4 --dns-search x.y --dns-search . --dns-option ndots:2 --dns-opt rotate",
    "--sysctl net.ipv4.ip_forward=1 --sysctl kernel.shmmax=1 --shm-size 64m",
    "--log-driver json-file --log-opt max-size=1m --log-opt max-file=2",
    "--log-driver none",
    "--device /dev/null --device /dev/null:/dev/xnull --device /dev/zero:r --device /dev/full:/dev/f:rw",
    "--device-cgroup-rule 'c 1:3 rwm' --device-cgroup-rule 'b *:* m' --cgroupns host --oom-score-adj 100",
    "--mac-address 92:d0:c6:0a:29:33 --domainname ex.com",
    "--link a --link b:c",
    "--network foo --link a:b --mac-address 92:d0:c6:0a:29:33 --ip 10.1.1.1 --network-alias q --net-alias r",
    "--pid host --ipc shareable --uts host --userns host --group-add 10 --group-add audio",
    "--pid container:x --cgroupns private",
    "--platform linux/amd64",
    "--memory-reservation 10m --cpu-period 100000 --cpu-quota 50000 --cpuset-mems 0 --blkio-weight 300",
    "--memory-swappiness 50 --oom-kill-disable --cpu-rt-period 1000 --cpu-rt-runtime 100",
    "--blkio-weight-device /dev/sda:300 --device-read-bps /dev/sda:1mb --device-write-bps /dev/sda:2k "
    "--device-read-iops /dev/sda:100 --device-write-iops /dev/sda:5",
    "--runtime runc --isolation default --annotation a=b --annotation c",
    "--gpus all --gpus 2 --gpus device=0,1",
    "--gpus count=2,driver=nvidia,capabilities=compute,options=a=b",
    "--storage-opt size=1G --cgroup-parent foo",
    "--ip6 2001:db8::33 --link-local-ip 169.254.1.1",
    "-a stdin", "-a stdout", "-i -a stdin -a STDOUT", "-i", "-i -t",
    "--health-start-interval 1s --health-cmd true",
    "--cap-add net_admin --cap-add CAP_CHOWN --cap-drop ALL --cap-drop chown",
    "-m 32m --memory-swap -1 --cpus 1.5 -c 512 --cpuset-cpus 0-1 --pids-limit 100 --restart on-failure:3 --init",
]


@pytest.mark.parametrize("flags", BODY_CASES)
def test_create_body_is_docker_clis(capture, flags, tmp_path):
    args = shlex.split(flags)
    docker, ours = capture.create_body("docker", args), capture.create_body("dockyard", args)
    base = _fields(capture.create_body("docker", [])["body"])
    want, got = _fields(docker["body"]), _fields(ours["body"])
    # every field docker sets beyond a bare create, and every field we set, agree
    keys = {k for k in want if want[k] != base.get(k)} | {k for k in got if not _empty(got[k])}
    differ = {k: (want.get(k), got.get(k)) for k in keys
              if want.get(k) != got.get(k) and not (_empty(want.get(k)) and _empty(got.get(k)))}
    assert not differ, differ
    assert ours["query"] == docker["query"]


def test_label_file_and_cidfile_bodies(capture, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("\ufeffa=b\n# comment\n\n  flag\nc=d=e\n")
    args = ["--label-file", str(labels), "-l", "x=y", "-l", "a=override"]
    assert capture.create_body("dockyard", args)["body"]["Labels"] == \
        capture.create_body("docker", args)["body"]["Labels"] == {"a": "override", "c": "d=e", "x": "y"}
    for cli in ("docker", "dockyard"):
        cidfile = tmp_path / f"{cli}.cid"
        body = capture.create_body(cli, ["--cidfile", str(cidfile)])["body"]
        assert body["HostConfig"]["ContainerIDFile"] == str(cidfile)
        assert cidfile.read_text() == CID
        for command, code in (("create", 1), ("run", 125)):  # an existing file: nothing is created
            r, requests = capture.run(cli, command, "--cidfile", str(cidfile), "busybox")
            assert r.returncode == code and not requests, (cli, command, r.stderr)
            assert f"container ID file found, make sure the other container isn't running or delete {cidfile}" \
                in r.stderr


BAD = [
    ("--add-host bad", 'invalid argument "bad" for "--add-host" flag: bad format for add-host: "bad"'),
    ("--add-host a:notip", 'invalid IP address in add-host: "notip"'),
    ("--dns notip", "IP address is not correctly formatted: notip"),
    ("--dns-search 1.2", "1.2 is not a valid domain"),
    ("--sysctl kernel.foo=1", "sysctl 'kernel.foo=1' is not allowed"),
    ("--link a:b:c", "bad format for links: a:b:c"),
    ("--log-driver none --log-opt a=b", "invalid logging opts for driver none"),
    ("--storage-opt size", "invalid storage option"),
    ("--memory-swappiness 101", "invalid value: 101. Valid memory swappiness range is 0-100"),
    ("--blkio-weight-device /dev/sda:5", "invalid weight for device: /dev/sda:5"),
    ("--device-read-iops /dev/sda:1k", "invalid rate for device: /dev/sda:1k."),
    ("--gpus x", 'invalid count (x): value must be either "all" or an integer'),
    ("--device rel", "rel is not an absolute path"),
    ("--device /a:/b:/c:d", "bad format for path: /a:/b:/c:d"),
    ("--device-cgroup-rule x", "invalid device cgroup format 'x'"),
    ("--cgroupns bad", "--cgroupns: invalid CGROUP mode"),
    ("--pid bad", "--pid: invalid PID mode"),
    ("--uts bad", "--uts: invalid UTS mode"),
    ("--userns private", "--userns: invalid USER mode"),
    ("--mac-address zz", "zz is not a valid mac address"),
    ("-a foo", "valid streams are STDIN, STDOUT and STDERR"),
    ("--pull bogus", "invalid pull option: 'bogus': must be one of \"always\", \"missing\" or \"never\""),
    ("--label-file /nonexistent/labels", "open /nonexistent/labels: no such file or directory"),
]


@pytest.mark.parametrize("flags,message", BAD)
def test_bad_values_are_usage_errors_in_dockers_words(capture, flags, message):
    for cli in ("docker", "dockyard"):
        r, requests = capture.run(cli, "create", *shlex.split(flags), "busybox")
        assert r.returncode == 125, (cli, r.stderr)
        assert message in r.stderr, (cli, r.stderr)
        assert not [q for q in requests if q["path"] == "/containers/create"]


def test_pull_missing_always_never_quiet(capture):
    """A 404 "No such image" pulls and creates again (``--pull missing``, the default);
    ``always`` pulls first; ``never`` does not; ``-q`` keeps the pull quiet. As docker."""
    def calls(requests):
        return [(q["method"], q["path"], sorted(q["query"].split("&"))) for q in requests]

    for args, missing in ((["--platform", "linux/amd64"], 1), (["--pull", "always"], 0), (["--pull", "never"], 1),
                          (["-q"], 1)):
        (rd, docker), (ry, ours) = (capture.run(cli, "create", *args, "busybox", missing=missing)
                                    for cli in ("docker", "dockyard"))
        assert calls(ours) == calls(docker), args
        assert (ry.returncode, ry.stdout) == (rd.returncode, rd.stdout), args
        if args == ["--pull", "never"]:
            assert rd.returncode == 1 and "No such image: busybox:latest" in ry.stderr  # create: 1
        unable = "Unable to find image 'busybox:latest' locally"
        assert (unable in ry.stderr) == (unable in rd.stderr), args
        assert ("Downloaded newer image" in ry.stderr) == ("Downloaded newer image" in rd.stderr), args


@pytest.mark.parametrize("flags", ["-d", "-d -e A=1 --env-file {env} -u 1:2 -w /tmp --privileged --detach-keys ctrl-x"])
def test_exec_body_is_docker_clis(capture, flags, tmp_path):
    env = tmp_path / "env"
    env.write_text("FROMFILE=1\n")
    bodies = {}
    for cli in ("docker", "dockyard"):
        r, requests = capture.run(cli, "exec", *shlex.split(flags.format(env=env)), "c1", "sh", "-c", "true")
        assert r.returncode == 0, r.stderr
        bodies[cli] = [(q["path"], q["body"]) for q in requests if q["method"] == "POST"]
    docker_create, ours_create = bodies["docker"][0][1], bodies["dockyard"][0][1]
    assert {k: v for k, v in ours_create.items()} == {k: v for k, v in docker_create.items() if not _empty(v)} | \
        {k: v for k, v in docker_create.items() if k.startswith("Attach") or k in ("Tty", "Privileged", "Detach")}
    assert bodies["dockyard"][1:] == bodies["docker"][1:]  # the start


def test_exec_usage_errors_exit_125(capture):
    for cli in ("docker", "dockyard"):
        assert capture.run(cli, "exec", "--no-such-flag", "c1", "true")[0].returncode == 125


# -- on a real daemon: docker inspect shows the same containers ------------------------------------


INSPECT_CASES = [
    "--add-host a:1.2.3.4 --add-host b=::1 --dns 1.1.1.1 --dns-search x.y --dns-option ndots:2 "
    "--domainname ex.com -h boat",
    "--sysctl net.ipv4.ip_forward=1 --shm-size 32m --log-driver json-file --log-opt max-size=1m --log-opt max-file=2",
    "--device /dev/null:/dev/xnull:r --device-cgroup-rule 'c 1:3 rwm' --cgroupns private --oom-score-adj 100 "
    "--group-add 10",
    "--pid host --ipc shareable --userns host --runtime native --annotation a=b",
    "-m 64m --memory-reservation 10m --cpu-period 100000 --cpu-quota 50000 --cpuset-mems 0",
    "--mac-address 92:d0:c6:0a:29:33 -i -a stdin -a stdout --cap-add net_admin --cap-drop chown",
    "--health-start-interval 1s --health-cmd true --label-file {labels} -l x=y",
    "--link {other}:db --log-driver none",
]
#: Different on every container, whoever made it.
OWN = {"Hostname", "HostConfig.ContainerIDFile"}
#: What docker CLI 28 sends when a flag is not given (ours sends nothing): the same as unset.
UNSET = {"HostConfig.MemorySwappiness": -1, "HostConfig.ConsoleSize": [0, 0]}


@pytest.mark.parametrize("flags", INSPECT_CASES)
def test_inspect_is_as_docker_creates_it(d, flags, tmp_path):
    labels = tmp_path / "labels"
    labels.write_text("a=b\nflag\n")
    other = None
    if "{other}" in flags:
        other = d.docker("create", "busybox", "true").stdout.decode().strip()
    args = shlex.split(flags.format(labels=labels, other=other))
    made = {}
    for cli in ("docker", "dockyard"):
        r = (d.docker if cli == "docker" else d.cli)("create", *args, "busybox", "sleep", "1")
        assert r.returncode == 0, f"{cli}: {r.stderr.decode()}"
        made[cli] = r.stdout.decode().strip().splitlines()[-1]
    docker_view, ours = (json.loads(d.docker("inspect", made[cli]).stdout)[0] for cli in ("docker", "dockyard"))
    want = {**{k: v for k, v in docker_view["Config"].items()},
            **{f"HostConfig.{k}": v for k, v in docker_view["HostConfig"].items()}}
    got = {**{k: v for k, v in ours["Config"].items()}, **{f"HostConfig.{k}": v for k, v in ours["HostConfig"].items()}}
    for view in (want, got):
        view.update({k: None for k, v in UNSET.items() if view.get(k) == v})
    differ = {k: (want.get(k), got.get(k)) for k in set(want) | set(got)
              if k not in OWN and want.get(k) != got.get(k) and not (_empty(want.get(k)) and _empty(got.get(k)))}
    assert not differ, differ


@pytest.mark.parametrize("flags,message", [
    ("--gpus all", 'could not select device driver "" with capabilities: [[gpu]]'),
    ("--storage-opt size=1G", "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"),
    ("--ipc host --sysctl kernel.shmmax=1", "sysctl 'kernel.shmmax' is not allowed in the hosts ipc namespace"),
    ("--runtime nosuch", "unknown or invalid runtime name: nosuch"),
])
def test_refusals_are_the_daemons(d, flags, message):
    """What the daemon refuses is sent anyway: the message is the daemon's, for both CLIs."""
    for command in ("create", "run"):
        rd, ry = (cli(command, *shlex.split(flags), "busybox", "true") for cli in (d.docker, d.cli))
        assert ry.returncode == rd.returncode == (1 if command == "create" else 125), (rd.stderr, ry.stderr)
        assert f"Error response from daemon: {message}" in ry.stderr.decode() and message in rd.stderr.decode()


# -- effects ----------------------------------------------------------------------------------------


def ok(d, *args):
    r = d.cli(*args)
    assert r.returncode == 0, f"dockyard {' '.join(args)}: {r.stderr.decode()}"
    return r.stdout.decode()


def test_run_flags_reach_the_container(d):
    out = ok(d, "run", "--rm", "--add-host", "db.example:10.9.8.7", "--sysctl", "net.ipv4.ip_forward=1",
             "--device", "/dev/null:/dev/xnull", "--shm-size", "8m", "--domainname", "ex.com", "--group-add", "1234",
             "busybox", "sh", "-c", "grep db.example /etc/hosts; cat /proc/sys/net/ipv4/ip_forward; "
             "test -c /dev/xnull && echo x > /dev/xnull && echo dev-ok; df -k /dev/shm | tail -1; "
             "cat /proc/sys/kernel/domainname; id -G")
    lines = out.splitlines()
    assert lines[0].split() == ["10.9.8.7", "db.example"]
    assert lines[1:3] == ["1", "dev-ok"]
    assert lines[3].split()[1] == "8192"
    assert lines[4] == "ex.com"
    assert "1234" in lines[5].split()


def test_pid_container_shares_the_process_table(d):
    first = ok(d, "run", "-d", "busybox", "sleep", "300").strip()
    out = ok(d, "run", "--rm", "--pid", f"container:{first}", "busybox", "ps", "-o", "args")
    assert "sleep 300" in out


def test_cidfile_quiet_and_attach(d, tmp_path):
    cidfile = tmp_path / "cid"
    cid = ok(d, "run", "-d", "--cidfile", str(cidfile), "busybox", "true").strip()
    assert cidfile.read_text() == cid
    r = d.cli("run", "--cidfile", str(cidfile), "busybox", "true")
    assert r.returncode == 125 and b"container ID file found" in r.stderr
    # -q: nothing about pulling; --pull never on a missing image is docker's 125 and no pull
    r = d.cli("run", "--rm", "-q", "--pull", "never", "busybox", "echo", "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"hi\n", b"")
    r = d.cli("run", "--rm", "--pull", "never", "no-such-image-here", "true")
    assert r.returncode == 125 and b"No such image" in r.stderr and b"Unable to find" not in r.stderr
    # -a stdout: stderr is not attached
    r = d.cli("run", "--rm", "-a", "stdout", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"out\n", b"")
    for run in (d.cli, d.docker):
        r = run("run", "-d", "-a", "stdout", "busybox", "true")
        assert r.returncode == 1 and b"conflicting options: cannot specify both --attach and --detach" in r.stderr
