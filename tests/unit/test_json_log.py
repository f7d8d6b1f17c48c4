"""json-file logs (Docker's on-disk format): the escaping reference against Go's rules written
out by hand, the spec keys the shim reads, and the reader (rotated files, partial records,
a line the writer is still writing)."""

from __future__ import annotations

import asyncio
import gzip
import json

from dockyard.drivers.runtime import ContainerSpec
from dockyard.runtime import spec as specmod
from dockyard.testing.jsonlog_corpus import CORPUS
from dockyard.runtime.logfile import STDERR, STDOUT, JsonLogReader, go_json_string, parse_rfc3339_ns



def test_escaping_matches_gos_rules():
    for raw, want in CORPUS:
        assert go_json_string(raw) == want, raw
        json.loads(want)  # and it is JSON


def test_rfc3339nano_parsing():
    assert parse_rfc3339_ns("1970-01-01T00:00:01Z") == 1_000_000_000
    assert parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339_ns("2026-12-06T08:00:00.123456789Z") % 1_000_000_000 == 123456789


def test_spec_names_the_json_log_only_when_asked(tmp_path):
    spec = ContainerSpec(id="c1", rootfs=tmp_path, args=["true"])
    kw = dict(state_dir=tmp_path, log_path=tmp_path / "l", exit_path=tmp_path / "e", init_path="/init")
    assert b"json_log_path" not in specmod.build(spec, **kw)
    spec.json_log_path, spec.json_log_max_size, spec.json_log_max_files = tmp_path / "c1-json.log", 1024, 3
    data = specmod.build(spec, **kw)
    assert str(tmp_path / "c1-json.log").encode() in data and b"json_log_max_size" in data


def rec(log: str, stream: str = "stdout", t: str = "2026-12-06T08:00:00.5Z") -> bytes:
    return json.dumps({"log": log, "stream": stream, "time": t}, separators=(",", ":")).encode() + b"\n"


def test_reader_rotated_files_partials_and_a_line_being_written(tmp_path):
    p = tmp_path / "c-json.log"
    (tmp_path / "c-json.log.2").write_bytes(rec("one\n", t="2026-12-06T08:00:01Z"))
    (tmp_path / "c-json.log.1").write_bytes(rec("tw", t="2026-12-06T08:00:02Z") + rec("o\n", t="2026-12-06T08:00:02Z")
                                            + rec("err\n", "stderr", "2026-12-06T08:00:03Z"))
    p.write_bytes(rec("three\n", t="2026-12-06T08:00:04Z") + rec("four\n")[:10])  # the writer is mid-line
    r = JsonLogReader(p)
    assert [x.name for x in r.files()] == ["c-json.log.2", "c-json.log.1", "c-json.log"]
    lines = list(r.lines())
    assert [(x.stream, x.data) for x in lines] == [(STDOUT, b"one\n"), (STDOUT, b"two\n"), (STDERR, b"err\n"),
                                                   (STDOUT, b"three\n")]
    assert [x.data for x in r.tail(2)] == [b"err\n", b"three\n"]
    since = parse_rfc3339_ns("2026-12-06T08:00:03Z")
    assert [x.data for x in r.lines(since)] == [b"err\n", b"three\n"]

    async def follow():
        (tmp_path / "exit").write_text("0 0 0\n")
        out = []
        async for x in JsonLogReader(p, tmp_path / "exit").follow(tail=1):
            out.append(x.data)
        return out

    assert asyncio.run(follow()) == [b"three\n"]


def test_reader_reads_compressed_rotated_files(tmp_path):
    p = tmp_path / "c-json.log"
    (tmp_path / "c-json.log.2.gz").write_bytes(gzip.compress(rec("one\n")))
    (tmp_path / "c-json.log.1.gz").write_bytes(b"half-written by gzip")  # the plain file beside it wins
    (tmp_path / "c-json.log.1").write_bytes(rec("two\n"))
    p.write_bytes(rec("three\n"))
    r = JsonLogReader(p)
    assert [x.name for x in r.files()] == ["c-json.log.2.gz", "c-json.log.1", "c-json.log"]
    assert [x.data for x in r.lines()] == [b"one\n", b"two\n", b"three\n"]


def test_daemon_config_log_driver_key(tmp_path):
    import pytest

    from dockyard import config as cfg
    from dockyard.errors import ConfigError

    assert cfg.build({}, None).log_driver == "json-file"
    f = tmp_path / "d.toml"
    f.write_text('log-driver = "syslog"\n[log-opts]\nsyslog-address = "udp://127.0.0.1:514"\n')
    c = cfg.build({}, f)
    assert c.log_driver == "syslog" and c.log_opts == {"syslog-address": "udp://127.0.0.1:514"}
    f.write_text('log-driver = "journald"\n')  # registered in dockyard.logging
    assert cfg.build({}, f).log_driver == "journald"
    f.write_text('log-driver = "fluentd"\n')
    with pytest.raises(ConfigError, match="no log driver named 'fluentd' is registered"):
        cfg.build({}, f)


def test_syslog_options():
    import pytest

    from dockyard.containers import syslog
    from dockyard.errors import InvalidArgument

    class C:
        id, name, image, image_id = "ab" * 32, "/web", "busybox", "sha256:" + "cd" * 32

    assert syslog.spec_fields({}, C) == {"proto": "unix", "path": "/dev/log", "facility": 3, "format": "",
                                         "tag": "ab" * 6}
    got = syslog.spec_fields({"syslog-address": "udp://[::1]:5514", "syslog-facility": "local7",
                              "syslog-format": "rfc5424micro", "tag": "{{.Name}}:{{.ImageName}}:{{.ImageID}}"}, C)
    assert got == {"proto": "udp6", "host": "::1", "port": 5514, "facility": 23, "format": "rfc5424micro",
                   "tag": "web:busybox:" + "cd" * 6}
    assert syslog.spec_fields({"syslog-address": "udp://127.0.0.1"}, C)["port"] == 514
    for opts, text in (({"tag": "{{.Unknown}}"}, "only"), ({"syslog-tls-ca-cert": "x"}, "not supported"),
                       ({"syslog-address": "unix://relative"}, "absolute")):
        with pytest.raises(InvalidArgument, match=text):
            syslog.validate(opts)
