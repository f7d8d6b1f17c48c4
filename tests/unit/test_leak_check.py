"""The suite's leak check (``dockyard.testing.leaks``) counts only what is new since the start
and belongs to the judged daemons' directories, never another dockyardd's objects."""

from __future__ import annotations

import json
from pathlib import Path

from dockyard.testing.leaks import Snapshot, find_data_roots, instance_of, is_dockyard_process, leaks, owner

FOREIGN = "a1b2c3d4"  # another daemon's instance (its data root is elsewhere)


def make_root(base: Path, bridges: list[str] = (), network_ids: list[str] = ()) -> Path:
    root = base / "t0" / "d0" / "data"
    (root / "network" / "bridge").mkdir(parents=True)
    (root / "networks").mkdir()
    (root / "dockyardd.lock").write_text("")
    (root / "network" / "bridge" / "bridges.json").write_text(json.dumps(list(bridges)))
    for nid in network_ids:
        (root / "networks" / f"{nid}.json").write_text(json.dumps({"net": {"id": nid, "options": {}}}))
    return root


def foreign_state() -> Snapshot:
    """A busy foreign daemon (default data root and a test run elsewhere)."""
    return Snapshot(
        mounts={"/", "/var/lib/dockyard/storage/overlay/c1/merged", "/tmp/other/d/exec/netns/c1"},
        netns={"/tmp/other/d/exec/netns/c1"},
        cgroups={"/sys/fs/cgroup/memory/dockyard/c1", f"/sys/fs/cgroup/memory/dockyard-{FOREIGN}/c1"},
        processes={10: "/usr/bin/python3 -m dockyard -H unix:///tmp/other/d.sock --data-root /tmp/other/d/data",
                   11: "/tmp/other/d/data/runtime/native/dockyard-shim-1 /tmp/other/d/exec/runtime/native/c1/spec"},
        links={"dockyard0": "", f"dy{FOREIGN}-br0": "", "dyv111111111111": f"dy{FOREIGN}-br0"},
        tables={"dockyard", f"dockyard_{FOREIGN}", f"dockyard_{FOREIGN}_ports"},
        accepts={f"-A FORWARD -i dy{FOREIGN}-br0 -m comment --comment dockyard:dockyard_{FOREIGN} -j ACCEPT"},
    )


def grown(before: Snapshot, **more: object) -> Snapshot:
    after = Snapshot(**{k: (v.copy() if hasattr(v, "copy") else v) for k, v in vars(before).items()})
    for key, value in more.items():
        current = getattr(after, key)
        if isinstance(current, dict):
            current.update(value)
        else:
            current |= set(value)
    return after


def test_a_foreign_daemons_objects_never_count_whether_old_or_new(tmp_path):
    make_root(tmp_path)
    who = owner([tmp_path])
    # nothing before the session; during it a foreign daemon made all of this, and still runs
    after = foreign_state()
    after.links["dy-0123456789ab"] = ""  # a user network of the foreign daemon: attributed to nobody
    after.links["dyv222222222222"] = "dy-0123456789ab"
    assert leaks(Snapshot(), after, who) == []


def test_our_leftovers_count(tmp_path):
    root = make_root(tmp_path, bridges=["dy-feedfacecafe"], network_ids=["ab" * 32])
    inst = instance_of(root)
    who = owner([tmp_path])
    assert who.data_roots == [root] and who.instances == {inst}
    exec_root = root.parent / "exec"
    before = foreign_state()
    after = grown(
        before,
        mounts=[str(root / "storage/overlay/c2/merged"), str(exec_root / "netns/c2")],
        netns=[str(exec_root / "netns/c2")],
        cgroups=[f"/sys/fs/cgroup/memory/dockyard-{inst}", f"/sys/fs/cgroup/pids/dockyard-{inst}/c2"],
        processes={20: f"{root}/runtime/native/dockyard-shim-1 {exec_root}/runtime/native/c2/spec",
                   21: f"/usr/bin/python3 -m dockyard -H unix:///x.sock --data-root {root} --exec-root {exec_root}"},
        links={f"dy{inst}-br0": "", "dy-feedfacecafe": "", "dy-" + "ab" * 6: "",
               "dyv333333333333": f"dy{inst}-br0"},
        tables=[f"dockyard_{inst}", f"dockyard_{inst}_ports"],
        accepts=[f"-A FORWARD -o dy-feedfacecafe -m comment --comment dockyard:dockyard_{inst} -j ACCEPT"],
    )
    found = leaks(before, after, who)
    kinds = sorted(line.split(":")[0] for line in found)
    assert kinds == ["cgroup", "cgroup", "iptables", "link", "link", "link", "link", "mount", "netns",
                     "nft", "nft", "process", "process"], found
    assert not any(FOREIGN in line or "/tmp/other" in line for line in found)


def test_a_container_cgroup_under_a_cgroup_parent_counts_if_its_record_is_ours(tmp_path):
    root = make_root(tmp_path)
    ours, theirs = "c" * 64, "d" * 64
    (root / "containers" / ours).mkdir(parents=True)
    after = Snapshot(cgroups={f"/sys/fs/cgroup/memory/mytest/{ours}", f"/sys/fs/cgroup/pids/kubepods/{theirs}"})
    assert leaks(Snapshot(), after, owner([tmp_path])) == [f"cgroup: /sys/fs/cgroup/memory/mytest/{ours}"]


def test_what_existed_before_does_not_count(tmp_path):
    root = make_root(tmp_path)
    inst = instance_of(root)
    state = grown(foreign_state(), links={f"dy{inst}-br0": ""}, tables=[f"dockyard_{inst}"],
                  mounts=[str(root / "storage/overlay/c3/merged")])
    assert leaks(state, state, owner([tmp_path])) == []


def test_an_unattributed_new_bridge_counts_only_when_no_foreign_daemon_runs(tmp_path):
    make_root(tmp_path)
    who = owner([tmp_path])
    after = Snapshot(links={"dy-0123456789ab": "", "dyv444444444444": "dy-0123456789ab"})
    assert [line.split()[1] for line in leaks(Snapshot(), after, who)] == ["dy-0123456789ab", "dyv444444444444"]
    after.processes[10] = foreign_state().processes[10]  # a foreign daemon runs: it may be its
    assert leaks(Snapshot(), after, who) == []
    # a veth on a bridge known to be foreign is never ours, even with nobody else running
    assert leaks(Snapshot(), Snapshot(links={"dyv5": f"dy{FOREIGN}-br0"}), who) == []


def test_data_roots_are_found_by_their_lock_without_walking_their_contents(tmp_path):
    root = make_root(tmp_path)
    deep = root / "volumes" / "v" / "_data" / "x" / "data"
    deep.mkdir(parents=True)
    (deep / "dockyardd.lock").write_text("")  # a user's file in a volume: not a data root of ours
    assert find_data_roots([tmp_path]) == [root]


def test_daemon_and_shim_command_lines():
    assert is_dockyard_process([b"/venv/bin/python", b"-m", b"dockyard", b"-H", b"unix:///x"])
    assert is_dockyard_process([b"/usr/local/bin/dockyardd"])
    assert is_dockyard_process([b"/d/runtime/native/dockyard-shim-0123", b"/e/spec"])
    assert not is_dockyard_process([b"/venv/bin/python", b"-m", b"dockyard_cli", b"ps"])
    assert not is_dockyard_process([b"/venv/bin/python", b"-m", b"pytest", b"-m", b"dockyard"])
    assert not is_dockyard_process([b""])
