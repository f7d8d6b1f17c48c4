"""Seccomp: Docker-format profiles compiled to classic BPF in Python.

The default is Docker's own profile (``seccomp_default.json``, moby/profiles/seccomp v0.2.3,
Apache-2.0), and ``--security-opt seccomp=<profile JSON>`` takes any profile in the same
format. Three steps, each mirroring the component Docker uses:

* :func:`resolve` (moby's ``setupSeccomp``): ``archMap`` picks the architectures for this host,
  ``includes``/``excludes`` keep or drop each rule by the container's capabilities (its bounding
  set), the architecture and the kernel version;
* :func:`compile_profile` (runc + libseccomp): the actions (``SCMP_ACT_KILL`` is kill-thread,
  ``ERRNO``/``TRACE`` default to EPERM), rules whose action is the default are dropped, unknown
  syscall names are ignored, rules that name one argument twice become one rule per condition,
  arguments compare as 64-bit values in two 32-bit halves (only the low half on the 32-bit
  ABIs i386 and x32), i386 socket/IPC calls are matched both direct and through
  ``socketcall``/``ipc``, other architectures (and x32 when not listed) get the kill action;
* runc's ``-ENOSYS`` stub: a syscall numbered above every syscall the profile names (newer than
  the profile) returns ENOSYS instead of the default errno, so libc falls back to older calls.

The program is the raw ``struct sock_filter[]`` (8 bytes per instruction) that the shim loads with
``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER)``. :func:`evaluate` runs a program on one syscall
(a small classic-BPF interpreter) for tests and debugging.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .seccomp_syscalls import numbers as _table

log = logging.getLogger(__name__)

DEFAULT_PROFILE_PATH = Path(__file__).with_name("seccomp_default.json")

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000

RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000

# classic BPF opcodes used here
LD_W_ABS, JA, JEQ, JGT, JGE, JSET, RET, AND_K = 0x20, 0x05, 0x15, 0x25, 0x35, 0x45, 0x06, 0x54

OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ")

# libseccomp's architecture names (profile "architectures") -> ABI; the ones that can never
# run on an x86_64 kernel are accepted and leave no trace in the program.
ARCHES = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32"}
FOREIGN_ARCHES = {
    "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
}
ABI_INDEX = {"amd64": 0, "x32": 1, "x86": 2}

# i386 calls that libseccomp also matches through the multiplexers (arg0 = sub-call number)
SOCKETCALL = {n: i + 1 for i, n in enumerate((
    "socket", "bind", "connect", "listen", "accept", "getsockname", "getpeername", "socketpair",
    "send", "recv", "sendto", "recvfrom", "shutdown", "setsockopt", "getsockopt", "sendmsg",
    "recvmsg", "accept4", "recvmmsg", "sendmmsg"))}
IPC = {"semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12,
       "msgget": 13, "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24}
I386_SOCKETCALL, I386_IPC = 102, 117


class ProfileError(ValueError):
    """The profile is not a valid Docker seccomp profile (the message names the problem)."""


_numbers = functools.lru_cache(maxsize=1)(_table)


# -- step 1: moby's setupSeccomp --------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    name: str
    action: str
    errno_ret: int | None
    args: tuple[tuple[int, str, int, int], ...]  # (index, op, value, valueTwo)


@dataclass(frozen=True)
class Resolved:
    default_action: str
    default_errno: int | None
    arches: tuple[str, ...]   # ABIs ("amd64", "x32", "x86"), native first
    rules: tuple[Rule, ...]


def _kernel() -> tuple[int, int]:
    rel = os.uname().release
    try:
        a, b = rel.split(".")[:2]
        return int(a), int("".join(c for c in b if c.isdigit()) or 0)
    except ValueError:
        raise ProfileError(f"failed to parse kernel version {rel!r}") from None


def _kver(v: Any) -> tuple[int, int] | None:
    if v in (None, ""):
        return None
    parts = v.split(".") if isinstance(v, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or parts == ["0", "0"]:
        raise ProfileError(f'invalid kernel version: {json.dumps(v)}, expected "<kernel>.<major>"')
    return int(parts[0]), int(parts[1])


def _strlist(v: Any, what: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ProfileError(f"{what} must be a list of strings")
    return v


def _uint(v: Any, what: str, bits: int = 64) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << bits):
        raise ProfileError(f"{what} must be an unsigned {bits}-bit integer, not {json.dumps(v)}")
    return v


def _action(name: Any, what: str) -> str:
    if name in ("SCMP_ACT_NOTIFY",):
        raise ProfileError(f"{what} {name} is not supported by this engine (no seccomp agent)")
    if name not in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP",
                    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"):
        raise ProfileError(f"{what} is invalid: {json.dumps(name)}")
    return name


def parse(text: str | bytes) -> dict:
    """The profile as JSON (Docker's "Decoding seccomp profile failed" on bad JSON)."""
    try:
        profile = json.loads(text)
    except ValueError as e:
        raise ProfileError(f"Decoding seccomp profile failed: {e}") from None
    if not isinstance(profile, dict):
        raise ProfileError("Decoding seccomp profile failed: the profile must be a JSON object")
    return profile


def resolve(profile: dict, caps: set[str] | frozenset[str] | list[str], *, arch: str = "amd64",
            kernel: tuple[int, int] | None = None) -> Resolved | None:
    """Docker's profile for a container whose bounding set is ``caps`` (None: seccomp off)."""
    caps = set(caps)
    default = profile.get("defaultAction") or ""
    syscalls = profile.get("syscalls")
    if syscalls is not None and not isinstance(syscalls, list):
        raise ProfileError("syscalls must be a list")
    if not default and not syscalls:
        return None  # moby: no default action and no syscalls means seccomp disabled
    default = _action(default, "default action")
    default_errno = profile.get("defaultErrnoRet")
    if default_errno is not None:
        default_errno = _uint(default_errno, "defaultErrnoRet", 16)
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError("both 'architectures' and 'archMap' are specified in the seccomp profile, "
                           "use either 'architectures' or 'archMap'")
    names = _strlist(profile.get("architectures"), "architectures")
    amap = profile.get("archMap") or []
    if not isinstance(amap, list):
        raise ProfileError("archMap must be a list")
    for entry in amap:
        if not isinstance(entry, dict):
            raise ProfileError("archMap entries must be objects")
        subs = _strlist(entry.get("subArchitectures"), "subArchitectures")
        if entry.get("architecture") == "SCMP_ARCH_X86_64" and arch == "amd64":
            names = [entry["architecture"], *subs]
        for a in [entry.get("architecture"), *subs]:
            if a not in ARCHES and a not in FOREIGN_ARCHES:
                raise ProfileError(f"unknown architecture in seccomp profile: {json.dumps(a)}")
    for a in names:
        if a not in ARCHES and a not in FOREIGN_ARCHES:
            raise ProfileError(f"unknown architecture in seccomp profile: {json.dumps(a)}")
    abis = ["amd64"] + sorted({ARCHES[a] for a in names if a in ARCHES} - {"amd64"})
    for flag in _strlist(profile.get("flags"), "flags"):
        if flag != "SECCOMP_FILTER_FLAG_TSYNC":  # tsync: one thread anyway
            raise ProfileError(f"seccomp flag {flag} is not supported by this engine")
    if profile.get("listenerPath"):
        raise ProfileError("seccomp listenerPath (SCMP_ACT_NOTIFY) is not supported by this engine")

    rules: list[Rule] = []
    for i, call in enumerate(syscalls or []):
        if not isinstance(call, dict):
            raise ProfileError(f"syscalls[{i}] must be an object")
        names_ = _strlist(call.get("names"), f"syscalls[{i}].names")
        if call.get("name"):
            if names_:
                raise ProfileError("both 'name' and 'names' are specified in the seccomp profile, "
                                   "use either 'name' or 'names'")
            if not isinstance(call["name"], str):
                raise ProfileError(f"syscalls[{i}].name must be a string")
            names_ = [call["name"]]
        if any(not n for n in names_):
            raise ProfileError("empty string is not a valid syscall")
        action = _action(call.get("action"), f"action of syscalls[{i}] ({', '.join(names_)})")
        errno_ret = call.get("errnoRet")
        if errno_ret is not None:
            errno_ret = _uint(errno_ret, f"syscalls[{i}].errnoRet", 16)
        args = []
        for j, a in enumerate(call.get("args") or []):
            if not isinstance(a, dict):
                raise ProfileError(f"syscalls[{i}].args[{j}] must be an object")
            index = _uint(a.get("index", 0), f"syscalls[{i}].args[{j}].index", 8)
            if index > 5:
                raise ProfileError(f"syscalls[{i}].args[{j}].index {index} is out of range (0-5)")
            if a.get("op") not in OPS:
                raise ProfileError(f"syscalls[{i}].args[{j}].op is invalid: {json.dumps(a.get('op'))}")
            args.append((index, a["op"], _uint(a.get("value", 0), f"syscalls[{i}].args[{j}].value"),
                         _uint(a.get("valueTwo", 0), f"syscalls[{i}].args[{j}].valueTwo")))
        if not _keep(call, i, caps, arch, kernel):
            continue
        rules += [Rule(n, action, errno_ret, tuple(args)) for n in names_]
    return Resolved(default, default_errno, tuple(abis), tuple(rules))


def _filter(call: dict, i: int, key: str) -> tuple[list[str], list[str], tuple[int, int] | None]:
    f = call.get(key) or {}
    if not isinstance(f, dict):
        raise ProfileError(f"syscalls[{i}].{key} must be an object")
    return (_strlist(f.get("caps"), f"syscalls[{i}].{key}.caps"),
            _strlist(f.get("arches"), f"syscalls[{i}].{key}.arches"), _kver(f.get("minKernel")))


def _keep(call: dict, i: int, caps: set[str], arch: str, kernel: tuple[int, int] | None) -> bool:
    xcaps, xarches, xkern = _filter(call, i, "excludes")
    icaps, iarches, ikern = _filter(call, i, "includes")
    if arch in xarches or any(c in caps for c in xcaps):
        return False
    if xkern is not None and (kernel or _kernel()) >= xkern:
        return False
    if iarches and arch not in iarches:
        return False
    if any(c not in caps for c in icaps):
        return False
    return not (ikern is not None and (kernel or _kernel()) < ikern)


# -- step 2: the program ----------------------------------------------------------------------

def _ret(action: str, errno_ret: int | None) -> int:
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return RET_TRAP
    if action == "SCMP_ACT_ERRNO":
        return RET_ERRNO | (errno.EPERM if errno_ret is None else errno_ret)
    if action == "SCMP_ACT_TRACE":
        return RET_TRACE | (errno.EPERM if errno_ret is None else errno_ret)
    if action == "SCMP_ACT_LOG":
        return RET_LOG
    return RET_ALLOW


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


Cond = tuple[int, str, int, int]


def _cond(c: Cond, wide: bool, fail: int) -> list[tuple[int, int, int, int]]:
    """Code for one comparison: falls through when it holds, else jumps ``fail`` instructions past
    its own end (libseccomp's 64-bit compare: high half first, then low)."""
    index, op, value, two = c
    lo_off, hi_off = 16 + 8 * index, 20 + 8 * index
    v_hi, v_lo = value >> 32, value & 0xFFFFFFFF
    if op == "SCMP_CMP_MASKED_EQ":
        low = (lo_off, v_lo, two & 0xFFFFFFFF)
        parts = [(hi_off, v_hi, two >> 32), low] if wide else [low]
        out: list = []
        for k, (off, mask, datum) in enumerate(parts):
            rest = 3 * (len(parts) - k - 1)
            out += [_ins(LD_W_ABS, off), _ins(AND_K, mask), _ins(JEQ, datum, 0, rest + fail)]
        return out
    # each op as (high-half test, low-half test); a 32-bit ABI only has the low half
    lo = [_ins(LD_W_ABS, lo_off)]
    if op == "SCMP_CMP_EQ":
        lo.append(_ins(JEQ, v_lo, 0, fail))
    elif op == "SCMP_CMP_NE":
        lo.append(_ins(JEQ, v_lo, fail, 0))
    elif op == "SCMP_CMP_GT":
        lo.append(_ins(JGT, v_lo, 0, fail))
    elif op == "SCMP_CMP_GE":
        lo.append(_ins(JGE, v_lo, 0, fail))
    elif op == "SCMP_CMP_LT":
        lo.append(_ins(JGE, v_lo, fail, 0))
    elif op == "SCMP_CMP_LE":
        lo.append(_ins(JGT, v_lo, fail, 0))
    if not wide:
        return lo
    n = len(lo)  # instructions after the high-half block
    hi = [_ins(LD_W_ABS, hi_off)]
    if op == "SCMP_CMP_EQ":
        hi.append(_ins(JEQ, v_hi, 0, n + fail))
    elif op == "SCMP_CMP_NE":       # differs in the high half: holds
        hi.append(_ins(JEQ, v_hi, 0, n))
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        hi += [_ins(JGT, v_hi, 1 + n, 0), _ins(JEQ, v_hi, 0, n + fail)]
    else:  # LT, LE
        hi += [_ins(JGT, v_hi, 1 + n + fail, 0), _ins(JEQ, v_hi, 0, n)]
    return hi + lo


def _rule_code(conds: tuple[Cond, ...], ret: int, wide: bool) -> list:
    """All of ``conds`` hold -> ``ret``; otherwise fall through past this code."""
    body: list = [_ins(RET, ret)]
    for c in reversed(conds):
        body = _cond(c, wide, len(body)) + body
    return body


@dataclass
class _Sys:
    uncond: int | None = None
    conditional: list | None = None  # [(conds, ret)]


def _rules_for_abi(res: Resolved, abi: str, table: dict) -> tuple[dict[int, _Sys], int]:
    """Per syscall number: what libseccomp would hold for this ABI; and the largest number named."""
    default_ret = _ret(res.default_action, res.default_errno)
    col = ABI_INDEX[abi]
    base = X32_SYSCALL_BIT if abi == "x32" else 0
    out: dict[int, _Sys] = {}
    largest = 0

    def add(nr: int, ret: int, conds: tuple[Cond, ...]) -> None:
        s = out.setdefault(nr, _Sys())
        if not conds:
            if s.uncond is None:         # the first unconditional rule stands (libseccomp)
                s.uncond, s.conditional = ret, None
        elif s.uncond is None:
            s.conditional = (s.conditional or []) + [(conds, ret)]

    for rule in res.rules:
        nrs = table.get(rule.name)
        nr = None if nrs is None else nrs[col]
        if nr is not None and not (abi == "x86" and (rule.name in SOCKETCALL or rule.name in IPC)):
            largest = max(largest, base + nr)  # (libseccomp names these by their multiplexed form on i386)
        ret = _ret(rule.action, rule.errno_ret)
        if ret == default_ret:
            continue  # runc: redundant with the default action
        if nrs is None:
            continue  # unknown name: ignored, as runc does
        # one argument named twice: each condition is its own rule (runc)
        counts = [a[0] for a in rule.args]
        groups = [(a,) for a in rule.args] if len(set(counts)) != len(counts) else [rule.args]
        for conds in groups:
            if nr is not None:
                add(base + nr, ret, conds)
            if abi == "x86" and (rule.name in SOCKETCALL or rule.name in IPC):
                mux, sub = ((I386_SOCKETCALL, SOCKETCALL[rule.name]) if rule.name in SOCKETCALL
                            else (I386_IPC, IPC[rule.name]))
                add(mux, ret, ((0, "SCMP_CMP_EQ", sub, 0), *(c for c in conds if c[0] != 0)))
    return out, largest


def _abi_section(res: Resolved, abi: str, table: dict, enosys: bool) -> list:
    """Code for one ABI, entered with A = syscall number; always returns."""
    default_ret = _ret(res.default_action, res.default_errno)
    syscalls, largest = _rules_for_abi(res, abi, table)
    wide = abi == "amd64"
    code: list = []
    if enosys and largest:
        code += [_ins(JGT, largest, 0, 1), _ins(RET, RET_ERRNO | errno.ENOSYS)]
    # ascending runs of consecutive numbers with the same unconditional verdict
    items = sorted(syscalls.items())
    i = 0
    while i < len(items):
        nr, s = items[i]
        if s.uncond is not None:
            j = i
            while (j + 1 < len(items) and items[j + 1][1].uncond == s.uncond
                   and items[j + 1][0] == items[j][0] + 1):
                j += 1
            hi = items[j][0]
            if j == i:
                code += [_ins(JEQ, nr, 0, 1), _ins(RET, s.uncond)]
            else:  # nothing below `nr` is matched later (ascending): below the run is the default
                code += [_ins(JGT, hi, 3, 0), _ins(JGE, nr, 0, 1), _ins(RET, s.uncond), _ins(RET, default_ret)]
            i = j + 1
            continue
        block: list = []
        for conds, ret in s.conditional or []:
            block += _rule_code(conds, ret, wide)
        block.append(_ins(RET, default_ret))
        if len(block) <= 255:
            code.append(_ins(JEQ, nr, 0, len(block)))
        else:
            code += [_ins(JEQ, nr, 1, 0), _ins(JA, len(block))]
        code += block
        i += 1
    code.append(_ins(RET, default_ret))
    return code


def compile_profile(res: Resolved) -> bytes:
    """The BPF program for a resolved profile (x86_64 kernel)."""
    table = _numbers()
    bad_arch = RET_KILL_THREAD  # libseccomp's default bad-architecture action
    enosys = (res.default_action not in ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
              and res.default_errno != errno.ENOSYS)
    x64: list = [_ins(LD_W_ABS, 0)]
    if "x32" in res.arches:
        x32 = _abi_section(res, "x32", table, enosys)
        native = _abi_section(res, "amd64", table, enosys)
        # A >= X32 bit: the x32 code, else the x86_64 code
        if len(native) <= 255:
            x64 += [_ins(JGE, X32_SYSCALL_BIT, len(native), 0)] + native + x32
        else:
            x64 += [_ins(JGE, X32_SYSCALL_BIT, 0, 1), _ins(JA, len(native))] + native + x32
    else:
        x64 += [_ins(JGE, X32_SYSCALL_BIT, 0, 1), _ins(RET, bad_arch)]
        x64 += _abi_section(res, "amd64", table, enosys)
    i386: list = []
    if "x86" in res.arches:
        i386 = [_ins(LD_W_ABS, 0)] + _abi_section(res, "x86", table, enosys)
    prog: list = [_ins(LD_W_ABS, 4)]
    if i386:
        prog += [_ins(JEQ, AUDIT_ARCH_I386, 0, 1), _ins(JA, len(x64) + 2)]
    prog += [_ins(JEQ, AUDIT_ARCH_X86_64, 1, 0), _ins(RET, bad_arch)] + x64 + i386
    if len(prog) > 4096:
        raise ProfileError(f"seccomp profile too large: {len(prog)} BPF instructions (the kernel takes 4096)")
    return b"".join(struct.pack("<HBBI", *ins) for ins in prog)


# -- the container's filter -------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def default_profile() -> dict:
    return json.loads(DEFAULT_PROFILE_PATH.read_text())


@functools.lru_cache(maxsize=64)
def _build_cached(text: str | None, caps: frozenset[str]) -> bytes | None:
    profile = default_profile() if text is None else parse(text)
    res = resolve(profile, caps)
    return None if res is None else compile_profile(res)


def build(caps: Iterable[str] = (), profile: str | None = None) -> bytes | None:
    """The program for a container holding ``caps`` (names like "CAP_SYS_ADMIN"): Docker's default
    profile, or ``profile`` (the JSON text of a Docker-format profile). None: the profile turns
    seccomp off."""
    return _build_cached(profile, frozenset(caps))


def check(profile: str) -> None:
    """Raise :class:`ProfileError` if ``profile`` (JSON text) cannot be loaded."""
    res = resolve(parse(profile), set())
    if res is not None:
        compile_profile(res)


def for_container(profile: bool | str | None, caps: list[str], privileged: bool) -> bytes | None:
    """The program for a spec's ``seccomp`` setting, or None (unconfined).

    ``profile``: True/"default" (Docker's default, none for privileged containers, as Docker),
    False/"unconfined"/None/"" (none), or the JSON text of a custom profile (applied to privileged
    containers too, as Docker)."""
    if profile in (False, "unconfined", None, ""):
        return None
    custom = None if profile in (True, "default") else str(profile)
    if custom is None and privileged:
        return None
    if os.uname().machine != "x86_64":
        if custom is not None:
            from ..errors import NotSupported
            raise NotSupported("custom seccomp profiles are only supported on x86_64")
        log.warning("the default seccomp profile is only compiled for x86_64; running unconfined")
        return None
    try:
        return build(caps, custom)
    except ProfileError as e:
        from ..errors import InvalidArgument
        raise InvalidArgument(str(e)) from None


def denied(caps: Iterable[str] = ()) -> list[str]:
    """Names of x86_64 syscalls that the default profile does not allow unconditionally."""
    res = resolve(default_profile(), set(caps))
    assert res is not None
    ok = {r.name for r in res.rules if r.action == "SCMP_ACT_ALLOW" and not r.args}
    return sorted(n for n, nrs in _numbers().items() if nrs[0] is not None and n not in ok)


# -- a classic BPF interpreter (tests, debugging) ---------------------------------------------

@functools.lru_cache(maxsize=16)
def _decode(prog: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]


def evaluate(prog: bytes, nr: int, args: tuple[int, ...] = (), arch: int = AUDIT_ARCH_X86_64,
             trace: list[int] | None = None) -> int:
    """The value ``prog`` returns for syscall ``nr`` with ``args`` on ``arch`` (``trace`` collects
    the instruction indexes executed)."""
    argv = (list(args) + [0] * 6)[:6]
    data = struct.pack("<IIQ6Q", nr & 0xFFFFFFFF, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in argv])
    insns = _decode(prog)
    a = x = 0
    mem = [0] * 16
    pc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if trace is not None:
            trace.append(pc)
        pc += 1
        cls = code & 0x07
        if code == 0x20:
            a = struct.unpack_from("<I", data, k)[0]
        elif code == 0x00:
            a = k
        elif code == 0x01:
            x = k
        elif code == 0x60:
            a = mem[k]
        elif code == 0x61:
            x = mem[k]
        elif code == 0x02:
            mem[k] = a
        elif code == 0x03:
            mem[k] = x
        elif code == 0x07:
            x = a
        elif code == 0x87:
            a = x
        elif code == 0x54:
            a &= k
        elif code == 0x44:
            a |= k
        elif code == 0x05:
            pc += k
        elif cls == 0x05:
            src = x if code & 0x08 else k
            op = code & 0xF0
            cond = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if cond else jf
        elif code == 0x06:
            return k
        elif code == 0x16:
            return a
        else:
            raise ValueError(f"unsupported BPF opcode {code:#x}")
