"""Seccomp in real containers, as Docker's default profile has it (issue 13, finding 6).

Dockyard used to allow ``personality(READ_IMPLIES_EXEC)`` (Docker refuses every personality but
0x0, 0x8, 0x20000, 0x20008 and the 0xffffffff query) and to refuse ``ptrace`` (Docker allows it on
kernels >= 4.8), and refused ``--security-opt seccomp=profile.json``. Busybox has no tool for these
calls, so a tiny static C probe is compiled here (gcc -static) and bind-mounted read-only: each run
makes one syscall and prints ``ok`` or the errno name.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.privileged

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(long r)
{
    const char *n;
    if (r >= 0) { puts("ok"); return 0; }
    n = strerrorname_np(errno);
    puts(n ? n : "E?");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    const char *what = argv[1];
    unsigned long arg = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    if (!strcmp(what, "personality")) return report(syscall(SYS_personality, arg));
    if (!strcmp(what, "ptrace_traceme")) return report(ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(what, "mount")) return report(mount("none", "/mnt", "tmpfs", 0, NULL));
    if (!strcmp(what, "unshare")) return report(unshare(arg));
    if (!strcmp(what, "clone3")) return report(syscall(435, NULL, 0));
    if (!strcmp(what, "mkdir")) return report(mkdir(argv[2], 0755));
    return 2;
}
"""

READ_IMPLIES_EXEC = 0x0400000
CLONE_NEWNS, CLONE_NEWUTS = 0x00020000, 0x04000000


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the syscall probe")
    d = tmp_path_factory.mktemp("seccomp-probe")
    (d / "probe.c").write_text(PROBE_C)
    r = subprocess.run(["gcc", "-static", "-O2", "-o", str(d / "probe"), str(d / "probe.c")],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static probe (libc6-dev?): {r.stderr[-300:]}")
    return d


def probe(d, probe_dir, *call: str, flags: tuple[str, ...] = ()) -> str:
    r = d.docker("run", "--rm", "-v", f"{probe_dir}:/probe:ro", *flags, "busybox", "/probe/probe", *call)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def test_personality_read_implies_exec_is_refused(d, probe_dir):
    assert probe(d, probe_dir, "personality", hex(READ_IMPLIES_EXEC)) == "EPERM"
    for allowed in ("0x0", "0x8", "0x20000", "0x20008", "0xffffffff"):
        assert probe(d, probe_dir, "personality", allowed) == "ok", allowed


def test_ptrace_is_allowed_as_on_docker(d, probe_dir):
    # Docker's profile allows ptrace, process_vm_readv/writev on kernels >= 4.8 (this kernel is)
    assert probe(d, probe_dir, "ptrace_traceme") == "ok"


def test_namespace_and_mount_calls_need_sys_admin(d, probe_dir):
    assert probe(d, probe_dir, "mount") == "EPERM"
    assert probe(d, probe_dir, "unshare", hex(CLONE_NEWNS)) == "EPERM"
    assert probe(d, probe_dir, "clone3") == "ENOSYS"  # libc falls back to clone, as on Docker
    # CAP_SYS_ADMIN unlocks the group (the kernel then lets the call through)
    admin = ("--cap-add", "SYS_ADMIN")
    assert probe(d, probe_dir, "unshare", hex(CLONE_NEWUTS), flags=admin) == "ok"
    assert probe(d, probe_dir, "clone3", flags=admin) != "ENOSYS"


def test_exec_gets_the_container_filter(d, probe_dir):
    r = d.docker("run", "-d", "-v", f"{probe_dir}:/probe:ro", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    cid = r.stdout.decode().strip()
    out = d.docker("exec", cid, "/probe/probe", "personality", hex(READ_IMPLIES_EXEC))
    assert out.stdout.decode().strip() == "EPERM", out.stderr.decode()
    out = d.docker("exec", cid, "/probe/probe", "ptrace_traceme")
    assert out.stdout.decode().strip() == "ok", out.stderr.decode()


def test_unconfined_turns_the_filter_off(d, probe_dir):
    flags = ("--security-opt", "seccomp=unconfined")
    assert probe(d, probe_dir, "personality", hex(READ_IMPLIES_EXEC), flags=flags) == "ok"


def test_custom_profile_from_a_file(d, probe_dir, tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        ],
    }
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    flags = ("--security-opt", f"seccomp={path}")  # the docker CLI sends the file's content
    r = d.docker("run", "--rm", *flags, "busybox", "sh", "-c", "mkdir /made; echo rc=$?; echo still running")
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode() + r.stderr.decode()
    assert "Operation not permitted" in out and "rc=1" in out and "still running" in out
    assert probe(d, probe_dir, "mkdir", "/made", flags=flags) == "EPERM"
    assert probe(d, probe_dir, "personality", "0x8", flags=flags) == "EACCES"  # errnoRet 13
    assert probe(d, probe_dir, "personality", hex(READ_IMPLIES_EXEC), flags=flags) == "ok"
    # and the same profile is kept for docker exec
    r = d.docker("run", "-d", *flags, "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr.decode()
    r = d.docker("exec", r.stdout.decode().strip(), "mkdir", "/made")
    assert r.returncode != 0 and "Operation not permitted" in r.stderr.decode()


def test_custom_profile_conditional_groups_follow_capabilities(d, probe_dir, tmp_path):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "includes": {"minKernel": "99.0"}}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile))
    flags = ("--security-opt", f"seccomp={path}")
    assert probe(d, probe_dir, "mkdir", "/made", flags=flags) == "EPERM"
    assert probe(d, probe_dir, "mkdir", "/made", flags=(*flags, "--cap-add", "SYS_ADMIN")) == "ok"
    assert probe(d, probe_dir, "personality", hex(READ_IMPLIES_EXEC), flags=flags) == "ok"  # kernel < 99


