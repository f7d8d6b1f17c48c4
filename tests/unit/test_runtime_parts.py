"""Pure-Python parts of the runtime: log format, capabilities, ulimits, spec encoding, and
the fake runtime (which runs anywhere)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from dockyard.drivers.runtime import ContainerSpec, ContainerStartError, validate_ulimits
from dockyard.errors import ConfigError, InvalidArgument, InvalidState
from dockyard.runtime import capabilities, spec as specmod
from dockyard.runtime.logfile import HEADER, LogReader, LogRecord, LogWriter, split_lines
from dockyard.testing.fake_runtime import FakeRuntime


# --------------------------------------------------------------------------- log format

def test_header_layout():
    rec = HEADER.pack(2, 5, 0x0102030405060708) + b"hello"
    assert rec[:8] == b"\x02\x00\x00\x00\x00\x00\x00\x05"
    assert rec[8:16] == bytes(range(1, 9))
    assert LogRecord(2, 0, b"hello").frame() == rec[:8] + b"hello"


def test_reader_filters_and_tail(tmp_path):
    w = LogWriter(tmp_path / "log")
    w.write(1, b"a\nb", ts_ns=10)
    w.write(2, b"E1\n", ts_ns=15)
    w.write(1, b"c\nd\n", ts_ns=20)
    w.close()
    r = LogReader(tmp_path / "log")
    assert [x.data for x in r.records(since_ns=15)] == [b"E1\n", b"c\nd\n"]
    assert [x.data for x in r.records(until_ns=15)] == [b"a\nb", b"E1\n"]
    lines = [(x.stream, x.data) for x in r.lines()]
    assert lines == [(1, b"a\n"), (2, b"E1\n"), (1, b"bc\n"), (1, b"d\n")]
    assert [x.data for x in r.tail(2)] == [b"bc\n", b"d\n"]
    assert r.tail(0) == []


def test_split_lines_partial_tail():
    out = list(split_lines([LogRecord(1, 1, b"x\ny"), LogRecord(1, 2, b"z")]))
    assert [(r.data, r.timestamp_ns) for r in out] == [(b"x\n", 1), (b"yz", 1)]


def test_rotation(tmp_path):
    w = LogWriter(tmp_path / "log", max_size=100, max_files=3)
    for i in range(50):
        w.write(1, b"%02d\n" % i)
    w.close()
    r = LogReader(tmp_path / "log")
    assert [p.name for p in r.files()] == ["log.2", "log.1", "log"]
    data = b"".join(x.data for x in r.records())
    assert data.endswith(b"48\n49\n") and len(data) < 150


def test_truncate_when_one_file(tmp_path):
    w = LogWriter(tmp_path / "log", max_size=40, max_files=1)
    for i in range(10):
        w.write(1, b"%d\n" % i)
    w.close()
    assert LogReader(tmp_path / "log").files() == [tmp_path / "log"]


def test_follow_until_exit(tmp_path):
    async def go():
        w = LogWriter(tmp_path / "log", max_size=64, max_files=5)
        w.write(1, b"first\n")
        reader = LogReader(tmp_path / "log", tmp_path / "exit")
        got = []

        async def produce():
            for i in range(20):
                w.write(1 + i % 2, b"line%d\n" % i)
                await asyncio.sleep(0.005)
            w.close()
            (tmp_path / "exit").write_text("0 0 0\n")

        task = asyncio.create_task(produce())
        async for rec in reader.follow(poll_interval=0.01):
            got.append(rec.data)
        await task
        return got

    got = asyncio.run(go())
    assert got[0] == b"first\n" and got[-1] == b"line19\n" and len(got) == 21


# --------------------------------------------------------------------------- caps, ulimits

def test_capabilities():
    assert capabilities.mask(capabilities.DOCKER_DEFAULT) == 0xA80425FB
    assert capabilities.resolve() == sorted(capabilities.DOCKER_DEFAULT, key=capabilities.CAPS.get)
    caps = capabilities.resolve(cap_add=["sys_admin"], cap_drop=["CAP_NET_RAW"])
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_RAW" not in caps
    assert capabilities.resolve(cap_drop=["ALL"], cap_add=["CHOWN"]) == ["CAP_CHOWN"]
    assert len(capabilities.resolve(cap_add=["ALL"])) == capabilities.last_cap() + 1
    with pytest.raises(InvalidArgument):
        capabilities.resolve(cap_add=["NOPE"])


def test_ulimits():
    import resource
    assert validate_ulimits([("nofile", 10, 20)]) == [(resource.RLIMIT_NOFILE, 10, 20)]
    with pytest.raises(InvalidArgument):
        validate_ulimits([("nofile", 30, 20)])
    with pytest.raises(InvalidArgument):
        validate_ulimits([("nosuch", 1, 1)])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        with pytest.raises(InvalidArgument):
            validate_ulimits([("nofile", 1, hard + 1)])


# --------------------------------------------------------------------------- spec encoding

def parse(data: bytes) -> list[tuple[str, bytes]]:
    out, i = [], 0
    while i < len(data):
        sp = data.index(b" ", i)
        nl = data.index(b"\n", sp)
        n = int(data[sp + 1:nl])
        out.append((data[i:sp].decode(), data[nl + 1:nl + 1 + n]))
        assert data[nl + 1 + n:nl + 2 + n] == b"\n"
        i = nl + 2 + n
    return out


def test_spec_encoding(tmp_path):
    s = ContainerSpec(id="x", rootfs=tmp_path, args=["sh", "-c", "echo a\nb"], hostname="h",
                      namespaces={"net": "/proc/1/ns/net", "pid": "host"}, init=True, readonly_rootfs=True)
    recs = parse(specmod.build(s, state_dir=tmp_path, log_path=tmp_path / "log",
                               exit_path=tmp_path / "exit", init_path="/usr/bin/tini-static"))
    keys = [k for k, _ in recs]
    d = dict(recs)
    assert [v for k, v in recs if k == "arg"] == [b"sh", b"-c", b"echo a\nb"]
    flags = int(d["clone_flags"])
    assert flags & specmod.CLONE_NEWNS and flags & specmod.CLONE_NEWUTS
    assert not flags & specmod.CLONE_NEWNET and not flags & specmod.CLONE_NEWPID
    assert d["setns"] == b"%d\0/proc/1/ns/net" % specmod.CLONE_NEWNET
    assert int(d["caps"], 16) == 0xA80425FB and "seccomp" in keys
    ops = [v.split(b"\0") for k, v in recs if k == "op"]
    assert ops[0][:3] == [b"mount", b"proc", b"/proc"]
    assert ops[-1] == [b"rootro"]
    assert [b"bind", b"/usr/bin/tini-static", b"/sbin/docker-init", b"1", b"0"] in ops
    assert [b"mask", b"/proc/kcore"] in ops and [b"ropath", b"/proc/sys"] in ops
    with pytest.raises(InvalidArgument):
        specmod.build(ContainerSpec(id="y", rootfs=tmp_path, args=[]), state_dir=tmp_path,
                      log_path=tmp_path, exit_path=tmp_path, init_path="")


# --------------------------------------------------------------------------- fake runtime

def test_fake_runtime(tmp_path):
    rt = FakeRuntime({}, tmp_path / "root", tmp_path / "state")

    async def go():
        pid = await rt.start(ContainerSpec(id="a", rootfs=tmp_path, args=["sh", "-c", "echo out; echo err >&2; exit 3"],
                                           env=[f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}"]))
        assert pid > 0
        st = await rt.wait("a")
        recs = list(rt.logs("a").records())
        assert st.exit_code == 3 and rt.state("a") == "exited"
        assert {(r.stream, r.data) for r in recs} == {(1, b"out\n"), (2, b"err\n")}
        await rt.start(ContainerSpec(id="b", rootfs=tmp_path, args=["sleep", "100"],
                                     env=[f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}"]))
        assert rt.state("b") == "running" and sorted(rt.list()) == ["a", "b"]
        await rt.kill("b", signal.SIGKILL)
        assert (await rt.wait("b")).exit_code == 137
        with pytest.raises(InvalidState):
            await rt.kill("b", signal.SIGKILL)
        with pytest.raises(ContainerStartError) as ei:
            await rt.start(ContainerSpec(id="c", rootfs=tmp_path, args=["nosuch-binary-xyz"]))
        assert ei.value.exit_code == 127 and ei.value.status == 400
        for cid in rt.list():
            await rt.delete(cid)
        assert rt.list() == []

    asyncio.run(go())
    with pytest.raises(ConfigError):
        FakeRuntime({"x": 1}, tmp_path / "r", tmp_path / "s")
