"""The devices cgroup on cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, assembled here.

cgroup v2 has no devices.allow file: the kernel asks an eBPF program attached to the cgroup
(``BPF_CGROUP_DEVICE``) about every open and mknod of a device node, with a context of
``access_type`` (``access << 16 | type``), ``major``, ``minor``. :func:`assemble` turns a rule
list (:class:`dockyard.drivers.cgroups.DeviceRule`, last match wins, as in runc) into such a
program: the rules are tested from the last to the first; a rule matches when its type and
numbers match and the requested access is a subset of its access; the first match returns
its verdict; no match denies. (Unlike v1's exception list, two rules granting "r" and "w" of
one device do not add up to "rw": Docker's lists never need that.)

:func:`attach` loads it with ``bpf(BPF_PROG_LOAD)`` and attaches it to a cgroup directory
(``BPF_F_ALLOW_MULTI``, like runc: programs of ancestor cgroups still run). The attachment
holds the program; it goes away with the cgroup.
"""

from __future__ import annotations

import ctypes
import os
import struct

from dockyard.drivers.cgroups import DeviceRule
from dockyard.errors import InvalidArgument, NotSupported

BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI = 15, 6, 2
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)  # not platform: idle memory

DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# eBPF opcodes
LDX_MEM_W, AND_K, RSH_K, MOV_X, MOV_K, JNE_K, EXIT = 0x61, 0x57, 0x77, 0xBF, 0xB7, 0x55, 0x95
R0, R1, R2, R3, R4, R5 = range(6)


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: DeviceRule) -> list[bytes]:
    """Tests of one rule, each jumping past the block when it fails, then the verdict."""
    tests: list[tuple[int, int] | None] = []  # (reg, imm) for a JNE; None for the access test
    if rule.type != "a":
        tests.append((R2, DEV_TYPE[rule.type]))
    mask = sum(ACCESS[a] for a in rule.access)
    if mask != 7:
        tests.append(None)
    if rule.major is not None:
        tests.append((R4, rule.major))
    if rule.minor is not None:
        tests.append((R5, rule.minor))
    # lengths: a JNE is 1 instruction, the access test 3 (mov, and, jne); the verdict 2
    sizes = [1 if t else 3 for t in tests]
    out: list[bytes] = []
    for i, t in enumerate(tests):
        after = sum(sizes[i + 1:]) + 2  # instructions between this jump and the end of the block
        if t is None:
            out += [insn(MOV_X, R1, R3), insn(AND_K, R1, imm=~mask & 7), insn(JNE_K, R1, off=after, imm=0)]
        else:
            out.append(insn(JNE_K, t[0], off=after, imm=t[1]))
    out += [insn(MOV_K, R0, imm=1 if rule.allow else 0), insn(EXIT)]
    return out


def assemble(rules: list[DeviceRule]) -> bytes:
    """The program for ``rules`` (raw ``struct bpf_insn`` array)."""
    prog = [
        insn(LDX_MEM_W, R2, R1, 0), insn(AND_K, R2, imm=0xFFFF),  # type
        insn(LDX_MEM_W, R3, R1, 0), insn(RSH_K, R3, imm=16),  # access
        insn(LDX_MEM_W, R4, R1, 4), insn(LDX_MEM_W, R5, R1, 8),  # major, minor
    ]
    for rule in reversed(rules):
        if rule.type not in ("a", "b", "c") or not rule.access or set(rule.access) - set(ACCESS):
            raise InvalidArgument(f"invalid device rule: {rule}")
        block = _rule_block(rule)
        prog += block
        if len(block) == 2:  # matches everything ("a" rwm): what follows is unreachable, which
            return b"".join(prog)  # the verifier refuses
    prog += [insn(MOV_K, R0, imm=0), insn(EXIT)]
    return b"".join(prog)


def _bpf(cmd: int, attr: bytes) -> int:
    if SYS_BPF is None:
        raise NotSupported(f"eBPF device filter: unknown bpf syscall number on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_int(cmd), buf, ctypes.c_uint(128))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def load(prog: bytes) -> int:
    """``BPF_PROG_LOAD``: an fd of the loaded program; the verifier's log on refusal."""
    insns = ctypes.create_string_buffer(prog, len(prog))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQII16sII", BPF_PROG_TYPE_CGROUP_DEVICE, len(prog) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log), ctypes.addressof(log),
                       0, 0, b"dockyard_dev", 0, 0)
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise NotSupported(f"cannot load the eBPF device filter: {e.strerror}: "
                           f"{log.value.decode(errors='replace')[-500:]}") from None


def attach(cgroup_dir: str, rules: list[DeviceRule]) -> None:
    """Load the program for ``rules`` and attach it to ``cgroup_dir``."""
    prog_fd = load(assemble(rules))
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _bpf(BPF_PROG_ATTACH, struct.pack("<IIIII", cg_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0))
        except OSError as e:
            raise NotSupported(f"cannot attach the eBPF device filter to {cgroup_dir}: {e.strerror}") from None
        finally:
            os.close(cg_fd)
    finally:
        os.close(prog_fd)
