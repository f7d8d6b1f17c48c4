"""kill -9 of the daemon while it writes images: ``docker commit`` and ``docker build`` (each
image a build writes) and ``docker load``, at every crash point of ``ImageService.commit_images``
(``image.commit.*``, dockyard.crashpoints). Started again on the same data root, the daemon
rolls the interrupted commit back from its intent: the old state, with no layer directory
without a record, no image record without its layers or config, no reference to a missing
image, nothing left in the staging directory, no dangling overlay link; the same commit or
build then succeeds. Also: the layers ``rmi -f`` kept for a stopped container survive a
restart and go at the start after the container was removed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from .conftest import restart

pytestmark = pytest.mark.privileged

POINTS = ["image.commit.intent", "image.commit.layer", "image.commit.config", "image.commit.record",
          "image.commit.refs"]


def _ok(daemon, *args: str, input: bytes | None = None) -> str:
    r = daemon.docker(*args, input=input) if input is not None else daemon.docker(*args)
    assert r.returncode == 0, (args, r.stderr.decode())
    return r.stdout.decode().strip()


def _storage(daemon) -> Path:
    [root] = [p for p in (daemon.data_root / "storage").iterdir() if p.is_dir()]
    return root


def _layer_dirs(daemon) -> set[str]:
    """The storage driver's layer directories (not containers, not its own files)."""
    root = _storage(daemon)
    return {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != "l"
            and not (p / "work").exists() and len(p.name) == 64}


def state(daemon) -> dict[str, object]:
    """What the image store holds on disk, checked for consistency on the way."""
    image = daemon.data_root / "image"
    layers = {json.loads(p.read_text())["ChainID"] for p in (image / "layers").glob("*.json")}
    records = {json.loads(p.read_text())["ID"]: json.loads(p.read_text()) for p in (image / "images").glob("*.json")}
    blobs = {p.name for p in (image / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}
    repos = image / "repositories.json"
    refs = json.loads(repos.read_text())["refs"] if repos.exists() else {}
    dirs = _layer_dirs(daemon)
    assert {c.removeprefix("sha256:") for c in layers} == dirs, "layer records and driver layers differ"
    for image_id in records:
        assert image_id.removeprefix("sha256:") in blobs, f"image {image_id} has no config"
    assert set(refs.values()) <= set(records), ("a reference names a missing image", refs, sorted(records))
    links = _storage(daemon) / "l"
    if links.exists():
        assert [p for p in links.iterdir() if not p.exists()] == [], "dangling overlay links"
    return {"layers": layers, "images": set(records), "refs": refs, "blobs": blobs}


def _settled(daemon) -> None:
    """After a restart: nothing staged, no intent, every image inspectable with its layers."""
    image = daemon.data_root / "image"
    assert list((image / "tmp").iterdir()) == []
    assert not (image / "intent.json").exists()
    assert not [p for p in _storage(daemon).iterdir() if p.name.startswith(".tmp-")]
    for image_id in _ok(daemon, "images", "-aq", "--no-trunc").split():
        _ok(daemon, "image", "inspect", image_id)
        _ok(daemon, "history", image_id)


def _crash(daemon, action) -> None:
    with pytest.raises((requests.exceptions.ConnectionError, OSError)):
        action()
    assert daemon.proc.wait(60) == 137


@pytest.mark.parametrize("point", POINTS)
def test_kill9_during_commit_leaves_the_old_state(own_daemon, point):
    daemon = own_daemon()
    cid = _ok(daemon, "create", "--network", "none", "busybox", "sh", "-c", "echo committed > /marker")
    _ok(daemon, "start", "-a", cid)
    _ok(daemon, "tag", "busybox", "gaps/moved:1")  # a tag the commit moves: it must come back
    before = state(daemon)
    restart(daemon, {"DOCKYARD_CRASHPOINT": point})
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.commit(cid, repository="gaps/moved", tag="1"))
    api.close()
    restart(daemon)
    assert "rolling back an interrupted image commit" in daemon.log()
    _settled(daemon)
    assert state(daemon) == before
    assert _ok(daemon, "image", "inspect", "-f", "{{.Id}}", "gaps/moved:1") == \
        _ok(daemon, "image", "inspect", "-f", "{{.Id}}", "busybox")
    # the same commit now works, and its image runs
    new = _ok(daemon, "commit", cid, "gaps/moved:1")
    assert _ok(daemon, "run", "--rm", "--network", "none", "gaps/moved:1", "cat", "/marker") == "committed"
    assert new in _ok(daemon, "images", "-q", "--no-trunc").split()
    state(daemon)


