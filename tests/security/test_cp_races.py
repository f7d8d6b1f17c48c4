"""``docker cp`` against a container that changes its files while they are copied (issue 13,
finding 4).

The container swaps names with ``renameat2(RENAME_EXCHANGE)`` in a tight loop (a static C
helper, compiled here and copied in: busybox cannot do it):

* a regular file and a FIFO: the daemon must never open the FIFO (``open(O_RDONLY)`` of a
  FIFO blocks until a writer comes). Before the fix 23 of 25 copies hung, every worker thread
  of the daemon stuck in ``open()``, and then ``docker run`` hung for everyone;
* a directory and a symlink to a host directory holding a marker file: a copy (or a
  ``commit --pause=false``) is the container's file or an error, never the host's marker;
* a subdirectory and a FIFO while a copy replaces their parent directory (its removal must
  not open the FIFO).

The static symlink cases (links to ``/``, ``..`` chains, writing through links) are in
tests/integration/test_archive.py::test_symlinks_in_the_container_never_reach_host_files;
hostile tars for ``PUT`` in test_hostile_tars_are_refused_and_write_nothing there.

Each test runs on a daemon of its own: before the fix, the daemon it ran on was stuck.
Containers run with ``--network none``: nothing here is about networking.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = pytest.mark.privileged

# generous: a bound on a hang, not an expectation (each copy takes milliseconds)
HANG = 60

SWAP_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
/* swap argv[1] and argv[2] forever (errors ignored: a copy into the container may remove one) */
int main(int argc, char **argv) {
    if (argc != 3) return 2;
    for (;;)
        if (syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) != 0)
            sched_yield();
}
"""


def ok(r: subprocess.CompletedProcess[bytes]) -> str:
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode()


