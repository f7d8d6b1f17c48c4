"""Log drivers: json-file writes Docker's exact on-disk format at inspect's LogPath (the file
cri-dockerd links for kubelet, tail -f and node log agents read), rotation, reading back with
docker logs, the shim writing while the daemon is down; daemon log-driver/log-opts defaults and
the drivers refused with a 400 that names them. (journald and the conformance of every driver:
tests/conformance/test_logging.py.)"""

import gzip
import json
import re
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from dockyard.testing.daemon import wait_for
from dockyard.testing.jsonlog_corpus import CORPUS

pytestmark = pytest.mark.privileged

# Go's time.RFC3339Nano in UTC: the fraction without trailing zeros (none when 0)
RFC3339NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z$")


def ok(d, *args):
    r = d.docker(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode(errors="replace")


def inspect(d, name):
    return json.loads(ok(d, "inspect", name))[0]


def records(path: Path) -> list[dict]:
    lines = path.read_bytes().splitlines(keepends=True)
    assert all(line.endswith(b"\n") for line in lines)
    return [json.loads(line) for line in lines]


def test_json_file_format_streams_time_and_16k_partial_lines(d):
    ok(d, "run", "--name", "jf", "--log-driver", "json-file", "busybox", "sh", "-c",
       'echo a; echo b >&2; printf "%20000s" x')
    info = inspect(d, "jf")
    path = Path(info["LogPath"])
    assert path.name == f"{info['Id']}-json.log" and path.parent.name == info["Id"]
    assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
    recs = records(path)
    assert [sorted(r) for r in recs] == [["log", "stream", "time"]] * len(recs)
    assert all(RFC3339NANO.match(r["time"]) for r in recs), [r["time"] for r in recs]
    out = [r for r in recs if r["stream"] == "stdout"]
    err = [r for r in recs if r["stream"] == "stderr"]
    assert err == [{"log": "b\n", "stream": "stderr", "time": err[0]["time"]}]
    assert out[0]["log"] == "a\n"
    # the 20000-byte line: one 16 KiB partial record, then the rest (no newline: also partial)
    assert [len(r["log"]) for r in out[1:]] == [16384, 20000 - 16384]
    assert "".join(r["log"] for r in out[1:]) == " " * 19999 + "x"
    # docker logs joins the partial records again
    r = d.docker("logs", "jf")
    assert r.stdout == b"a\n" + b" " * 19999 + b"x" and r.stderr == b"b\n"




def test_json_file_escaping_is_gos(d, tmp_path):
    """The exact bytes the shim writes for each line of the corpus (raw file bytes, not json.loads)."""
    corpus = tmp_path / "corpus"
    corpus.write_bytes(b"".join(raw for raw, _ in CORPUS))
    ok(d, "run", "--name", "jesc", "-v", f"{corpus}:/corpus:ro", "busybox", "cat", "/corpus")
    lines = Path(inspect(d, "jesc")["LogPath"]).read_bytes().splitlines()
    assert len(lines) == len(CORPUS)
    for line, (raw, want) in zip(lines, CORPUS):
        m = re.match(rb'^\{"log":(".*"),"stream":"stdout","time":"([^"]+)"\}$', line)
        assert m, line
        assert m.group(1).decode() == want, raw
        assert RFC3339NANO.match(m.group(2).decode())


def test_tail_f_reads_while_the_container_writes(d):
    ok(d, "run", "-d", "--name", "jtail", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); sleep 0.05; done")
    path = Path(inspect(d, "jtail")["LogPath"])
    wait_for(lambda: path.exists() and path.stat().st_size > 0)
    tail = subprocess.Popen(["tail", "-n", "+1", "-f", str(path)], stdout=subprocess.PIPE)
    try:
        got: list[dict] = []

        def read():
            for line in tail.stdout:
                got.append(json.loads(line))
                if len(got) >= 5:
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(60)  # a bound, not a timing: the lines come while the container still runs
        assert [r["log"] for r in got[:5]] == [f"line{i}\n" for i in range(5)]
        assert inspect(d, "jtail")["State"]["Running"]
    finally:
        tail.kill()
        tail.wait()


def test_rotation_max_size_max_file_and_logs_in_order(d):
    ok(d, "run", "--name", "jrot", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done")
    path = Path(inspect(d, "jrot")["LogPath"])
    files = sorted(p.name for p in path.parent.glob(path.name + "*"))
    assert files == [path.name, path.name + ".1", path.name + ".2"]
    for p in path.parent.glob(path.name + "*"):
        recs = records(p)
        assert p.stat().st_size < 1024 + 100  # rotated once at or over 1k (as Docker: before a write)
        assert all(r["stream"] == "stdout" for r in recs)
    out = ok(d, "logs", "jrot").splitlines()
    assert out[-1] == "line299"
    first = int(out[0][4:])
    assert out == [f"line{i}" for i in range(first, 300)] and first > 0  # the oldest were rotated away
    assert ok(d, "logs", "--tail", "2", "jrot") == "line298\nline299\n"


def test_rotation_compress_gzips_rotated_files(d):
    ok(d, "run", "--name", "jgz", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt", "compress=true",
       "busybox", "sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done")
    path = Path(inspect(d, "jgz")["LogPath"])
    names = sorted(p.name for p in path.parent.glob(path.name + "*"))
    assert names == [path.name, path.name + ".1.gz", path.name + ".2.gz"]  # as Docker names them
    older = gzip.decompress(Path(f"{path}.2.gz").read_bytes()) + gzip.decompress(Path(f"{path}.1.gz").read_bytes())
    logs = [json.loads(line)["log"] for line in (older + path.read_bytes()).splitlines()]
    out = ok(d, "logs", "jgz")
    assert out == "".join(logs) and out.endswith("line299\n")
    first = int(out.split("\n")[0][4:])
    assert out == "".join(f"line{i}\n" for i in range(first, 300)) and first > 0


def test_logs_since_tail_timestamps(d):
    ok(d, "run", "--name", "jts", "busybox", "sh", "-c", "echo one; echo two >&2; echo three")
    recs = records(Path(inspect(d, "jts")["LogPath"]))
    r = d.docker("logs", "-t", "jts")
    stamped = r.stdout.decode().splitlines()
    assert [s.split(" ", 1)[1] for s in stamped] == ["one", "three"] and r.stderr.decode().split(" ", 1)[1] == "two\n"
    # docker logs -t shows the time each record of the file holds
    out_times = [x["time"] for x in recs if x["stream"] == "stdout"]
    assert [s.split(" ", 1)[0][:19] for s in stamped] == [t[:19] for t in out_times]
    r = d.docker("logs", "--tail", "1", "jts")  # the last record of the file, whichever stream
    assert r.stdout + r.stderr == recs[-1]["log"].encode()
    assert ok(d, "logs", "--since", "2000-01-01T00:00:00Z", "jts") == "one\nthree\n"
    assert ok(d, "logs", "--since", "2999-01-01T00:00:00Z", "jts") == ""
    assert ok(d, "logs", "--until", "2000-01-01T00:00:00Z", "jts") == ""


def test_logs_keep_being_written_while_the_daemon_is_killed(d):
    ok(d, "run", "-d", "--name", "jlive", "busybox", "sh", "-c",
       "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done")
    path = Path(inspect(d, "jlive")["LogPath"])
    wait_for(lambda: path.exists() and b"tick1\\n" in path.read_bytes())
    d.kill()  # kill -9: the shim is the writer and keeps going
    try:
        size = path.stat().st_size
        wait_for(lambda: path.stat().st_size > size + 200)
    finally:
        d.start()
    assert inspect(d, "jlive")["State"]["Running"]
    logs = ok(d, "logs", "jlive").splitlines()
    n = len(logs)
    assert logs == [f"tick{i}" for i in range(n)]  # nothing lost or doubled across the kill
    wait_for(lambda: len(ok(d, "logs", "jlive").splitlines()) > n)  # and after the restart
    ok(d, "rm", "-f", "jlive")


def test_local_and_none_drivers(d):
    ok(d, "run", "--name", "jloc", "--log-driver", "local", "busybox", "sh", "-c", "echo loc; echo err >&2")
    info = inspect(d, "jloc")
    assert info["LogPath"] == ""  # as Docker: the local driver's file is no API
    assert not list((d.data_root / "containers" / info["Id"]).glob("*-json.log"))
    r = d.docker("logs", "jloc")
    assert r.stdout == b"loc\n" and r.stderr == b"err\n"
    r = d.docker("run", "--rm", "--log-driver", "none", "busybox", "echo", "attached")
    assert r.returncode == 0 and r.stdout == b"attached\n"  # attach still works
    ok(d, "run", "--name", "jnone", "--log-driver", "none", "busybox", "echo", "x")
    r = d.docker("logs", "jnone")
    assert r.returncode != 0 and b"does not support reading" in r.stderr


def test_unsupported_drivers_and_options_are_a_400_naming_them(d):
    for driver in ("fluentd", "gelf", "nosuch"):  # not registered in dockyard.logging: Docker's text
        r = d.docker("run", "--rm", "--log-driver", driver, "busybox", "true")
        assert r.returncode != 0 and f"logger: no log driver named '{driver}' is registered".encode() in r.stderr
    r = d.docker("run", "--rm", "--log-opt", "compress=true", "--log-opt", "max-file=1", "busybox", "true")
    assert r.returncode != 0 and b"compress cannot be true when max-file is less than 2" in r.stderr
    r = d.docker("run", "--rm", "--log-opt", "compress=maybe", "busybox", "true")
    assert r.returncode != 0 and b"error parsing compress log option" in r.stderr
    r = d.docker("run", "--rm", "--log-driver", "local", "--log-opt", "compress=true", "busybox", "true")
    assert r.returncode != 0 and b"compress=true is not supported by the local log driver" in r.stderr
    r = d.docker("run", "--rm", "--log-opt", "labels=a", "busybox", "true")
    assert r.returncode != 0 and b"unknown log opt 'labels' for json-file log driver" in r.stderr
    assert d.docker("ps", "-aq").stdout == b""


def test_daemon_log_driver_and_log_opts_defaults(make_daemon, busybox_tar, tmp_path):
    dd = make_daemon("--log-driver", "local", "--log-opt", "max-size=2k", "--log-opt", "max-file=2")
    dd.load(busybox_tar)
    ok(dd, "run", "--name", "dl", "busybox", "echo", "hi")
    info = inspect(dd, "dl")
    assert info["HostConfig"]["LogConfig"]["Type"] == "local"
    assert ok(dd, "logs", "dl") == "hi\n"
    ok(dd, "run", "--name", "dj", "--log-driver", "json-file", "busybox", "sh", "-c",
       "i=0; while [ $i -lt 300 ]; do echo line$i; i=$((i+1)); done")
    path = Path(inspect(dd, "dj")["LogPath"])
    assert sorted(p.name for p in path.parent.glob(path.name + "*")) == [path.name, path.name + ".1"]
    assert ok(dd, "logs", "--tail", "1", "dj") == "line299\n"
    ok(dd, "rm", "-f", "dl", "dj")
    bad = make_daemon("--log-driver", "fluentd", base=tmp_path / "bad", start=False)
    with pytest.raises(RuntimeError, match="no log driver named 'fluentd' is registered"):
        bad.start(timeout=30)


def test_info_lists_exactly_the_registered_log_drivers(d, make_daemon, busybox_tar):
    """Plugins.Log is the dockyard.logging registry: a driver blocked by name is neither listed nor usable."""
    info = json.loads(ok(d, "info", "--format", "{{json .}}"))
    assert info["Plugins"]["Log"] == ["journald", "json-file", "local", "none", "syslog"]
    assert info["LoggingDriver"] == "json-file"
    status, body = d.request("GET", "/info")
    assert status == 200
    loaded = {p["Name"]: p["Capabilities"] for p in json.loads(body)["DockyardPlugins"]
              if p["Group"] == "dockyard.logging"}
    assert loaded == {"journald": ["ForwardedLogs", "ReadableLogs"], "json-file": ["ReadableLogs"],
                      "local": ["ReadableLogs"], "none": [], "syslog": []}  # checked once when they loaded
    dd = make_daemon("--log-driver", "local", env={"DOCKYARD_DISABLE_PLUGINS": "journald"})
    info = json.loads(ok(dd, "info", "--format", "{{json .}}"))
    assert info["Plugins"]["Log"] == ["json-file", "local", "none", "syslog"] and info["LoggingDriver"] == "local"
    dd.load(busybox_tar)
    r = dd.docker("run", "--rm", "--log-driver", "journald", "busybox", "true")
    assert r.returncode != 0 and b"logger: no log driver named 'journald' is registered" in r.stderr


def test_journald_without_a_journal_fails_the_start(make_daemon, busybox_tar, tmp_path):
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[plugins.journald]\nsocket = "{tmp_path / "nobody"}"\n')
    dd = make_daemon("--config-file", str(cfg))
    dd.load(busybox_tar)
    r = dd.docker("run", "--rm", "--log-driver", "journald", "busybox", "true")
    assert r.returncode != 0 and b"journald is not enabled on this host" in r.stderr, r.stderr
    assert dd.docker("ps", "-aq").stdout == b""  # --rm: nothing left


# -- syslog: one datagram a line, sent by the shim (Docker's formats) ------------------------------


def receive(sock, n):
    sock.settimeout(60)  # a bound, not a timing
    return [sock.recv(65536) for _ in range(n)]


def test_syslog_unix_socket_rfc5424(d, tmp_path):
    path = tmp_path / "log.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        r = d.docker("run", "--name", "sl", "--log-driver", "syslog", "--log-opt", f"syslog-address=unixgram://{path}",
                     "--log-opt", "syslog-format=rfc5424", "--log-opt", "tag={{.Name}}/x",
                     "--log-opt", "syslog-facility=local3", "busybox", "sh", "-c", "echo one; echo two >&2")
        assert r.returncode == 0 and r.stdout == b"one\n" and r.stderr == b"two\n"  # attach still works
        msgs = sorted(receive(s, 2))
    # <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG; local3 = 19: info 158 (stdout), err 155 (stderr)
    pat = re.compile(rb"^<(\d+)>1 (\S+) (\S+) sl/x (\d+) sl/x - (.*)$")
    got = [pat.match(m) for m in msgs]
    assert all(got), msgs
    assert sorted((int(m.group(1)), m.group(5)) for m in got) == [(155, b"two"), (158, b"one")]
    assert all(re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$", m.group(2)) for m in got)
    assert got[0].group(3) == socket.gethostname().encode()
    r = d.docker("logs", "sl")
    assert r.returncode != 0 and b"configured logging driver does not support reading" in r.stderr


def test_syslog_udp_default_format_and_daemon_down(d):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        cid = ok(d, "run", "-d", "--name", "slu", "--log-driver", "syslog", "--log-opt",
                 f"syslog-address=udp://127.0.0.1:{port}", "busybox", "sh", "-c",
                 "echo hello; i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done").strip()
        first = receive(s, 2)
        # Docker's default (srslog's UnixFormatter): <PRI>Mmm _d hh:mm:ss TAG[PID]: MSG, tag = 12-char ID
        m = re.match(rb"^<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ([0-9a-f]{12})\[\d+\]: hello$", first[0])
        assert m and m.group(1) == cid[:12].encode(), first
        assert first[1].endswith(b": tick0")
        d.kill()  # kill -9: the shim is the sender and keeps going
        try:
            during = receive(s, 3)
        finally:
            d.start()
        n = [int(x.rsplit(b"tick", 1)[1]) for x in during]
        assert n == list(range(n[0], n[0] + 3))
        ok(d, "rm", "-f", "slu")


def test_syslog_refusals(d, tmp_path):
    r = d.docker("run", "--rm", "--log-driver", "syslog", "--log-opt",
                 f"syslog-address=unixgram://{tmp_path / 'nobody-listens'}", "busybox", "true")
    assert r.returncode != 0 and b"syslog" in r.stderr  # as Docker: no receiver, no start
    for opt, text in (("syslog-address=tcp://127.0.0.1:514", b"tcp:// is not supported"),
                      ("syslog-address=foo://x", b"unsupported scheme: 'foo'"),
                      ("syslog-format=json", b"Invalid syslog format"),
                      ("syslog-facility=nope", b"invalid syslog facility value"),
                      ("max-size=1m", b"unknown log opt 'max-size' for syslog log driver")):
        r = d.docker("run", "--rm", "--log-driver", "syslog", "--log-opt", opt, "busybox", "true")
        assert r.returncode != 0 and text in r.stderr, (opt, r.stderr)
    assert d.docker("ps", "-aq").stdout == b""


def test_restart_appends_and_stream_selection(d, client):
    ok(d, "run", "--name", "jre", "busybox", "sh", "-c", "echo out; echo err >&2")
    r = d.docker("start", "-a", "jre")
    assert r.returncode == 0, r.stderr
    recs = records(Path(inspect(d, "jre")["LogPath"]))
    assert sorted((x["stream"], x["log"]) for x in recs) == [("stderr", "err\n")] * 2 + [("stdout", "out\n")] * 2
    c = client.containers.get("jre")
    assert c.logs(stdout=True, stderr=False) == b"out\nout\n"
    assert c.logs(stdout=False, stderr=True) == b"err\nerr\n"
    stamped = c.logs(stdout=True, stderr=False, timestamps=True).decode().splitlines()
    assert [s.split(" ", 1)[0][:19] for s in stamped] == [x["time"][:19] for x in recs if x["stream"] == "stdout"]


def test_follow_joins_partial_records(d):
    ok(d, "run", "-d", "--name", "jfol", "busybox", "sh", "-c", 'printf "%20000s\\n" x; echo after; sleep 600')
    follower = subprocess.Popen(["docker", "-H", d.url, "logs", "-f", "jfol"], stdout=subprocess.PIPE,
                                env={**d.env, "DOCKER_CONFIG": str(d.base / "docker-config")})
    try:
        got: list[bytes] = []

        def read():
            for line in follower.stdout:
                got.append(line)
                if line == b"after\n":
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(60)  # a bound, not a timing
        assert got == [b" " * 19999 + b"x\n", b"after\n"]
    finally:
        follower.kill()
        follower.wait()
        ok(d, "rm", "-f", "jfol")


def _escape_corpus() -> bytes:
    """Long runs of plain text, NULs and control bytes, and every byte that needs a look
    (\\ " < > & \\r \\n, UTF-8, invalid UTF-8, U+2028) at every offset modulo 8: the shim copies
    plain bytes 8 at a time and escapes from a table."""
    import random

    rnd = random.Random(18)
    special = [b"\\", b'"', b"<", b">", b"&", b"\r", b"\n", b"\x00", b"\x1f", b"\x7f", b"\x80", b"\xff",
               "é".encode(), "€".encode(), "\U0001f600".encode(), b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\xed\xa0\x80"]
    out = [b"a" * 40000, b"\x00" * 40000, b"\x01\x02" * 1000, b"plain text line\n" * 500]
    for sp in special:
        for k in range(16):
            out.append(b"abcdefghijklmnop"[:k] + sp + b"xyz" * rnd.randint(0, 5))
    out += [bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 300))) for _ in range(300)]
    return b"".join(out)


