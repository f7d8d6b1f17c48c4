"""The default seccomp program, loaded for real into a throwaway child process."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from dockyard.runtime import seccomp

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86_64 filter")

CHILD = r"""
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
prog = open(sys.argv[1], "rb").read()
class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
fp = SockFprog(len(prog) // 8, prog)
assert libc.prctl(38, 1, 0, 0, 0) == 0                      # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, ctypes.get_errno()   # SECCOMP_MODE_FILTER
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
print("unshare", call(272, 0x04000000))                     # CLONE_NEWUTS
print("mount", call(165, 0, 0, 0, 0, 0))
print("keyctl", call(250, 0))
print("clone3", call(435, 0, 0))
if len(sys.argv) < 3:  # only where the filter must refuse it (else it would really fork)
    print("clone_newns", call(56, 0x20000 | 17, 0, 0, 0, 0))
print("x32_getpid", call(0x40000000 + 39))
print("getpid", call(39))
print("personality_rie", call(135, 0x400000))                # READ_IMPLIES_EXEC
print("personality_query", "ok" if libc.syscall(ctypes.c_long(135), ctypes.c_long(0xffffffff)) != -1 else "bad")
print("ptrace_bad", call(101, 9999, 999999))                 # allowed: the kernel answers (ESRCH/EIO)
print("newest", call(471))                                   # newer than the profile: ENOSYS
pid = os.fork()
if pid == 0:
    os._exit(0)
print("fork", "ok" if os.waitpid(pid, 0)[1] == 0 else "bad")
"""


def run_child(tmp_path, prog: bytes, *extra: str) -> dict[str, str]:
    (tmp_path / "prog").write_bytes(prog)
    (tmp_path / "child.py").write_text(CHILD)
    exe = "/usr/bin/python3" if __import__("os").path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([exe, "-I", "-S", str(tmp_path / "child.py"), str(tmp_path / "prog"), *extra],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return dict(line.split() for line in r.stdout.splitlines())


def test_program_shape():
    prog = seccomp.build()
    assert len(prog) % 8 == 0 and len(prog) // 8 < 4096
    names = seccomp.denied()
    for n in ("mount", "unshare", "setns", "keyctl", "bpf", "pivot_root", "open_tree", "personality",
              "fsopen", "mount_setattr", "kexec_load", "userfaultfd", "perf_event_open", "io_uring_setup"):
        assert n in names
    assert "ptrace" not in names  # Docker allows it on kernels >= 4.8
    assert "mount" not in seccomp.denied({"CAP_SYS_ADMIN"})
    assert "kcmp" not in seccomp.denied({"CAP_SYS_PTRACE"})
    assert seccomp.for_container("unconfined", [], False) is None
    assert seccomp.for_container("default", [], True) is None


def test_default_filter_in_child(tmp_path):
    res = run_child(tmp_path, seccomp.build(["CAP_CHOWN"]))
    x32 = res.pop("x32_getpid")
    assert x32 in ("ok", "ENOSYS")  # Docker's profile allows x32 (ENOSYS: the kernel has no x32)
    assert res == {"unshare": "EPERM", "mount": "EPERM", "keyctl": "EPERM", "clone3": "ENOSYS",
                   "clone_newns": "EPERM", "getpid": "ok", "fork": "ok", "personality_rie": "EPERM",
                   "personality_query": "ok", "ptrace_bad": "ESRCH", "newest": "ENOSYS"}


def test_sys_admin_exemption_in_child(tmp_path):
    res = run_child(tmp_path, seccomp.build(["CAP_SYS_ADMIN"]), "admin")
    # not refused by the filter any more (the kernel may still refuse for lack of privilege)
    assert res["unshare"] != "EPERM" or __import__("os").geteuid() != 0
    assert res["mount"] != "EPERM" or __import__("os").geteuid() != 0
    assert res["clone3"] != "ENOSYS" and res["keyctl"] == "EPERM"