@pytest.fixture
def swapper(tmp_path: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the renameat2 helper")
    src = tmp_path / "swap.c"
    src.write_text(SWAP_C)
    out = tmp_path / "swap"
    subprocess.run([gcc, "-static", "-O2", "-o", str(out), str(src)], check=True, capture_output=True)
    return out


@pytest.fixture
def daemon(make_daemon, busybox_tar):
    d = make_daemon()
    d.load(busybox_tar)
    return d


def _unstick(pid: int, names: list[str]) -> None:
    """Open the container's FIFOs for writing once: a daemon thread blocked in open(O_RDONLY)
    on one (the bug) gets EOF instead of hanging on, so a failing run still cleans up."""
    for _ in range(50):
        for name in names:
            try:
                os.close(os.open(f"/proc/{pid}/root{name}", os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT, errno.ESRCH, errno.EISDIR, errno.EACCES):
                    raise


def _start_racer(d, swapper: Path, script: str) -> tuple[str, int]:
    cid = ok(d.docker("create", "--network", "none", "busybox", "sh", "-c", script)).strip()
    ok(d.docker("cp", str(swapper), f"{cid}:/swap"))
    ok(d.docker("start", cid))
    pid = json.loads(ok(d.docker("inspect", cid)))[0]["State"]["Pid"]
    return cid, pid


def _members(tar_bytes: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tf:
        return {m.name: (m, tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()}


def test_cp_of_a_file_swapped_with_a_fifo_never_hangs_the_daemon(daemon, swapper):
    d = daemon
    script = ("mkdir -p /race/dir && echo regular-content > /race/a && mkfifo /race/b && "
              "echo in-dir > /race/dir/f && mkfifo /race/dir/p && "
              "(/swap /race/dir/f /race/dir/p &) && exec /swap /race/a /race/b")
    cid, pid = _start_racer(d, swapper, script)
    try:
        def copy(i: int) -> subprocess.CompletedProcess[bytes]:
            # single files both ways round, and a directory walk that meets the pair too
            src = ("/race/a", "/race/b", "/race/dir")[i % 3]
            return d.docker("cp", f"{cid}:{src}", "-", timeout=HANG)

        with ThreadPoolExecutor(25) as pool:
            copies = [pool.submit(copy, i) for i in range(25)]
            # meanwhile, the daemon still serves other containers
            other = d.docker("run", "--rm", "--network", "none", "busybox", "echo", "still-served", timeout=HANG)
            results = [f.result() for f in copies]  # TimeoutExpired here is the bug
        assert ok(other) == "still-served\n"
        for r in results:
            if r.returncode != 0:  # an error is fine (the name changed under it), a hang is not
                continue
            for name, (m, data) in _members(r.stdout).items():
                assert m.isreg() or m.isfifo() or m.isdir(), name
                if m.isreg():  # whatever was read is the file's own content, whole
                    assert data in (b"regular-content\n", b"in-dir\n"), (name, data)
        assert sum(r.returncode == 0 for r in results) > 0
        # and afterwards, copies and runs still work for everyone
        assert ok(d.docker("run", "--rm", "--network", "none", "busybox", "true", timeout=HANG)) == ""
        # writing into the container never opens its FIFOs either (it replaces the name)
        put = d.docker("cp", "-", f"{cid}:/race", input=_tar_of("b", b"put\n"), timeout=HANG)
        assert put.returncode == 0, put.stderr
    finally:
        _unstick(pid, ["/race/a", "/race/b", "/race/dir/f", "/race/dir/p"])
        d.docker("rm", "-f", cid)


def test_cp_replacing_a_directory_that_swaps_in_a_fifo_never_hangs(daemon, swapper):
    """``PUT .../archive`` of a file where the container has a directory removes that tree;
    while it is removed, the container swaps a subdirectory and a FIFO. Python's
    ``shutil.rmtree`` opened the subdirectory with a plain ``open(O_RDONLY)``: on the FIFO, that
    blocked for good."""
    import docker

    d = daemon
    script = ("mkdir -p /race && (while true; do [ -f /race/d ] && rm -f /race/d; mkdir -p /race/d/sub; "
              "[ -p /race/d/p ] || mkfifo /race/d/p; usleep 2000; done) 2>/dev/null & "
              "exec /swap /race/d/sub /race/d/p")
    cid, pid = _start_racer(d, swapper, script)
    client = docker.DockerClient(base_url=d.url, timeout=HANG)
    try:
        done = 0
        for _ in range(40):
            try:  # docker-py sends no noOverwriteDirNonDir: the directory is replaced
                client.api.put_archive(cid, "/race", _tar_of("d", b"a file now\n"))
                done += 1
            except docker.errors.APIError:
                pass  # the tree changed under the removal: an error is fine, a hang is not
        assert done > 0, "every put_archive failed"
        assert ok(d.docker("run", "--rm", "--network", "none", "busybox", "true", timeout=HANG)) == ""
    finally:
        client.close()
        _unstick(pid, ["/race/d/sub", "/race/d/p"])
        d.docker("rm", "-f", cid)


def test_removing_a_tree_that_swaps_in_a_fifo_never_blocks(swapper, tmp_path):
    """The primitive under that test, raced harder: ``remove_at`` (used when a copy or a layer
    replaces a directory) against the same swapper on a tree of the test's own."""
    from dockyard.layers.trees import remove_at

    top = tmp_path / "t"
    top.mkdir()
    race = subprocess.Popen([str(swapper), str(top / "d" / "sub"), str(top / "d" / "p")])
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(300):
            (top / "d").mkdir(exist_ok=True)
            with contextlib.suppress(FileExistsError):  # either name may be either one now
                (top / "d" / "sub").mkdir()
            with contextlib.suppress(FileExistsError):
                os.mkfifo(top / "d" / "p")
            errors: list[BaseException] = []

            def remove() -> None:
                try:
                    remove_at(fd, "d")
                except OSError as exc:  # the tree changed under it: fine
                    errors.append(exc)

            worker = threading.Thread(target=remove, daemon=True)
            worker.start()
            worker.join(HANG)
            if worker.is_alive():
                for name in ("sub", "p"):
                    with contextlib.suppress(OSError):
                        os.close(os.open(top / "d" / name, os.O_WRONLY | os.O_NONBLOCK))
                pytest.fail("remove_at blocked on a FIFO")
            if not errors:
                assert not (top / "d").exists()
    finally:
        race.kill()
        race.wait()
        os.close(fd)


def test_cp_through_a_symlink_swapped_with_a_directory_stays_in_the_container(daemon, swapper, tmp_path):
    d = daemon
    marker_dir = Path(f"/tmp/dockyard-cprace-{secrets.token_hex(6)}")
    marker_dir.mkdir()
    (marker_dir / "secret").write_text("host secret\n")
    try:
        script = (f"mkdir -p /race/d && echo container-file > /race/d/secret && ln -s {marker_dir} /race/l && "
                  "exec /swap /race/d /race/l")
        cid, pid = _start_racer(d, swapper, script)
        try:
            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(
                    lambda i: d.docker("cp", f"{cid}:/race/{'dl'[i % 2]}/secret", "-", timeout=HANG), range(40)))
            seen = set()
            for r in results:
                if r.returncode == 0:
                    for _, (m, data) in _members(r.stdout).items():
                        seen.add(data)
            assert b"host secret\n" not in seen
            assert seen <= {b"container-file\n", None}
            # writes through the swapping link land in the container (or fail), never on the host
            for _ in range(20):
                d.docker("cp", "-", f"{cid}:/race/l", input=_tar_of("planted", b"x\n"), timeout=HANG)
            assert not (marker_dir / "planted").exists()
            assert (marker_dir / "secret").read_text() == "host secret\n"
        finally:
            d.docker("rm", "-f", cid)
    finally:
        shutil.rmtree(marker_dir)


def test_stalled_archive_downloads_of_one_container_leave_the_daemon_serving_others(daemon):
    """Archive work runs in threads of its own, a few per container: clients that stop reading
    a big ``docker cp`` hold those threads (as a container slowing its copies would), not the
    executor every other request shares. Before, 6 such downloads stopped ``docker run``."""
    import socket

    d = daemon
    cid = ok(d.docker("create", "--network", "none", "busybox", "true")).strip()
    ok(d.docker("cp", "-", f"{cid}:/", input=_tar_of("big", b"\0" * (48 << 20))))
    stalled = []
    try:
        for _ in range(12):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(str(d.socket))
            s.sendall(f"GET /containers/{cid}/archive?path=/big HTTP/1.1\r\nHost: d\r\n\r\n".encode())
            stalled.append(s)  # never read
        other = ok(d.docker("create", "--network", "none", "busybox", "echo", "still-served", timeout=HANG)).strip()
        assert ok(d.docker("start", "-a", other, timeout=HANG)) == "still-served\n"
        assert ok(d.docker("cp", f"{other}:/etc/passwd", "-", timeout=HANG))
        ok(d.docker("rm", other, timeout=HANG))
    finally:
        for s in stalled:
            s.close()
    # the stalled container's own copies work again once its clients are gone
    r = d.docker("cp", f"{cid}:/etc/passwd", "-", timeout=HANG)
    assert r.returncode == 0 and b"root:" in r.stdout
    d.docker("rm", "-f", cid)


def test_commit_without_pause_never_takes_host_files_through_a_swapped_link(daemon, swapper):
    """``docker commit --pause=false`` walks the container's layer while it runs: a directory
    swapped for a symlink to a host directory must not be followed (the commit's layer would
    then carry host files)."""
    d = daemon
    token = secrets.token_hex(8)
    marker_dir = Path(f"/tmp/dockyard-commitrace-{token}")
    marker_dir.mkdir()
    (marker_dir / "secret").write_text(f"host-secret-{token}\n")
    script = (f"mkdir -p /race/d && echo container-file > /race/d/secret && ln -s {marker_dir} /race/l && "
              "exec /swap /race/d /race/l")
    cid, pid = _start_racer(d, swapper, script)
    images = []
    try:
        for i in range(15):
            r = d.docker("commit", "--pause=false", cid, f"commitrace:{i}", timeout=HANG)
            if r.returncode != 0:
                continue  # the tree changed under the walk: an error is fine
            images.append(f"commitrace:{i}")
            saved = d.docker("save", f"commitrace:{i}", timeout=HANG)
            assert saved.returncode == 0, saved.stderr
            leaked = f"host-secret-{token}".encode() in saved.stdout
            assert not leaked, f"commit {i} took the host's file"
        assert images
    finally:
        d.docker("rm", "-f", cid)
        for image in images:
            d.docker("rmi", "-f", image)
        shutil.rmtree(marker_dir)


def test_layer_walks_never_follow_a_swapped_link(swapper, tmp_path):
    """The walks under ``docker diff``, the layer sizes and ``docker commit`` (overlay's and
    vfs's changes, ``dir_size``, ``export_dir``), raced in a tight loop against the swapper on
    a tree of the test's own: a host directory's names, sizes or contents never come out."""
    from dockyard import layers as L
    from dockyard_storage_overlay.overlay import overlay_changes

    token = secrets.token_hex(8)
    host = tmp_path / "host"
    host.mkdir()
    with open(host / f"host-only-{token}", "wb") as f:
        f.truncate(1 << 40)  # sparse: a size no layer here has
    upper = tmp_path / "upper"
    (upper / "race" / "d").mkdir(parents=True)
    (upper / "race" / "d" / "in-layer").write_text("c\n")
    (upper / "race" / "l").symlink_to(host)
    race = subprocess.Popen([str(swapper), str(upper / "race" / "d"), str(upper / "race" / "l")])
    try:
        for _ in range(400):
            names = [c["Path"] for c in overlay_changes([], upper)] + [c["Path"] for c in L.tree_changes(None, upper)]
            assert not [n for n in names if token in n]
            assert L.dir_size(upper) < 1 << 40
            assert token.encode() not in b"".join(L.export_dir(upper))
    finally:
        race.kill()
        race.wait()


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_diff_never_lists_host_files_through_a_swapped_link(make_daemon, busybox_tar, swapper, driver):
    """``docker diff`` (and the layer sizes) walk the container's layer while it runs: the
    names of a host directory must never show up through a directory swapped for a link."""
    d = make_daemon("-s", driver)
    d.load(busybox_tar)
    token = secrets.token_hex(8)
    marker_dir = Path(f"/tmp/dockyard-diffrace-{token}")
    marker_dir.mkdir()
    (marker_dir / f"host-only-{token}").write_text("host\n")
    script = (f"mkdir -p /race/d && echo c > /race/d/in-container && ln -s {marker_dir} /race/l && "
              "exec /swap /race/d /race/l")
    cid, _ = _start_racer(d, swapper, script)
    try:
        listed = 0
        for _ in range(60):
            r = d.docker("diff", cid, timeout=HANG)
            if r.returncode == 0:
                listed += 1
                assert f"host-only-{token}" not in r.stdout.decode(), r.stdout
        assert listed
        r = d.docker("ps", "-s", "--filter", f"id={cid}", timeout=HANG)
        assert r.returncode == 0, r.stderr
    finally:
        d.docker("rm", "-f", cid)
        shutil.rmtree(marker_dir)


def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()
