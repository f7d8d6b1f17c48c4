"""A minimal busybox root filesystem for runtime tests and benchmarks (needs /bin/busybox,
a static build: Debian's busybox-static)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "echo", "cat", "sleep", "id", "ls", "hostname", "true", "false", "grep", "touch",
           "dd", "yes", "tty", "stty", "head", "tail", "wc", "env", "pwd", "mount", "unshare",
           "kill", "ps", "mkdir", "rm", "stat", "readlink", "test", "printf", "uname", "nc",
           "chmod", "chown", "ulimit", "seq", "cut", "tr", "od", "sync", "nproc", "whoami"]


def available() -> bool:
    return os.path.exists(BUSYBOX)


def make_rootfs(dest: Path) -> Path:
    """Create ``dest`` with bin/busybox, applet symlinks, /etc/passwd and /etc/group and
    empty /proc /sys /dev /tmp. Returns ``dest``."""
    dest = Path(dest)
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    for a in APPLETS:
        link = dest / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root", "sbin", "usr/bin"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "user:x:1000:1000:user:/tmp:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n")
    return dest