def test_json_file_escaping_of_long_runs_and_every_alignment(d, tmp_path):
    """The shim's json-file strings against the Python reference (go_json_string, checked
    against Go's rules by the corpus) for long runs and special bytes at every alignment."""
    from dockyard.runtime.logfile import go_json_string

    data = _escape_corpus()
    (tmp_path / "data").write_bytes(data)
    ok(d, "run", "--name", "jesc8", "-v", f"{tmp_path / 'data'}:/data:ro", "busybox", "cat", "/data")
    want, rest = [], data
    while rest:  # the shim's records: a line, or 16 KiB of one
        nl = rest.find(b"\n")
        take = min(nl + 1 if nl >= 0 else len(rest), 16384)
        want.append(go_json_string(rest[:take]))
        rest = rest[take:]
    lines = Path(inspect(d, "jesc8")["LogPath"]).read_bytes().splitlines()
    got = [re.match(rb'^\{"log":(".*"),"stream":"stdout","time":"[^"]+"\}$', line).group(1).decode() for line in lines]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g == w


def test_logs_of_a_line_longer_than_a_frame_piece(d, client):
    """3 MiB without a newline (json-file keeps it as 16 KiB partial records): the logs come
    back whole, the timestamp once, in frames of about 1 MiB (not one 3 MiB frame built in
    memory), for both log formats."""
    for driver in ("json-file", "local"):
        name = f"jlong-{driver}"
        ok(d, "run", "--name", name, "--log-driver", driver, "busybox", "sh", "-c",
           "head -c 3145728 /dev/zero | tr '\\0' y; echo; echo after")
        c = client.containers.get(name)
        assert c.logs() == b"y" * 3145728 + b"\nafter\n"
        stamped = c.logs(timestamps=True)
        stamp, rest = stamped.split(b" ", 1)
        assert re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$", stamp), stamp
        assert rest.startswith(b"y" * 3145728 + b"\n") and rest.count(b"Z ") == 1
        frames = list(c.logs(stream=True))
        assert b"".join(frames) == b"y" * 3145728 + b"\nafter\n"
        assert len(frames) >= 3 and max(len(f) for f in frames) <= (1 << 20) + 131072
        tail = c.logs(tail=1)
        assert tail == b"after\n"
