"""CgroupDriverSuite: behavioural tests every cgroup driver runs.

Subclass it in a test module and provide a fixture ``cgroup_driver`` that yields a driver
whose ``parent`` is unique to the test (e.g. ``dockyard-test-<hex>``) and removes what is
left afterwards (``remove`` every id in ``list()``, then ``remove_parent()``). Drivers with
no kernel behind them (fakes) set ``kernel = False``: the tests that need real processes to
be limited, frozen or killed then skip. Those tests carry ``@pytest.mark.privileged``.
A limit the backend cannot set on this host (NotSupported) skips the test that needs it.
"""

from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dockyard.drivers.cgroups import (ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES_HEAD, DEFAULT_DEVICE_RULES_TAIL,
                                      DeviceRule, Resources)
from dockyard.errors import Conflict, InvalidArgument, NotFound, NotSupported

SH, PY = "/bin/sh", "/usr/bin/python3"


def wait_until(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``pred`` until true or ``timeout``; a bound on waiting, never an assertion on time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def _placer(files: list[str]) -> Callable[[], None]:
    """preexec_fn: the child writes its own pid to every procs file, as the launcher does."""
    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for f in files:
            fd = os.open(f, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
    return preexec


def _read_until(stream: Any, marker: bytes, timeout: float) -> bytes:
    """What ``stream`` (a pipe) gives until ``marker`` appears, it closes, or ``timeout`` passes."""
    seen, deadline = b"", time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([stream], [], [], 0.5)[0]:
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


def proc_state(pid: int) -> tuple[str, int]:
    """(state letter, utime+stime ticks) from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return fields[0], int(fields[11]) + int(fields[12])


class CgroupDriverSuite:
    kernel = True

    # -- fixtures ------------------------------------------------------------------
    @pytest.fixture
    def cid(self, cgroup_driver) -> Iterator[str]:
        cid = "c" + secrets.token_hex(6)
        yield cid
        cgroup_driver.remove(cid)

    @pytest.fixture
    def spawn(self, cgroup_driver) -> Iterator[Callable[..., subprocess.Popen]]:
        procs: list[subprocess.Popen] = []

        def start(cid: str, *argv: str, **kw) -> subprocess.Popen:
            p = subprocess.Popen(list(argv), preexec_fn=_placer(cgroup_driver.procs_files(cid)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
            procs.append(p)
            return p

        yield start
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()

    def needs_kernel(self) -> None:
        if not self.kernel:
            pytest.skip("needs a real kernel behind the driver")
        if os.geteuid() != 0:
            pytest.skip("needs root")

    def create_or_skip(self, drv, cid: str, r: Resources) -> None:
        try:
            drv.create(cid, r)
        except NotSupported as e:
            pytest.skip(f"backend cannot set this limit here: {e}")

    # -- every driver ---------------------------------------------------------------
    def test_identity(self, cgroup_driver):
        assert isinstance(cgroup_driver.name, str) and cgroup_driver.name
        assert cgroup_driver.version in (1, 2)
        assert cgroup_driver.driver == "cgroupfs"

    def test_create_list_remove(self, cgroup_driver, cid):
        assert not cgroup_driver.exists(cid)
        cgroup_driver.create(cid, Resources())
        assert cgroup_driver.exists(cid)
        assert cid in cgroup_driver.list()
        cgroup_driver.remove(cid)
        assert not cgroup_driver.exists(cid)
        assert cid not in cgroup_driver.list()
        cgroup_driver.remove(cid)  # idempotent

    def test_create_twice_conflicts(self, cgroup_driver, cid):
        cgroup_driver.create(cid, Resources())
        with pytest.raises(Conflict):
            cgroup_driver.create(cid, Resources())

    @pytest.mark.parametrize("bad", ["", "..", "a/b", "../escape", ".hidden"])
    def test_bad_id_refused(self, cgroup_driver, bad):
        with pytest.raises(InvalidArgument):
            cgroup_driver.create(bad, Resources())

    def test_unknown_id_not_found(self, cgroup_driver):
        for call in (cgroup_driver.pids, cgroup_driver.stats, cgroup_driver.procs_files,
                     cgroup_driver.freeze, cgroup_driver.oom_kills):
            with pytest.raises(NotFound):
                call("nosuchcontainer")

    def test_procs_files_are_absolute_and_exist(self, cgroup_driver, cid):
        cgroup_driver.create(cid, Resources())
        files = cgroup_driver.procs_files(cid)
        assert files
        for f in files:
            assert os.path.isabs(f) and os.path.exists(f), f

    def test_pid_written_by_child_is_tracked(self, cgroup_driver, cid, spawn):
        cgroup_driver.create(cid, Resources())
        p = spawn(cid, "/bin/sleep", "30")
        assert wait_until(lambda: p.pid in cgroup_driver.pids(cid))

    def test_attach_after_start(self, cgroup_driver, cid):
        cgroup_driver.create(cid, Resources())
        p = subprocess.Popen(["/bin/sleep", "30"])
        try:
            cgroup_driver.attach(cid, p.pid)
            assert p.pid in cgroup_driver.pids(cid)
        finally:
            p.kill()
            p.wait()

    def test_stats_shape(self, cgroup_driver, cid, spawn):
        cgroup_driver.create(cid, Resources())
        p = spawn(cid, SH, "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30")
        assert wait_until(lambda: p.pid in cgroup_driver.pids(cid))
        s = cgroup_driver.stats(cid)
        assert set(s) >= {"memory_stats", "cpu_stats", "pids_stats", "blkio_stats"}
        cpu = s["cpu_stats"]
        assert set(cpu) >= {"cpu_usage", "system_cpu_usage", "online_cpus", "throttling_data"}
        assert set(cpu["cpu_usage"]) >= {"total_usage", "usage_in_kernelmode", "usage_in_usermode"}
        assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
        assert cpu["online_cpus"] >= 1
        assert "io_service_bytes_recursive" in s["blkio_stats"]
        assert s["pids_stats"]["current"] >= 1
        if s["memory_stats"]:
            assert set(s["memory_stats"]) >= {"usage", "limit", "stats"}
        if self.kernel:
            assert cpu["system_cpu_usage"] > 0
            assert wait_until(lambda: cgroup_driver.stats(cid)["cpu_stats"]["cpu_usage"]["total_usage"] > 0)
            if s["memory_stats"]:
                assert s["memory_stats"]["usage"] > 0
                assert 0 < s["memory_stats"]["limit"]

    def test_update_limits_show_in_stats(self, cgroup_driver, cid):
        mib = 1024 * 1024
        self.create_or_skip(cgroup_driver, cid, Resources(memory=64 * mib, memory_swap=128 * mib, pids_limit=50))
        s = cgroup_driver.stats(cid)
        assert s["memory_stats"]["limit"] == 64 * mib
        assert s["pids_stats"]["limit"] == 50
        cgroup_driver.update(cid, Resources(memory=128 * mib, memory_swap=256 * mib, pids_limit=100))
        s = cgroup_driver.stats(cid)
        assert s["memory_stats"]["limit"] == 128 * mib
        assert s["pids_stats"]["limit"] == 100
        cgroup_driver.update(cid, Resources(memory=32 * mib, memory_swap=32 * mib, pids_limit=0))
        s = cgroup_driver.stats(cid)
        assert s["memory_stats"]["limit"] == 32 * mib
        assert "limit" not in s["pids_stats"]

    # -- real kernel only -----------------------------------------------------------
    @pytest.mark.privileged
    def test_memory_limit_oom_kills(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        mib = 1024 * 1024
        self.create_or_skip(cgroup_driver, cid, Resources(memory=32 * mib, memory_swap=32 * mib))
        fd = cgroup_driver.oom_fd(cid)
        try:
            p = spawn(cid, PY, "-c", "b = b'x' * (200 * 1024 * 1024); print(len(b))")
            p.wait(timeout=60)
            assert p.returncode == -signal.SIGKILL
            assert cgroup_driver.oom_kills(cid) >= 1
            if fd is not None:
                assert select.select([fd], [], [], 10)[0] == [fd]
                assert int.from_bytes(os.read(fd, 8), "little") >= 1
        finally:
            if fd is not None:
                os.close(fd)

    @pytest.mark.privileged
    def test_pids_limit_stops_forks(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        self.create_or_skip(cgroup_driver, cid, Resources(pids_limit=5))
        # "looped" (a builtin: no fork) comes after every fork attempt and its error message
        p = spawn(cid, SH, "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do /bin/sleep 30 & done; echo looped >&2; wait")
        seen = _read_until(p.stderr, b"looped", timeout=30)
        assert len(cgroup_driver.pids(cid)) <= 5
        cgroup_driver.kill_all(cid)
        _, err = p.communicate(timeout=30)
        assert b"fork" in (seen + err).lower()

    @pytest.mark.privileged
    def test_freeze_and_thaw(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        cgroup_driver.create(cid, Resources())
        p = spawn(cid, SH, "-c", "while :; do :; done")
        assert wait_until(lambda: p.pid in cgroup_driver.pids(cid) and proc_state(p.pid)[1] > 0)
        cgroup_driver.freeze(cid)
        state, ticks = proc_state(p.pid)
        assert state != "R"
        time.sleep(0.1)
        assert proc_state(p.pid)[1] == ticks  # a frozen busy loop gets no CPU
        cgroup_driver.thaw(cid)
        assert wait_until(lambda: proc_state(p.pid)[1] > ticks)
        assert p.poll() is None

    @pytest.mark.privileged
    @pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
    def test_kill_all(self, cgroup_driver, cid, spawn, sig):
        self.needs_kernel()
        cgroup_driver.create(cid, Resources())
        p = spawn(cid, SH, "-c", "/bin/sleep 30 & /bin/sleep 30 & /bin/sleep 30 & wait")
        assert wait_until(lambda: len(cgroup_driver.pids(cid)) == 4)
        cgroup_driver.kill_all(cid, sig)
        p.wait(timeout=30)
        assert p.returncode == -sig
        assert wait_until(lambda: cgroup_driver.pids(cid) == [])

    @pytest.mark.privileged
    def test_remove_kills_stragglers(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        cgroup_driver.create(cid, Resources())
        p = spawn(cid, "/bin/sleep", "30")
        assert wait_until(lambda: p.pid in cgroup_driver.pids(cid))
        cgroup_driver.remove(cid, timeout=4.0)
        assert not cgroup_driver.exists(cid)
        assert p.wait(timeout=30) == -signal.SIGKILL

    @pytest.mark.privileged
    def test_remove_paused_container(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        cgroup_driver.create(cid, Resources())
        spawn(cid, "/bin/sleep", "30")
        cgroup_driver.freeze(cid)
        cgroup_driver.remove(cid, timeout=4.0)
        assert not cgroup_driver.exists(cid)

    @pytest.mark.privileged
    def test_refused_limit_leaves_nothing(self, cgroup_driver, cid):
        self.needs_kernel()
        with pytest.raises((InvalidArgument, NotSupported)):
            cgroup_driver.create(cid, Resources(cpu_quota=500))  # below the kernel's 1 ms
        assert not cgroup_driver.exists(cid)
        assert cid not in cgroup_driver.list()

    # -- devices ---------------------------------------------------------------------
    DEVICE_PROBE = ("import sys\n"
                    "open('/dev/null', 'w').close()\n"
                    "try:\n    open('/dev/kmsg').close()\nexcept PermissionError:\n    sys.exit(3)\n")

    @pytest.mark.privileged
    def test_default_device_rules_deny_other_devices(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        rules = [*DEFAULT_DEVICE_RULES_HEAD, *DEFAULT_DEVICE_RULES_TAIL]
        cgroup_driver.create(cid, Resources(devices=rules))
        p = spawn(cid, PY, "-c", self.DEVICE_PROBE)
        assert p.wait(timeout=60) == 3, p.communicate()

    @pytest.mark.privileged
    def test_device_rule_allows_one_device(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        kmsg = DeviceRule(True, "c", 1, 11, "r")
        cgroup_driver.create(cid, Resources(devices=[*DEFAULT_DEVICE_RULES_HEAD, kmsg, *DEFAULT_DEVICE_RULES_TAIL]))
        p = spawn(cid, PY, "-c", self.DEVICE_PROBE)
        assert p.wait(timeout=60) == 0, p.communicate()

    @pytest.mark.privileged
    def test_privileged_allow_all_and_read_only_rule(self, cgroup_driver, cid, spawn):
        self.needs_kernel()
        cgroup_driver.create(cid, Resources(devices=list(ALLOW_ALL_DEVICES)))
        p = spawn(cid, PY, "-c", self.DEVICE_PROBE)
        assert p.wait(timeout=60) == 0, p.communicate()
        cgroup_driver.remove(cid)
        # "r" only: reading is allowed, writing is not (and an earlier deny of it is overridden)
        rules = [*DEFAULT_DEVICE_RULES_HEAD, DeviceRule(False, "c", 1, 11), DeviceRule(True, "c", 1, 11, "r"),
                 *DEFAULT_DEVICE_RULES_TAIL]
        cgroup_driver.create(cid, Resources(devices=rules))
        probe = ("import sys\nopen('/dev/kmsg').close()\n"
                 "try:\n    open('/dev/kmsg', 'w').close()\nexcept PermissionError:\n    sys.exit(3)\n")
        p = spawn(cid, PY, "-c", probe)
        assert p.wait(timeout=60) == 3, p.communicate()

    # -- per-container parents (Docker's --cgroup-parent) ------------------------------
    @pytest.fixture
    def prefix(self, cgroup_driver) -> Iterator[str]:
        """A unique top-level name for a kubepods-like tree; whatever is left of it is removed."""
        name = f"dockyard-ptest-{secrets.token_hex(4)}"
        yield name
        for cid in cgroup_driver.list():
            if cgroup_driver.path(cid).startswith(f"/{name}/"):
                cgroup_driver.remove(cid)
        for root in self.roots:
            for d in sorted((os.path.join(r, x) for r, ds, _ in os.walk(os.path.join(root, name)) for x in ds),
                            key=len, reverse=True):
                os.rmdir(d)
            if os.path.isdir(os.path.join(root, name)):
                os.rmdir(os.path.join(root, name))

    roots: list[str] = []

    def hierarchy_roots(self, drv, cid: str) -> list[str]:
        """Every hierarchy root the container's cgroup lives in, from its procs files."""
        tail = drv.path(cid) + "/cgroup.procs"
        out = [f[: -len(tail)] for f in drv.procs_files(cid) if f.endswith(tail)]
        assert len(out) == len(drv.procs_files(cid)), (tail, drv.procs_files(cid))
        type(self).roots = out if self.kernel else []
        return out

    def test_parent_places_the_cgroup(self, cgroup_driver, prefix):
        cid = "c" + secrets.token_hex(6)
        parent = f"/{prefix}/kubepods/burstable/pod{secrets.token_hex(4)}"
        cgroup_driver.create(cid, Resources(), parent=parent)
        assert cgroup_driver.path(cid) == f"{parent}/{cid}"
        assert cgroup_driver.exists(cid)
        listed = cgroup_driver.list()
        assert cid in listed and not {"kubepods", "burstable", prefix} & set(listed)
        roots = self.hierarchy_roots(cgroup_driver, cid)
        if self.kernel:
            assert all(os.path.isdir(f"{r}{parent}/{cid}") for r in roots)
        cgroup_driver.remove(cid)
        assert not cgroup_driver.exists(cid) and cid not in cgroup_driver.list()
        if self.kernel:  # every ancestor it made is gone, in every hierarchy
            assert not [r for r in roots if os.path.exists(os.path.join(r, prefix))]

    def test_relative_parent_and_dotdot_stay_under_the_root(self, cgroup_driver, prefix):
        cid = "c" + secrets.token_hex(6)
        cgroup_driver.create(cid, Resources(), parent=f"{prefix}/../../{prefix}/docker/")
        assert cgroup_driver.path(cid) == f"/{prefix}/docker/{cid}"
        self.hierarchy_roots(cgroup_driver, cid)

    def test_parent_shared_and_foreign_ancestors_kept(self, cgroup_driver, prefix):
        a, b = "c" + secrets.token_hex(6), "c" + secrets.token_hex(6)
        pod = f"/{prefix}/kubepods/pod1"
        cgroup_driver.create(a, Resources(), parent=pod)
        roots = self.hierarchy_roots(cgroup_driver, a)
        cgroup_driver.remove(a)
        if self.kernel:  # someone else's /<prefix>/kubepods: the driver must never take it away
            for r in roots:
                os.makedirs(os.path.join(r, prefix, "kubepods"), exist_ok=True)
        cgroup_driver.create(a, Resources(), parent=pod)
        cgroup_driver.create(b, Resources(), parent=pod)
        cgroup_driver.remove(a)
        assert cgroup_driver.exists(b) and cgroup_driver.path(b) == f"{pod}/{b}"
        if self.kernel:
            assert all(os.path.isdir(f"{r}{pod}/{b}") for r in roots)
        cgroup_driver.remove(b)
        if self.kernel:
            assert all(os.path.isdir(os.path.join(r, prefix, "kubepods")) for r in roots)
            assert not [r for r in roots if os.path.exists(f"{r}{pod}")]

    @pytest.mark.privileged
    def test_parent_limits_freeze_kill_and_restart(self, cgroup_driver, prefix, spawn):
        self.needs_kernel()
        cid = "c" + secrets.token_hex(6)
        parent = f"/{prefix}/kubepods/burstable/pod{secrets.token_hex(4)}"
        cgroup_driver.create(cid, Resources(), parent=parent)
        self.hierarchy_roots(cgroup_driver, cid)
        p = spawn(cid, SH, "-c", "while :; do :; done")
        assert wait_until(lambda: p.pid in cgroup_driver.pids(cid))
        with open(f"/proc/{p.pid}/cgroup") as f:
            lines = f.read().splitlines()
        assert any(line.endswith(f":{parent}/{cid}") for line in lines), lines
        assert cgroup_driver.stats(cid)["pids_stats"]["current"] >= 1
        cgroup_driver.freeze(cid)
        assert proc_state(p.pid)[0] != "R"
        cgroup_driver.thaw(cid)
        # a restarted daemon: a new driver that is told the parent finds everything again
        again = type(cgroup_driver)({"parent": cgroup_driver.parent}, None, None)
        again.adopt(cid, parent)
        assert again.exists(cid) and p.pid in again.pids(cid) and cid in again.list()
        again.kill_all(cid)
        assert p.wait(timeout=30) == -signal.SIGKILL
        again.remove(cid)
        assert not cgroup_driver.exists(cid)

    @pytest.mark.privileged
    def test_parent_memory_limit_enforced(self, cgroup_driver, prefix, spawn):
        self.needs_kernel()
        mib = 1024 * 1024
        cid = "c" + secrets.token_hex(6)
        try:
            cgroup_driver.create(cid, Resources(memory=32 * mib, memory_swap=32 * mib),
                                 parent=f"/{prefix}/kubepods/pod{secrets.token_hex(3)}")
        except NotSupported as e:
            pytest.skip(f"backend cannot set this limit here: {e}")
        self.hierarchy_roots(cgroup_driver, cid)
        p = spawn(cid, PY, "-c", "b = b'x' * (200 * 1024 * 1024); print(len(b))")
        assert p.wait(timeout=60) == -signal.SIGKILL
        assert cgroup_driver.oom_kills(cid) >= 1

    def test_parent_below_the_driver_s_own_is_never_listed_as_a_container(self, cgroup_driver):
        """A kubepods-like tree under the driver's parent: its directories are not container
        ids (startup reconciliation would remove them as stale cgroups)."""
        cid = "c" + secrets.token_hex(6)
        cgroup_driver.create(cid, Resources(), parent=f"{cgroup_driver.parent}/pods/p1")
        try:
            assert cgroup_driver.path(cid) == f"/{cgroup_driver.parent}/pods/p1/{cid}"
            listed = cgroup_driver.list()
            assert cid in listed and "pods" not in listed and "p1" not in listed
        finally:
            cgroup_driver.remove(cid)
        assert cid not in cgroup_driver.list() and "pods" not in cgroup_driver.list()