INVALID = [  # (bad JSON is refused by the docker CLI itself: see the docker-py test)
    (json.dumps({"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}), "default action is invalid"),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}), "op is invalid"),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                 "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}), "both 'architectures' and 'archMap'"),
    (json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}), "out of range"),
]


@pytest.mark.parametrize("text,message", INVALID, ids=[m for _, m in INVALID])
def test_invalid_profile_is_a_400_naming_the_problem(d, tmp_path, text, message):
    before = set(d.docker("ps", "-aq", "--no-trunc").stdout.decode().split())
    path = tmp_path / "bad.json"
    path.write_text(text)
    r = d.docker("run", "--rm", "--security-opt", f"seccomp={path}", "busybox", "true")
    err = r.stderr.decode()
    assert r.returncode != 0 and "invalid seccomp profile" in err and message in err, err
    assert set(d.docker("ps", "-aq", "--no-trunc").stdout.decode().split()) == before


def test_invalid_profile_reaches_docker_py_as_400(client):
    import docker

    for opt, message in (('seccomp={"defaultAction": 1}', "default action is invalid"),
                         ("seccomp={not json", "Decoding seccomp profile failed")):
        with pytest.raises(docker.errors.APIError) as exc:
            client.containers.create("busybox", "true", security_opt=[opt])
        assert exc.value.status_code == 400 and "invalid seccomp profile" in str(exc.value)
        assert message in str(exc.value)


def test_privileged_runs_unconfined_but_keeps_a_custom_profile(d, probe_dir, tmp_path):
    # Docker: --privileged drops the default profile, yet applies a profile given explicitly
    assert probe(d, probe_dir, "personality", hex(READ_IMPLIES_EXEC), flags=("--privileged",)) == "ok"
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    flags = ("--privileged", "--security-opt", f"seccomp={path}")
    assert probe(d, probe_dir, "mkdir", "/made", flags=flags) == "EPERM"
