"""Issue 14, findings 5 and 6: a ``kill -9`` in the middle of ``network create`` or of a
volume create/remove leaves the old state or the new one after the restart, never a bridge,
an nft rule, a volume directory or a temp file that no record accounts for.

The daemon dies at a named crash point (:mod:`dockyard.crashpoints`: ``os._exit(137)``, no
cleanup runs). The networks use a subnet of their own, so the bridge a test looks for is the
link holding that subnet's gateway address: another daemon's links are never looked at."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from dockyard.networks.service import instance_of

pytestmark = pytest.mark.privileged


def links_with_address(ip: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines() if f" {ip}/" in line]


def nft_table(daemon) -> str:
    table = "dockyard_" + instance_of(daemon.data_root)
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout


def names(daemon, *args: str) -> list[str]:
    r = daemon.docker(*args)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode().split()


@pytest.mark.parametrize("point, link_made", [
    ("bridge.create.remembered", False),  # the driver's intent is written, no link yet
    ("bridge.create.link", True),  # the bridge exists; the driver has not finished (the leak of finding 5)
    ("network.create.record", True),  # bridge and firewall made; the service's record not written
])
def test_kill_9_during_network_create_leaves_no_bridge(crash_daemon, revive, point, link_made):
    subnet_byte = random.randrange(1, 250)
    gateway = f"10.239.{subnet_byte}.1"
    daemon = crash_daemon(point)
    r = daemon.docker("network", "create", "--subnet", f"10.239.{subnet_byte}.0/24", "tcrash")
    assert r.returncode != 0  # the daemon died before answering
    assert daemon.proc.wait(timeout=60) == 137
    made = links_with_address(gateway)
    try:
        assert bool(made) == link_made, made  # the crash point is where this test says
        revive(daemon)

        assert "tcrash" not in names(daemon, "network", "ls", "--format", "{{.Name}}")
        assert links_with_address(gateway) == []  # reconciled away, not leaked
        for link in made:
            assert link not in nft_table(daemon)
        known = json.loads((daemon.data_root / "network" / "bridge" / "bridges.json").read_text())
        assert not set(made) & set(known)
        # the name and the subnet are free again, and the network works
        names(daemon, "network", "create", "--subnet", f"10.239.{subnet_byte}.0/24", "tcrash")
        assert len(links_with_address(gateway)) == 1
        names(daemon, "network", "rm", "tcrash")
        assert links_with_address(gateway) == []
    finally:  # what a failed run leaked: the links this test's daemon made on its own subnet
        for link in made:
            subprocess.run(["ip", "link", "del", link], capture_output=True)


def volume_dirs(daemon) -> set[str]:
    root = daemon.data_root / "volumes"
    return {p.name for p in root.iterdir() if p.is_dir() and p.name != "_meta"}


def meta_files(daemon) -> set[str]:
    return {p.name for p in (daemon.data_root / "volumes" / "_meta").iterdir()}


@pytest.mark.parametrize("point, survives", [
    ("volume.create.intent", False),  # intent written, nothing made: nothing to undo
    ("volume.create.driver", False),  # the directory exists, no record (finding 6): undone
    ("volume.create.record", True),  # the record is written: the volume exists
])
def test_kill_9_during_volume_create_leaves_old_or_new_state(crash_daemon, revive, point, survives):
    daemon = crash_daemon(point)
    assert daemon.docker("volume", "create", "tvol").returncode != 0
    revive(daemon)
    listed = names(daemon, "volume", "ls", "-q")
    assert ("tvol" in listed) == survives
    assert volume_dirs(daemon) == set(listed)  # no directory without a record, no record without one
    assert meta_files(daemon) == {f"{n}.json" for n in listed}  # no intent, no temp file left
    names(daemon, "volume", "create", "tvol")  # the name works again
    names(daemon, "volume", "rm", "tvol")
    assert volume_dirs(daemon) == set()


@pytest.mark.parametrize("point", ["volume.remove.intent", "volume.remove.driver"])
def test_kill_9_during_volume_rm_finishes_the_removal(crash_daemon, revive, point):
    daemon = crash_daemon(point)
    names(daemon, "volume", "create", "tvol")
    (daemon.data_root / "volumes" / "tvol" / "_data" / "f").write_text("data")
    assert daemon.docker("volume", "rm", "tvol").returncode != 0
    revive(daemon)
    assert names(daemon, "volume", "ls", "-q") == []
    assert volume_dirs(daemon) == set()
    assert meta_files(daemon) == set()


def test_startup_removes_stale_temp_files_and_empty_unrecorded_volume_dirs(make_daemon):
    """What a write cut by kill -9 leaves (``write_atomic``'s ``.<name>.tmp-XXXXXXXX``), and
    volume directories without a record from a crash before intents were written."""
    daemon = make_daemon()
    names(daemon, "volume", "create", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "keep")
    names(daemon, "network", "create", "--subnet", f"10.239.{random.randrange(1, 250)}.0/24", "tnet")
    daemon.stop()
    root = daemon.data_root
    stale = [root / "networks" / ".0123abcd.json.tmp-k2j3h4g5", root / "volumes" / "_meta" / ".keep.json.tmp-abcd1234",
             root / "volumes" / "keep" / ".opts.json.tmp-zz09_x1y", root / "network" / "bridge" / ".bridges.json.tmp-a1b2c3d4",
             root / "network" / "bridge" / ".published-ports.json.tmp-q1w2e3r4"]
    for p in stale:
        p.write_text('{"half": ')
    (root / "volumes" / "orphan" / "_data").mkdir(parents=True)  # created, never recorded
    (root / "volumes" / "withdata" / "_data").mkdir(parents=True)
    (root / "volumes" / "withdata" / "_data" / "precious").write_text("user data")
    # a user's file that only looks like a temp file, inside a volume: never touched
    lookalike = root / "volumes" / "keep" / "_data" / ".x.json.tmp-abcdefgh"
    lookalike.write_text("mine")
    daemon.start()
    try:
        assert [p for p in stale if p.exists()] == []
        assert not (root / "volumes" / "orphan").exists()
        assert (root / "volumes" / "withdata" / "_data" / "precious").read_text() == "user data"
        assert lookalike.read_text() == "mine"
        assert set(names(daemon, "volume", "ls", "-q")) == {"keep"}
        assert "tnet" in names(daemon, "network", "ls", "--format", "{{.Name}}")
    finally:
        names(daemon, "volume", "rm", "keep")
        names(daemon, "network", "rm", "tnet")
        import shutil

        shutil.rmtree(root / "volumes" / "withdata")
