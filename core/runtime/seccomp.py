"""Docker-like default seccomp filter, assembled as classic BPF in Python.

``build(caps)`` returns the raw ``struct sock_filter[]`` bytes (8 bytes per instruction)
that the shim passes to ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)``:

* any architecture other than x86_64 (i386 ``int 0x80``, ...) and x32 syscalls
  (nr >= 0x40000000) -> EPERM;
* the syscalls Docker's default profile refuses to an unprivileged container -> EPERM,
  except those that capabilities in ``caps`` unlock (as Docker does: CAP_SYS_ADMIN allows
  mount/umount2/unshare/setns/..., CAP_SYS_PTRACE allows ptrace/process_vm_*...);
* ``clone`` with any CLONE_NEW* flag -> EPERM and ``clone3`` -> ENOSYS (libc falls back
  to clone), unless CAP_SYS_ADMIN;
* everything else is allowed.
"""

from __future__ import annotations

import errno
import logging
import platform
import struct

log = logging.getLogger(__name__)

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
CLONE_NEW_MASK = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

LD_ABS_W, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06

# x86_64 numbers (asm/unistd_64.h)
SYSCALLS_X86_64 = {
    "clone": 56, "ptrace": 101, "syslog": 103, "uselib": 134, "ustat": 136, "sysfs": 139,
    "vhangup": 153, "pivot_root": 155, "_sysctl": 156, "chroot": 161, "acct": 163,
    "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "create_module": 174, "init_module": 175, "delete_module": 176, "get_kernel_syms": 177,
    "query_module": 178, "quotactl": 179, "nfsservctl": 180, "lookup_dcookie": 212,
    "clock_settime": 227, "mbind": 237, "set_mempolicy": 238, "get_mempolicy": 239,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
    "move_pages": 279, "perf_event_open": 298, "fanotify_init": 300, "name_to_handle_at": 303,
    "open_by_handle_at": 304, "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "finit_module": 313, "kexec_file_load": 320,
    "bpf": 321, "userfaultfd": 323, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "pidfd_getfd": 438,
    "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
}

# Denied unless the capability is granted (Docker's profile groups).
BY_CAP = {
    "CAP_SYS_ADMIN": ["bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                      "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
                      "perf_event_open", "quotactl", "quotactl_fd", "setdomainname",
                      "sethostname", "setns", "syslog", "umount2", "unshare"],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                       "process_vm_writev", "ptrace"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "clock_settime", "clock_adjtime"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
    "CAP_DAC_READ_SEARCH": ["open_by_handle_at"],
}
# Denied to everyone but privileged containers.
ALWAYS = ["add_key", "create_module", "get_kernel_syms", "kexec_file_load", "kexec_load",
          "keyctl", "move_pages", "name_to_handle_at", "nfsservctl", "pivot_root",
          "query_module", "request_key", "swapon", "swapoff", "sysfs", "_sysctl", "uselib",
          "userfaultfd", "ustat", "vm86", "vm86old"]


def denied(caps: set[str] | list[str] = ()) -> list[str]:
    """Names refused with EPERM for a container holding ``caps``."""
    caps = set(caps)
    allowed = {s for cap, names in BY_CAP.items() if cap in caps for s in names}
    names = set(ALWAYS) | {s for names in BY_CAP.values() for s in names}
    return sorted(n for n in names - allowed if n in SYSCALLS_X86_64)


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def build(caps: set[str] | list[str] = ()) -> bytes:
    """The default filter for a container holding ``caps`` (names like "CAP_SYS_ADMIN")."""
    caps = set(caps)
    restrict_clone = "CAP_SYS_ADMIN" not in caps
    nrs = [SYSCALLS_X86_64[n] for n in denied(caps)]
    # Layout: [0..3] arch check, load nr; [4] x32 check; denied list; clone checks; ALLOW;
    #         CLONE block (3 insns); ENOSYS; DENY.
    body: list[tuple[int, int, str | None]] = [(JGE, X32_SYSCALL_BIT, "deny")]
    body += [(JEQ, nr, "deny") for nr in nrs]
    if restrict_clone:
        body += [(JEQ, SYSCALLS_X86_64["clone"], "clone"), (JEQ, SYSCALLS_X86_64["clone3"], "enosys")]
    start = 4
    n_body = len(body)
    allow_pc = start + n_body
    labels = {}
    pc = allow_pc + 1
    if restrict_clone:
        labels["clone"] = pc
        pc += 3
        labels["enosys"] = pc
        pc += 1
    labels["deny"] = pc
    prog = [
        _ins(LD_ABS_W, 4),                          # A = arch
        _ins(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        _ins(RET, RET_ERRNO | errno.EPERM),
        _ins(LD_ABS_W, 0),                          # A = nr
    ]
    for i, (code, k, target) in enumerate(body):
        jt = labels[target] - (start + i) - 1
        if jt > 255:
            raise ValueError("seccomp program too long for a short jump")
        prog.append(_ins(code, k, jt, 0))
    prog.append(_ins(RET, RET_ALLOW))
    if restrict_clone:
        here = labels["clone"]
        prog.append(_ins(LD_ABS_W, 16))             # A = low 32 bits of args[0] (flags)
        prog.append(_ins(JSET, CLONE_NEW_MASK, labels["deny"] - (here + 1) - 1, 0))
        prog.append(_ins(RET, RET_ALLOW))
        prog.append(_ins(RET, RET_ERRNO | errno.ENOSYS))
    prog.append(_ins(RET, RET_ERRNO | errno.EPERM))
    return b"".join(prog)


def for_container(profile: bool | str, caps: list[str], privileged: bool) -> bytes | None:
    """The program for a spec's ``seccomp`` setting, or None (unconfined/privileged)."""
    if privileged or profile in (False, "unconfined", None, ""):
        return None
    if profile not in (True, "default"):
        from ..errors import NotSupported
        raise NotSupported(f"seccomp profile {profile!r} is not supported (use 'default' or 'unconfined')")
    if platform.machine() != "x86_64":
        log.warning("default seccomp profile only exists for x86_64; running unconfined")
        return None
    return build(caps)
