"""BindOptions.ReadOnlyNonRecursive / ReadOnlyForceRecursive (Docker 25+, `--mount
bind-recursive=writable|readonly`): a read-only bind whose source has a submount."""

from __future__ import annotations

import json
import subprocess

import pytest

pytestmark = pytest.mark.privileged


@pytest.fixture
def tree(tmp_path):
    """<tmp>/src with a file, and a tmpfs submount at src/sub holding another file."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "dyk-sub", str(src / "sub")], check=True)
    try:
        (src / "sub" / "inner.txt").write_text("inner")
        yield src
    finally:
        subprocess.run(["umount", "-l", str(src / "sub")], check=True)


PROBE = ("touch /data/new 2>/dev/null && echo top-rw || echo top-ro; "
         "touch /data/sub/new 2>/dev/null && echo sub-rw || echo sub-ro; cat /data/sub/inner.txt")


def run(d, mount: str) -> subprocess.CompletedProcess[bytes]:
    return d.docker("run", "--rm", "--network", "none", "--mount", mount, "busybox", "sh", "-c", PROBE)


def test_read_only_non_recursive_leaves_submounts_writable(d, tree):
    r = run(d, f"type=bind,src={tree},dst=/data,readonly,bind-recursive=writable")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().split() == ["top-ro", "sub-rw", "inner"]
    assert (tree / "sub" / "new").exists() and not (tree / "new").exists()


def test_read_only_is_recursive_by_default_and_when_forced(d, tree):
    for mount in (f"type=bind,src={tree},dst=/data,readonly",
                  f"type=bind,src={tree},dst=/data,readonly,bind-recursive=readonly,bind-propagation=rprivate"):
        r = run(d, mount)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().split() == ["top-ro", "sub-ro", "inner"], mount
    assert not (tree / "sub" / "new").exists()


def test_inspect_keeps_the_options_and_errors_are_docker_s(d, tree):
    cid = d.docker("create", "--network", "none", "--mount",
                   f"type=bind,src={tree},dst=/data,readonly,bind-recursive=writable", "busybox", "true")
    assert cid.returncode == 0, cid.stderr
    info = json.loads(d.docker("inspect", cid.stdout.decode().strip()).stdout)[0]
    (m,) = info["HostConfig"]["Mounts"]
    assert m["ReadOnly"] is True and m["BindOptions"]["ReadOnlyNonRecursive"] is True
    assert info["Mounts"][0]["RW"] is False
    client = d.docker_client()
    try:
        for opts, msg in (({"ReadOnlyNonRecursive": True}, "requires ReadOnly"),
                          ({"ReadOnlyForceRecursive": True}, "requires ReadOnly"),
                          ({"ReadOnlyNonRecursive": True, "ReadOnlyForceRecursive": True, "_ro": True}, "conflicts"),
                          ({"ReadOnlyForceRecursive": True, "Propagation": "rslave", "_ro": True}, "rprivate")):
            ro = opts.pop("_ro", False)
            body = {"Image": "busybox", "HostConfig": {"NetworkMode": "none", "Mounts": [
                {"Type": "bind", "Source": str(tree), "Target": "/data", "ReadOnly": ro, "BindOptions": opts}]}}
            resp = client.api.post(client.api._url("/containers/create"), json=body)
            assert resp.status_code == 400 and msg in resp.json()["message"], resp.text
    finally:
        client.close()
