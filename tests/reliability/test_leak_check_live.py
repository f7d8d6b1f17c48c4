"""The suite's leak check on the real machine: an unrelated dockyardd that makes bridges,
nftables tables, cgroup parents and volumes during the session never counts; a daemon of ours
killed with its network in place does, and once it cleaned up nothing is left."""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from dockyard.testing import leaks
from dockyard.testing.daemon import DaemonProcess

pytestmark = pytest.mark.privileged


def ok(daemon: DaemonProcess, *args: str) -> str:
    r = daemon.docker(*args)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().strip()


def bridge_holding(ip: str) -> str:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if f" {ip}/" in line)


def test_leak_check_ignores_an_unrelated_daemon_and_finds_our_own_leftovers(make_daemon, tmp_path):
    unrelated_base = Path(tempfile.mkdtemp(prefix="dockyard-unrelated-"))  # not under our directory
    before = leaks.snapshot()
    unrelated = DaemonProcess(unrelated_base)
    try:
        unrelated.start()
        ok(unrelated, "network", "create", "--subnet", f"10.238.{random.randrange(1, 250)}.0/24", "theirs")
        ok(unrelated, "volume", "create", "theirs")
        ours = make_daemon(base=tmp_path / "ours")
        octet = random.randrange(1, 250)
        gateway = f"10.237.{octet}.1"
        ok(ours, "network", "create", "--subnet", f"10.237.{octet}.0/24", "ours")
        ours.kill()  # kill -9: its bridges and nftables table stay on the machine
        who = leaks.owner([tmp_path])
        inst = leaks.instance_of(ours.data_root)
        assert who.instances == {inst}

        found = leaks.leaks(before, leaks.snapshot(), who)
        # the default bridge exists only if a default pool was free (other daemons may use them all)
        if Path(f"/sys/class/net/dy{inst}-br0").exists():
            assert f"link: dy{inst}-br0" in found
        assert f"nft: table ip dockyard_{inst}" in found
        assert f"link: {bridge_holding(gateway)}" in found  # the user network's bridge
        theirs = leaks.instance_of(unrelated.data_root)
        assert not [line for line in found if theirs in line or str(unrelated_base) in line], found

        ours.start()  # reconcile, then a clean stop removes what it made
        ok(ours, "network", "rm", "ours")
        ours.stop()
        found = leaks.leaks(before, leaks.snapshot(), leaks.owner([tmp_path]))
        assert found == []
    finally:
        unrelated.finish()
        shutil.rmtree(unrelated_base, ignore_errors=True)
