"""The native runtime against the real kernel: namespaces, mounts, caps, seccomp, logs, exit.

Every test uses a busybox rootfs dir (no overlay needed: the runtime bind-mounts it onto
itself inside the container's own mount namespace, so the host sees no mounts).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dockyard.drivers.runtime import ContainerSpec, ContainerStartError, Mount
from dockyard.errors import ConfigError, InvalidArgument
from dockyard.runtime.state import pid_alive
from dockyard.testing.images import BUSYBOX, busybox_rootfs

pytestmark = [
    pytest.mark.privileged,
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs /bin/busybox (busybox-static)"),
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from dockyard.runtime.native import NativeRuntime

    base = tmp_path_factory.mktemp("native")
    rootfs = busybox_rootfs(base / "rootfs")
    root, state = base / "root", base / "state"
    rt = NativeRuntime({}, root, state)
    yield rt, rootfs, base
    # nothing may survive the module: processes referencing our dirs, mounts, state dirs
    asyncio.run(_delete_all(rt))
    assert rt.list() == []
    assert _procs_mentioning(str(base)) == []
    assert str(base) not in Path("/proc/mounts").read_text()


async def _delete_all(rt) -> None:
    for cid in rt.list():
        await rt.delete(cid)


def _procs_mentioning(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (one already in exit() is not a leak)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if text.encode() in (p / "cmdline").read_bytes() and pid_alive(int(p.name), exiting_is_dead=True):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


_n = 0


def spec(rootfs, *args, **kw) -> ContainerSpec:
    global _n
    _n += 1
    return ContainerSpec(id=kw.pop("id", f"t{_n}"), rootfs=rootfs, args=list(args), **kw)


async def run(rt, s: ContainerSpec, delete: bool = True):
    """Start, wait; return (ExitStatus, stdout bytes, stderr bytes)."""
    await rt.start(s)
    status = await rt.wait(s.id)
    recs = list(rt.logs(s.id).records())
    out = b"".join(r.data for r in recs if r.stream == 1)
    err = b"".join(r.data for r in recs if r.stream == 2)
    if delete:
        await rt.delete(s.id)
    return status, out, err


def sh(env, script: str, **kw):
    rt, rootfs, _ = env
    return asyncio.run(run(rt, spec(rootfs, "sh", "-c", script, **kw)))


# --------------------------------------------------------------------------- basics

def test_output_streams_and_exit_code(env):
    status, out, err = sh(env, "echo out; echo err >&2; exit 3")
    assert (status.exit_code, status.signal) == (3, 0)
    assert status.finished_at_ns > 0
    assert out == b"out\n" and err == b"err\n"


def test_pid1_hostname_and_namespaces(env):
    status, out, _ = sh(env, "echo $$; hostname; ls /sys/class/net", hostname="box1")
    assert status.exit_code == 0
    assert out.split() == [b"1", b"box1", b"lo"]


def test_killed_by_signal(env):
    rt, rootfs, _ = env

    async def go():
        s = spec(rootfs, "sleep", "1000")
        pid = await rt.start(s)
        assert rt.state(s.id) == "running" and rt.pid(s.id) == pid
        await rt.kill(s.id, signal.SIGKILL)
        st = await rt.wait(s.id)
        assert rt.state(s.id) == "exited" and rt.pid(s.id) is None
        assert rt.exit_status(s.id) == st
        await rt.delete(s.id)
        return st

    st = asyncio.run(go())
    assert (st.exit_code, st.signal) == (137, 9)


def test_sigterm_ignored_by_pid1_without_init_but_not_with_init(env):
    rt, rootfs, _ = env

    async def go(init):
        s = spec(rootfs, "sh", "-c", "echo ready; exec sleep 1000", init=init)
        await rt.start(s)
        async for r in rt.logs(s.id).follow():
            if b"ready" in r.data:
                break
        await rt.kill(s.id, signal.SIGTERM)
        if not init:  # the kernel drops it at once: PID 1 has no handler; SIGKILL then decides
            await rt.kill(s.id, signal.SIGKILL)
        st = await rt.wait(s.id)
        await rt.delete(s.id)
        return st.exit_code

    assert asyncio.run(go(False)) == 137  # SIGTERM ignored by a PID 1 without handler
    assert asyncio.run(go(True)) == 143  # tini forwards it to sleep


def test_init_is_pid1(env):
    status, out, _ = sh(env, "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$", init=True)
    assert status.exit_code == 0
    first, second = out.decode().splitlines()
    assert first.startswith("/sbin/docker-init -- sh -c")
    assert second != "1"


# --------------------------------------------------------------------------- start errors

@pytest.mark.parametrize("args,code,text", [
    (["nosuch"], 127, 'exec: "nosuch": executable file not found in $PATH'),
    (["/nosuch"], 127, 'exec: "/nosuch": stat /nosuch: no such file or directory'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
])
def test_start_errors(env, args, code, text):
    rt, rootfs, base = env
    s = spec(rootfs, *args)
    with pytest.raises(ContainerStartError) as ei:
        asyncio.run(rt.start(s))
    e = ei.value
    assert e.status == 400 and e.exit_code == code
    assert str(e) == ("failed to create task for container: failed to create shim task: OCI runtime "
                      f"create failed: runc create failed: unable to start container process: {text}: unknown")
    assert s.id not in rt.list()
    assert _procs_mentioning(str(base / "state")) == []


def test_bad_workdir(env):
    rt, rootfs, _ = env
    with pytest.raises(ContainerStartError, match=r'chdir to cwd \("/etc/passwd"\) set in config.json failed: not a directory'):
        asyncio.run(rt.start(spec(rootfs, "true", cwd="/etc/passwd")))


def test_workdir_created(env):
    status, out, _ = sh(env, "pwd", cwd="/work/dir")
    assert out == b"/work/dir\n"


def test_bad_ulimit_refused(env):
    rt, rootfs, _ = env
    with pytest.raises(InvalidArgument):
        asyncio.run(rt.start(spec(rootfs, "true", ulimits=[("nofile", 10, 5)])))
    with pytest.raises(InvalidArgument):
        asyncio.run(rt.start(spec(rootfs, "true", ulimits=[("bogus", 1, 1)])))


def test_unknown_config_key(env):
    from dockyard.runtime.native import NativeRuntime
    _, _, base = env
    with pytest.raises(ConfigError):
        NativeRuntime({"nope": 1}, base / "root", base / "state")


# --------------------------------------------------------------------------- security

def test_default_security(env):
    status, out, err = sh(env, textwrap.dedent("""\
        grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status
        unshare -u true && echo UNSHARE-OK
        touch /sys/x 2>/dev/null && echo SYS-RW
        echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo PROCSYS-RW
        test -s /proc/keys && echo KEYS-VISIBLE
        test -c /proc/keys && echo KEYS-MASKED
        grep -q ' /sys/firmware tmpfs ro' /proc/mounts && echo FIRMWARE-MASKED
        touch /x && echo ROOT-RW
        """))
    assert status.exit_code == 0, err
    text = out.decode()
    assert "CapEff:\t00000000a80425fb" in text and "CapBnd:\t00000000a80425fb" in text
    assert "Seccomp:\t2" in text and "NoNewPrivs:\t0" in text
    for bad in ("UNSHARE-OK", "SYS-RW", "PROCSYS-RW", "KEYS-VISIBLE"):
        assert bad not in text
    assert "Operation not permitted" in err.decode()  # unshare refused by seccomp
    assert "KEYS-MASKED" in text and "FIRMWARE-MASKED" in text
    assert "ROOT-RW" in text  # the rootfs is writable by default


def test_no_new_privileges_and_readonly_rootfs(env):
    status, out, _ = sh(env, "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; touch /x || echo RO; "
                             "touch /dev/shm/ok && echo SHM-RW",
                        no_new_privileges=True, readonly_rootfs=True)
    text = out.decode()
    assert "NoNewPrivs:\t1" in text and "Seccomp:\t2" in text
    assert "RO" in text and "SHM-RW" in text


def test_cap_add_sys_admin_allows_unshare(env):
    from dockyard.runtime import capabilities
    caps = capabilities.resolve(cap_add=["SYS_ADMIN"], cap_drop=["NET_RAW"])
    status, out, err = sh(env, "unshare -u true && echo UNSHARE-OK; grep CapEff /proc/self/status",
                          capabilities=caps)
    assert b"UNSHARE-OK" in out, err
    assert b"00000000a82405fb" in out  # default - NET_RAW + SYS_ADMIN


def test_privileged(env):
    status, out, _ = sh(env, "grep -E '^(CapEff|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts",
                        privileged=True)
    text = out.decode()
    own = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("CapEff:"))
    assert own in text and "Seccomp:\t0" in text
    assert "sysfs /sys sysfs rw" in text


def test_user_and_groups(env):
    status, out, _ = sh(env, "id; grep CapEff /proc/self/status", uid=1000, gid=1000, additional_gids=[5])
    text = out.decode()
    assert "uid=1000(user) gid=1000(user) groups=5(tty),1000(user)" in text or \
        ("uid=1000(user) gid=1000(user)" in text and "5(tty)" in text)
    assert "CapEff:\t0000000000000000" in text


def test_ulimits(env):
    status, out, _ = sh(env, "ulimit -n; ulimit -Hn", ulimits=[("nofile", 123, 456)])
    assert out.split() == [b"123", b"456"]


def test_bind_mounts(env, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    vol = tmp_path / "vol"
    vol.mkdir()
    status, out, _ = sh(env, "cat /etc/hosts; echo x > /etc/hosts || echo RO; echo data > /data/f",
                        mounts=[Mount(str(hosts), "/etc/hosts", "bind", ["rbind", "ro"]),
                                Mount(str(vol), "/data", "bind", ["rbind"]),
                                Mount("tmpfs", "/scratch", "tmpfs", ["size=1m"])])
    assert out.startswith(b"127.0.0.1 localhost\n") and b"RO" in out
    assert (vol / "f").read_text() == "data\n"
    assert hosts.read_text() == "127.0.0.1 localhost\n"


# --------------------------------------------------------------------------- tty and stdin

def test_tty(env):
    status, out, _ = sh(env, "tty; stty size; echo a", tty=True, console_size=(24, 80))
    assert status.exit_code == 0
    assert out == b"/dev/pts/0\r\n24 80\r\na\r\n"


def test_stdin_and_resize(env):
    rt, rootfs, _ = env

    async def go():
        s = spec(rootfs, "sh", "-c", "read line; echo got:$line; stty size", tty=True, open_stdin=True,
                 stdin_once=True)
        await rt.start(s)
        rt.resize(s.id, 30, 100)
        fd = await asyncio.to_thread(os.open, rt.stdin_path(s.id), os.O_WRONLY)
        os.write(fd, b"hello\n")
        os.close(fd)
        return await run_wait(rt, s)

    status, out = asyncio.run(go())
    assert b"got:hello" in out and b"30 100" in out


def test_stdin_pipe_once(env):
    rt, rootfs, _ = env

    async def go():
        s = spec(rootfs, "sh", "-c", "cat; echo END", open_stdin=True, stdin_once=True)
        await rt.start(s)
        fd = await asyncio.to_thread(os.open, rt.stdin_path(s.id), os.O_WRONLY)
        os.write(fd, b"line1\nline2\n")
        os.close(fd)  # EOF for the container
        return await run_wait(rt, s)

    status, out = asyncio.run(go())
    assert status.exit_code == 0 and out == b"line1\nline2\nEND\n"


async def run_wait(rt, s):
    status = await rt.wait(s.id)
    out = b"".join(r.data for r in rt.logs(s.id).records() if r.stream == 1)
    await rt.delete(s.id)
    return status, out


# --------------------------------------------------------------------------- logs

def test_large_output_captured(env):
    status, out, _ = sh(env, "dd if=/dev/zero bs=1M count=106 2>/dev/null", log_max_size=0)
    assert status.exit_code == 0
    assert len(out) == 106 * 1024 * 1024


def test_rotation_and_follow(env):
    rt, rootfs, _ = env

    async def go():
        s = spec(rootfs, "seq", "1", "200000", log_max_size=16384, log_max_files=3)  # > 1 read buffer
        await rt.start(s)
        followed = b"".join([r.data async for r in rt.logs(s.id).follow()])
        await rt.wait(s.id)
        reader = rt.logs(s.id)
        files = [(f, f.stat().st_size) for f in reader.files()]
        stored = b"".join(r.data for r in reader.records())
        tail = [r.data for r in reader.tail(2)]
        await rt.delete(s.id)
        return followed, files, stored, tail

    followed, files, stored, tail = asyncio.run(go())
    assert len(files) == 3
    assert all(size <= 16384 + 16 + (1 << 17) for _, size in files)
    assert stored.endswith(b"199999\n200000\n")
    assert tail == [b"199999\n", b"200000\n"]
    assert followed.endswith(b"199999\n200000\n")


# --------------------------------------------------------------------------- live restore

def test_monitor_survives_daemon_and_fresh_instance_waits(env):
    rt, rootfs, base = env
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from dockyard.runtime.native import NativeRuntime
        from dockyard.drivers.runtime import ContainerSpec
        rt = NativeRuntime({{}}, Path({str(base / 'root')!r}), Path({str(base / 'state')!r}))
        s = ContainerSpec(id="survivor", rootfs=Path({str(rootfs)!r}),
                          args=["sh", "-c", "read x < /dev/stdin; echo done; exit 7"], open_stdin=True)
        print(asyncio.run(rt.start(s)))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    from dockyard.runtime.native import NativeRuntime
    fresh = NativeRuntime({}, base / "root", base / "state")  # the "restarted daemon"
    assert "survivor" in fresh.list()
    assert fresh.state("survivor") == "running"
    assert fresh.pid("survivor") == int(r.stdout)

    async def go():
        fd = await asyncio.to_thread(os.open, fresh.stdin_path("survivor"), os.O_WRONLY)
        os.write(fd, b"go\n")
        os.close(fd)
        st = await fresh.wait("survivor")
        out = b"".join(x.data for x in fresh.logs("survivor").records())
        await fresh.delete("survivor")
        return st, out

    st, out = asyncio.run(go())
    assert st.exit_code == 7 and out == b"done\n"


# --------------------------------------------------------------------------- cgroups, joined namespaces

def test_cgroup_procs_joined_before_exec(env):
    base = Path("/sys/fs/cgroup/pids")
    if not (base / "cgroup.procs").exists():
        pytest.skip("no v1 pids hierarchy")
    cg = base / f"dockyard-rt-test-{os.getpid()}"
    cg.mkdir()
    try:
        status, out, _ = sh(env, "grep pids /proc/self/cgroup", cgroup_procs=[str(cg / "cgroup.procs")])
        assert cg.name.encode() in out
    finally:
        cg.rmdir()


def test_join_network_namespace_of_another_container(env):
    rt, rootfs, _ = env

    async def go():
        a = spec(rootfs, "sleep", "1000")
        pid_a = await rt.start(a)
        b = spec(rootfs, "readlink", "/proc/self/ns/net",
                 namespaces={"net": f"/proc/{pid_a}/ns/net", "ipc": None, "uts": None, "pid": None})
        status, out, _ = await run(rt, b)
        expected = os.readlink(f"/proc/{pid_a}/ns/net")
        await rt.delete(a.id)
        return out.decode().strip(), expected

    got, expected = asyncio.run(go())
    assert got == expected and got != os.readlink("/proc/self/ns/net")


# --------------------------------------------------------------------------- device nodes

def test_device_nodes_are_made_inside_the_root(env):
    """mknod'ed nodes get the asked numbers, mode and owner, and a symlink in the image cannot
    send one outside the rootfs (the parent is resolved with RESOLVE_IN_ROOT)."""
    import secrets
    import shutil

    from dockyard.drivers.runtime import DeviceNode

    rt, rootfs, _ = env
    name = f"escape-{secrets.token_hex(4)}"
    link = rootfs / f"link-{name}"
    link.symlink_to(f"../../../{name}")
    outside, inside = (rootfs / f"../../../{name}").resolve(), rootfs / name
    try:
        status, out, err = sh(env, f"stat -c '%F %t:%T %a %u:%g' /dev/xnull /dev/snd/x /link-{name}/n",
                              devices=[DeviceNode("/dev/xnull", "c", 1, 3, 0o640, 0, 5),
                                       DeviceNode("/dev/snd/x", "b", 7, 9, 0o600, 3, 4),
                                       DeviceNode(f"/link-{name}/n", "c", 1, 3)])
        assert status.exit_code == 0, err
        assert out.decode().splitlines() == ["character special file 1:3 640 0:5",
                                             "block special file 7:9 600 3:4",
                                             "character special file 1:3 666 0:0"]
        assert not outside.exists() and (inside / "n").exists()
    finally:
        link.unlink()
        shutil.rmtree(inside, ignore_errors=True)
