"""Container names are reserved atomically (issue 14, finding 1): of 20 concurrent creates
of one name exactly one succeeds and 19 get Docker's 409; a rename racing a create for the
same name leaves one owner; duplicates a crash-prone version left in the store are
resolved at start-up (the oldest keeps the name)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

import docker
import pytest

from .conftest import restart

pytestmark = pytest.mark.privileged


def _create(api, name):
    # no network: these tests are about names (and hold on a host whose address pools are taken)
    return api.create_container("busybox", ["true"], name=name, host_config=api.create_host_config(network_mode="none"))


def _race(n: int, job: Callable[[int], Any]) -> list[Any]:
    """Run ``job(i)`` for i in range(n) on n threads released together; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = job(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _outcome(results: list[Any]) -> tuple[list[Any], list[Any]]:
    ok = [r for r in results if isinstance(r, dict)]
    conflicts = [r for r in results if isinstance(r, docker.errors.APIError) and r.status_code == 409]
    assert len(ok) + len(conflicts) == len(results), results
    return ok, conflicts


def test_twenty_concurrent_creates_of_one_name(d):
    clients = [d.docker_client(timeout=120).api for _ in range(20)]
    try:
        results = _race(20, lambda i: _create(clients[i], "rel-samename"))
    finally:
        for c in clients:
            c.close()
    ok, conflicts = _outcome(results)
    assert len(ok) == 1 and len(conflicts) == 19
    assert all("is already in use" in c.explanation for c in conflicts)
    listed = d.docker("ps", "-aq", "--no-trunc", "--filter", "name=rel-samename").stdout.split()
    assert [x.decode() for x in listed] == [ok[0]["Id"]]


def test_create_races_rename_for_one_name(d, client):
    """A rename and creates all wanting one name: exactly one of them gets it."""
    for round_ in range(5):
        name = f"rel-rename-race-{round_}"
        other = _create(client.api, f"rel-rename-src-{round_}")["Id"]
        clients = [d.docker_client(timeout=120).api for _ in range(8)]
        try:
            def job(i: int) -> Any:
                if i == 0:
                    clients[i].rename(other, name)
                    return {"Id": other}
                return _create(clients[i], name)
            ok, conflicts = _outcome(_race(8, job))
        finally:
            for c in clients:
                c.close()
        assert len(ok) == 1 and len(conflicts) == 7
        assert client.api.inspect_container(name)["Id"] == ok[0]["Id"]
        assert len(client.containers.list(all=True, filters={"name": name})) == 1


def test_duplicate_names_in_the_store_are_resolved_at_start(own_daemon):
    """Records written with one name (by a version without reservations): after a restart the
    oldest keeps the name, the other is renamed <name>_<id12> with a log line, deterministically."""
    daemon = own_daemon()
    ids = []
    for i in range(3):
        r = daemon.docker("create", "--network", "none", "--name", f"rel-dup-{i}", "busybox", "true")
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.decode().strip())
    daemon.stop()
    for cid in ids[1:]:  # what the old race left: three records named rel-dup-0
        record = daemon.data_root / "containers" / cid / "config.v2.json"
        data = json.loads(record.read_text())
        data["name"] = "rel-dup-0"
        record.write_text(json.dumps(data))
    restart(daemon)
    names = {cid: daemon.docker("inspect", "-f", "{{.Name}}", cid).stdout.decode().strip() for cid in ids}
    assert names[ids[0]] == "/rel-dup-0"
    assert names[ids[1]] == f"/rel-dup-0_{ids[1][:12]}" and names[ids[2]] == f"/rel-dup-0_{ids[2][:12]}"
    assert daemon.docker("inspect", "-f", "{{.Id}}", "rel-dup-0").stdout.decode().strip() == ids[0]
    assert "renamed to 'rel-dup-0_" in daemon.log()
    restart(daemon)  # the renames were saved: the same answer again
    assert daemon.docker("inspect", "-f", "{{.Name}}", ids[2]).stdout.decode().strip() == f"/rel-dup-0_{ids[2][:12]}"
