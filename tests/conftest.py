"""Suite-wide checks. After the whole run nothing of Dockyard's may be left on the machine:
no mount, no cgroup, no shim (container monitor) process. A leftover fails the run.
``DOCKYARD_SKIP_LEAK_CHECK=1`` turns the check off while other test runs share the machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest


def leftovers() -> list[str]:
    found = []
    with open("/proc/self/mounts") as f:
        # test daemons' data roots are pytest temp dirs: look for the storage drivers' layout too
        found += [f"mount: {line.split()[1]}" for line in f
                  if "dockyard" in line or "/storage/overlay/" in line or "/storage/vfs/" in line]
    for base in Path("/sys/fs/cgroup").iterdir() if Path("/sys/fs/cgroup").exists() else []:
        found += [f"cgroup: {p}" for p in base.glob("dockyard*")]
        found += [f"cgroup: {p}" for p in base.glob("*/dockyard*")]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dockyard-shim" in cmdline.split(b"\0")[0]:
            found.append(f"process: {pid} " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    found += network_leftovers()
    return found


def network_leftovers() -> list[str]:
    """Bridges and veths (``dockyard0``, ``dy...``), nftables tables (``dockyard*``) and pinned
    container network namespaces (nsfs mounts under an exec root's ``netns/``)."""
    import subprocess

    found = []
    net = Path("/sys/class/net")
    for link in sorted(os.listdir(net)) if net.exists() else []:
        if link.startswith("dy") or link.startswith("dockyard"):
            found.append(f"link: {link}")
    try:
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout.split("\n")
    except OSError:
        tables = []
    found += [f"nft: {t.strip()}" for t in tables if t.strip().split(" ")[-1].startswith("dockyard")]
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            fstype = parts[parts.index("-") + 1] if "-" in parts else ""
            if fstype == "nsfs" and "/netns/" in parts[4] and "/exec" in parts[4]:
                found.append(f"netns: {parts[4]}")
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.geteuid() != 0 or session.config.option.collectonly or os.environ.get("DOCKYARD_SKIP_LEAK_CHECK"):
        return
    left = leftovers()
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        # the kernel deletes a released network namespace (and the veths in it) in the
        # background, and a shim may still be exiting: wait for what goes away by itself
        time.sleep(0.2)
        left = leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {item}" for item in left)
        if reporter is not None:
            reporter.write_line(f"\nDockyard left things behind after the tests:\n{lines}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
