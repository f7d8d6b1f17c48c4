"""Linux capability names and Docker's default set.

``resolve(cap_add, cap_drop, privileged)`` returns the sorted list of names a container
gets, exactly like Docker: start from :data:`DOCKER_DEFAULT`, drop, then add; "ALL" works
on either side; names may omit the ``CAP_`` prefix and are case-insensitive.
"""

from __future__ import annotations

from ..errors import InvalidArgument

CAPS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
    "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}

DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # mask 0xa80425fb


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPS.values())


def normalize(name: str) -> str:
    n = name.strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in CAPS:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return n


def all_caps() -> list[str]:
    top = last_cap()
    return sorted((n for n, v in CAPS.items() if v <= top), key=CAPS.__getitem__)


def resolve(cap_add: list[str] | None = None, cap_drop: list[str] | None = None,
            privileged: bool = False) -> list[str]:
    """Docker's rule: privileged -> all; else default - drop + add ("ALL" allowed)."""
    if privileged:
        return all_caps()
    add = [normalize(c) for c in cap_add or []]
    drop = [normalize(c) for c in cap_drop or []]
    caps = set() if "ALL" in drop else set(DOCKER_DEFAULT) - set(drop)
    if "ALL" in add:
        caps = set(all_caps())
    else:
        caps |= set(add)
    return sorted(caps, key=CAPS.__getitem__)


def mask(names: list[str]) -> int:
    """Bit mask of capability names (``ALL`` expands to every capability)."""
    m = 0
    for n in names:
        n = normalize(n)
        if n == "ALL":
            return sum(1 << CAPS[c] for c in all_caps())
        m |= 1 << CAPS[n]
    return m