@pytest.mark.parametrize("point", ["image.commit.intent", "image.commit.refs"])
def test_kill9_during_commit_of_a_running_container_unpauses_it(own_daemon, point):
    """docker commit pauses a running container: the daemon killed during the commit finds it
    paused at start and unpauses it (as it was before the commit), then the commit works."""
    daemon = own_daemon()
    cid = _ok(daemon, "run", "-d", "--network", "none", "busybox", "sh", "-c", "echo live > /marker; exec sleep 300")
    pid = _ok(daemon, "inspect", "-f", "{{.State.Pid}}", cid)
    restart(daemon, {"DOCKYARD_CRASHPOINT": point})
    api = daemon.docker_client(timeout=60).api
    _crash(daemon, lambda: api.commit(cid, repository="gaps/live", tag="1"))
    api.close()
    restart(daemon)
    assert "paused by an interrupted commit" in daemon.log()
    got = json.loads(_ok(daemon, "inspect", "-f", "{{json .State}}", cid))
    assert got["Status"] == "running" and not got["Paused"] and str(got["Pid"]) == pid
    assert _ok(daemon, "exec", cid, "cat", "/marker") == "live"  # not frozen
    assert "gaps/live:1" not in _ok(daemon, "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    _settled(daemon)
    _ok(daemon, "commit", cid, "gaps/live:1")
    assert _ok(daemon, "inspect", "-f", "{{.State.Status}}", cid) == "running"
    assert not (daemon.data_root / "containers" / cid / "commit-paused").exists()
    _ok(daemon, "rm", "-f", cid)
    state(daemon)


@pytest.mark.parametrize("point", ["image.commit.layer", "image.commit.refs"])
def test_kill9_during_load_leaves_the_old_state(own_daemon, tmp_path, point):
    daemon = own_daemon()
    cid = _ok(daemon, "create", "--network", "none", "busybox", "sh", "-c", "echo loaded > /marker")
    _ok(daemon, "start", "-a", cid)
    _ok(daemon, "commit", cid, "gaps/loaded:1")
    archive = tmp_path / "image.tar"
    r = daemon.docker("save", "-o", str(archive), "gaps/loaded:1")
    assert r.returncode == 0, r.stderr.decode()
    _ok(daemon, "rm", cid)
    _ok(daemon, "rmi", "gaps/loaded:1")  # its own layer goes with it
    before = state(daemon)
    restart(daemon, {"DOCKYARD_CRASHPOINT": point})
    r = daemon.docker("load", "-i", str(archive), timeout=120)
    assert r.returncode != 0
    assert daemon.proc.wait(60) == 137
    restart(daemon)
    assert "rolling back an interrupted image load" in daemon.log()
    _settled(daemon)
    assert state(daemon) == before
    _ok(daemon, "load", "-i", str(archive))
    assert _ok(daemon, "run", "--rm", "--network", "none", "gaps/loaded:1", "cat", "/marker") == "loaded"
    state(daemon)


DOCKERFILE = b"""FROM scratch AS files
COPY f /f
FROM busybox
RUN echo one > /one
COPY --from=files /f /f
LABEL gaps=yes
"""


def _context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_bytes(DOCKERFILE)
    (ctx / "f").write_text("copied\n")
    return ctx


# the build writes four images (the scratch stage's COPY, RUN, COPY --from, LABEL); point@N
# crashes in the N-th commit (the 1st: while the scratch stage's directory exists)
@pytest.mark.parametrize("point", ["image.commit.intent@1", "image.commit.layer@1", "image.commit.config@2",
                                   "image.commit.record@3", "image.commit.refs@4"])
def test_kill9_during_build_leaves_whole_images_only(own_daemon, tmp_path, point):
    tmpdir = tmp_path / "daemon-tmp"  # the daemon's TMPDIR: a build must leave nothing there
    tmpdir.mkdir()
    daemon = own_daemon(env={"TMPDIR": str(tmpdir)})
    ctx = _context(tmp_path)
    before = state(daemon)
    restart(daemon, {"DOCKYARD_CRASHPOINT": point})
    r = daemon.docker("build", "-t", "gaps/built:1", str(ctx), timeout=120)
    assert r.returncode != 0
    assert daemon.proc.wait(60) == 137
    restart(daemon)
    assert "rolling back an interrupted image commit" in daemon.log()
    _settled(daemon)
    after = state(daemon)
    assert after["refs"] == before["refs"]  # the tag comes last: never there
    # only whole images of the steps that finished are new (the classic builder's cache), each
    # with its parent recorded in the same step (but the scratch stage's first)
    new = after["images"] - before["images"]
    assert len(new) < 4
    parents = [_ok(daemon, "image", "inspect", "-f", "{{.Parent}}", i) for i in new]
    assert sum(1 for p in parents if not p) <= 1, parents
    assert list(tmpdir.iterdir()) == []
    # the build runs again to the end; its image works
    _ok(daemon, "build", "-t", "gaps/built:1", str(ctx))
    assert _ok(daemon, "run", "--rm", "--network", "none", "gaps/built:1", "cat", "/one", "/f") == "one\ncopied"
    state(daemon)


def test_layers_held_for_a_container_survive_a_restart(own_daemon):
    daemon = own_daemon()
    maker = _ok(daemon, "create", "--network", "none", "busybox", "sh", "-c", "echo held > /marker")
    _ok(daemon, "start", "-a", maker)
    image = _ok(daemon, "commit", maker, "gaps/held:1")
    _ok(daemon, "rm", maker)
    user = _ok(daemon, "create", "--network", "none", "gaps/held:1", "cat", "/marker")
    assert f"Deleted: {image}" in _ok(daemon, "rmi", "-f", "gaps/held:1")
    held = state(daemon)["layers"]
    restart(daemon)
    assert state(daemon)["layers"] == held  # the start-up garbage collection kept them
    assert _ok(daemon, "start", "-a", user) == "held"
    daemon.stop()
    # the container goes while the daemon is down (its record removed by hand): the next
    # start releases the image's layers
    import shutil

    shutil.rmtree(daemon.data_root / "containers" / user)
    daemon.start()
    _ok(daemon, "rm", "-f", user) if user in _ok(daemon, "ps", "-aq", "--no-trunc") else None
    after = state(daemon)
    assert image not in after["images"] and len(after["layers"]) < len(held)
    assert _ok(daemon, "run", "--rm", "--network", "none", "busybox", "true") == ""
