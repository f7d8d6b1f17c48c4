"""RuntimeDriverSuite: behavioural tests every runtime driver (``dockyard.runtime``) runs.

Subclass it and provide a fixture ``runtime_factory``: a callable that returns a *new*
driver instance over the same ``root``/``state`` directories each time (the suite calls it
again to play a restarted daemon adopting running containers: live-restore). Containers run
a busybox root filesystem built offline (:func:`dockyard.testing.images.busybox_rootfs`);
override the ``rootfs`` fixture to use another.

Optional parts run only when the driver has the capability (``capabilities``, checked by
:mod:`dockyard.drivers.contracts`) and skip with the reason otherwise: ``exec``, ``tty``,
``stdin``. Class attributes:

* ``kernel``: the runtime isolates (pid/uts/mount namespaces, the rootfs, users). False for
  runtimes that run plain host processes (the ``fake``): those tests skip.
* ``live_restore``: containers outlive the driver instance that started them and a new
  instance manages them (``list``, ``state``, ``pid``, ``kill``, ``wait``, ``logs``).

Pause/resume and stats are not a runtime's: the cgroups driver freezes and measures a
container (see :mod:`dockyard.testing.conformance_cgroups`).

Each test runs its containers in one event loop and deletes them before the loop ends; the
fixture then checks that the driver lists none of them. Privileged runtimes mark their
subclass ``pytestmark = pytest.mark.privileged``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path
from typing import Any, Awaitable, Callable, ClassVar, Iterator

import pytest

from dockyard.drivers.runtime import ContainerSpec, ContainerStartError, ExecSpec, ExitStatus
from dockyard.errors import Conflict, DockyardError, NotFound

_ROOTFS: dict[str, Path] = {}


def has(driver: Any, capability: str) -> bool:
    """Whether ``driver`` has a runtime capability, as the daemon decides it at load time."""
    from dockyard.drivers import contracts

    return contracts.record("runtime", driver).has(capability)


def output(driver: Any, cid: str) -> tuple[bytes, bytes]:
    recs = list(driver.logs(cid).records())
    return (b"".join(r.data for r in recs if r.stream == 1), b"".join(r.data for r in recs if r.stream == 2))


async def until_output(driver: Any, cid: str, marker: bytes, timeout: float = 30.0) -> None:
    """Follow the container's log until ``marker`` appears (a bound on waiting, not a timing)."""
    async def look() -> None:
        seen = b""
        async for rec in driver.logs(cid).follow():
            seen += rec.data
            if marker in seen:
                return
        raise AssertionError(f"the container ended without printing {marker!r}: {seen!r}")

    await asyncio.wait_for(look(), timeout)


async def open_stdin(path: Path, timeout: float = 30.0) -> int:
    """Open a stdin FIFO for writing as the daemon does (``dockyard.api.stdin.open_fifo_writer``:
    without blocking, retrying while it is not there yet or has no reader yet); blocking after."""
    from ..api.stdin import open_fifo_writer

    fd = await open_fifo_writer(path, timeout)
    if fd is None:
        raise TimeoutError(f"no reader on the stdin FIFO {path} within {timeout} s")
    os.set_blocking(fd, True)
    return fd


class RuntimeDriverSuite:
    kernel: ClassVar[bool] = True
    live_restore: ClassVar[bool] = True

    # -- fixtures ------------------------------------------------------------------------------
    @pytest.fixture
    def rootfs(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """A busybox root filesystem, built once per test session."""
        from .images import BUSYBOX, busybox_rootfs

        if not os.path.exists(BUSYBOX):
            pytest.skip(f"needs {BUSYBOX} (Debian's busybox-static)")
        key = str(tmp_path_factory.getbasetemp())
        if key not in _ROOTFS:
            _ROOTFS[key] = busybox_rootfs(tmp_path_factory.mktemp("conformance-rootfs") / "rootfs")
        return _ROOTFS[key]

    @pytest.fixture
    def drv(self, runtime_factory: Callable[[], Any]) -> Iterator[Any]:
        driver = runtime_factory()
        self._ids: list[str] = []
        self._factory = runtime_factory
        yield driver
        left = [cid for cid in self._ids if cid in runtime_factory().list()]
        assert left == [], f"containers left in the runtime's state: {left}"

    def spec(self, rootfs: Path, *args: str, **kw: Any) -> ContainerSpec:
        cid = f"conf-{secrets.token_hex(8)}"
        self._ids.append(cid)
        return ContainerSpec(id=cid, rootfs=rootfs, args=list(args), **kw)

    def go(self, drv: Any, fn: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fn`` in an event loop, then delete the test's containers in that loop."""
        async def main() -> Any:
            try:
                return await fn()
            finally:
                for cid in self._ids:
                    if cid in drv.list():
                        await drv.delete(cid)
        return asyncio.run(main())

    @staticmethod
    async def run(drv: Any, spec: ContainerSpec) -> tuple[ExitStatus, bytes, bytes]:
        await drv.start(spec)
        status = await asyncio.wait_for(drv.wait(spec.id), 60)
        out, err = output(drv, spec.id)
        return status, out, err

    def needs(self, drv: Any, capability: str) -> None:
        if not has(drv, capability):
            pytest.skip(f"the runtime does not declare the {capability!r} capability")

    def needs_kernel(self) -> None:
        if not self.kernel:
            pytest.skip("the runtime does not isolate (host processes)")

    # -- the contract ----------------------------------------------------------------------------
    def test_contract(self, drv):
        """The base Protocol and every declared capability's methods are there (the daemon's
        load-time check)."""
        from dockyard.drivers import contracts

        rec = contracts.check("runtime", drv.name, drv)
        assert isinstance(drv.name, str) and drv.name
        assert rec.capabilities <= set(contracts.CONTRACTS["runtime"].capabilities)

    # -- start, wait, exit ---------------------------------------------------------------------
    def test_exit_code_and_output_streams(self, drv, rootfs):
        s = self.spec(rootfs, "sh", "-c", "echo out; echo err >&2; exit 3")

        async def body():
            status, out, err = await self.run(drv, s)
            assert (status.exit_code, status.signal) == (3, 0)
            assert status.finished_at_ns > 0
            assert (out, err) == (b"out\n", b"err\n")
            assert drv.state(s.id) == "exited" and drv.pid(s.id) is None
            assert drv.exit_status(s.id).exit_code == 3
            assert s.id in drv.list()

        self.go(drv, body)

    def test_env_and_working_directory(self, drv, rootfs):
        s = self.spec(rootfs, "sh", "-c", "echo $GREETING; pwd",
                      env=["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello there"], cwd="/tmp")

        async def body():
            status, out, _ = await self.run(drv, s)
            assert status.exit_code == 0 and out == b"hello there\n/tmp\n"

        self.go(drv, body)

    def test_kill_with_sigkill(self, drv, rootfs):
        s = self.spec(rootfs, "sleep", "1000")

        async def body():
            pid = await drv.start(s)
            assert pid > 0 and drv.pid(s.id) == pid and drv.state(s.id) == "running"
            await drv.kill(s.id, signal.SIGKILL)
            status = await asyncio.wait_for(drv.wait(s.id), 60)
            # Docker's exit code; ``signal`` is informational (0 when the runtime only sees an
            # OCI runtime binary exit with 137)
            assert status.exit_code == 137 and status.signal in (0, signal.SIGKILL), status
            assert drv.state(s.id) == "exited" and drv.pid(s.id) is None

        self.go(drv, body)

    def test_signal_reaches_the_process(self, drv, rootfs):
        """A handled SIGTERM runs the process's handler (``docker stop`` of a graceful server)."""
        s = self.spec(rootfs, "sh", "-c", 'trap "echo terminated; exit 5" TERM; echo ready; '
                                          "while :; do sleep 0.05; done")

        async def body():
            await drv.start(s)
            await until_output(drv, s.id, b"ready")
            await drv.kill(s.id, signal.SIGTERM)
            status = await asyncio.wait_for(drv.wait(s.id), 60)
            assert status.exit_code == 5
            assert output(drv, s.id)[0] == b"ready\nterminated\n"

        self.go(drv, body)

    @pytest.mark.parametrize("args,code", [(["no-such-command"], 127), (["/no/such/file"], 127),
                                           (["/etc/passwd"], 126)])
    def test_start_errors_leave_nothing(self, drv, rootfs, args, code):
        s = self.spec(rootfs, *args)

        async def body():
            with pytest.raises(ContainerStartError) as ei:
                await drv.start(s)
            assert ei.value.status == 400 and ei.value.exit_code == code, str(ei.value)
            assert s.id not in drv.list()

        self.go(drv, body)

    def test_kill_of_a_container_not_running(self, drv, rootfs):
        s = self.spec(rootfs, "true")

        async def body():
            await self.run(drv, s)
            with pytest.raises((NotFound, Conflict)):
                await drv.kill(s.id, signal.SIGTERM)
            with pytest.raises(NotFound):
                await drv.kill(f"conf-unknown-{secrets.token_hex(4)}", signal.SIGTERM)
            assert drv.state(f"conf-unknown-{secrets.token_hex(4)}") == "unknown"

        self.go(drv, body)

    def test_start_while_running_is_a_conflict(self, drv, rootfs):
        s = self.spec(rootfs, "sleep", "1000")

        async def body():
            await drv.start(s)
            with pytest.raises(Conflict):
                await drv.start(s)
            assert drv.state(s.id) == "running"

        self.go(drv, body)

    def test_start_again_after_exit(self, drv, rootfs):
        """``docker start`` of a stopped container: the same id runs again."""
        first = self.spec(rootfs, "sh", "-c", "echo one; exit 3")

        async def body():
            assert (await self.run(drv, first))[0].exit_code == 3
            again = ContainerSpec(id=first.id, rootfs=rootfs, args=["sh", "-c", "echo two; exit 4"])
            status, out, _ = await self.run(drv, again)
            assert status.exit_code == 4 and out.endswith(b"two\n")

        self.go(drv, body)

    def test_delete_kills_and_is_idempotent(self, drv, rootfs):
        s = self.spec(rootfs, "sleep", "1000")

        async def body():
            pid = await drv.start(s)
            await drv.delete(s.id)
            assert s.id not in drv.list() and drv.state(s.id) == "unknown"
            await drv.delete(s.id)
            deadline = asyncio.get_running_loop().time() + 30
            while _alive(pid) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert not _alive(pid), f"pid {pid} outlived its container"

        self.go(drv, body)

    def test_follow_ends_when_the_container_ends(self, drv, rootfs):
        s = self.spec(rootfs, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.05; done")

        async def body():
            await drv.start(s)

            async def follow() -> bytes:
                return b"".join([r.data async for r in drv.logs(s.id).follow()])

            assert await asyncio.wait_for(follow(), 60) == b"line1\nline2\nline3\n"
            assert (await drv.wait(s.id)).exit_code == 0

        self.go(drv, body)

    # -- isolation -------------------------------------------------------------------------------
    def test_isolation(self, drv, rootfs):
        self.needs_kernel()
        s = self.spec(rootfs, "sh", "-c", "echo $$; hostname; ls /bin/busybox; ls /sys/class/net",
                      hostname="conformance")

        async def body():
            status, out, err = await self.run(drv, s)
            assert status.exit_code == 0, err
            assert out.split() == [b"1", b"conformance", b"/bin/busybox", b"lo"]

        self.go(drv, body)

    def test_user_and_groups(self, drv, rootfs):
        self.needs_kernel()
        s = self.spec(rootfs, "sh", "-c", "id -u; id -g; id -G", uid=1000, gid=1000, additional_gids=[5])

        async def body():
            status, out, err = await self.run(drv, s)
            assert status.exit_code == 0, err
            lines = out.decode().split("\n")
            assert lines[:2] == ["1000", "1000"] and set(lines[2].split()) == {"1000", "5"}

        self.go(drv, body)

    # -- stdin and TTY -----------------------------------------------------------------------------
    def test_stdin(self, drv, rootfs):
        self.needs(drv, "stdin")
        s = self.spec(rootfs, "sh", "-c", "cat; echo END", open_stdin=True, stdin_once=True)

        async def body():
            await drv.start(s)
            fd = await open_stdin(drv.stdin_path(s.id))
            os.write(fd, b"line1\nline2\n")
            os.close(fd)  # EOF for the container
            status = await asyncio.wait_for(drv.wait(s.id), 60)
            assert status.exit_code == 0 and output(drv, s.id)[0] == b"line1\nline2\nEND\n"

        self.go(drv, body)

    def test_tty_size_and_resize(self, drv, rootfs):
        self.needs(drv, "tty")
        self.needs(drv, "stdin")
        s = self.spec(rootfs, "sh", "-c", 'stty size; while read line; do [ "$line" = end ] && exit 0; stty size; done',
                      tty=True,
                      console_size=(24, 80), open_stdin=True, stdin_once=True)

        async def body():
            await drv.start(s)
            await until_output(drv, s.id, b"24 80")
            drv.resize(s.id, 30, 100)
            fd = await open_stdin(drv.stdin_path(s.id))
            try:  # a resize may take effect a moment later (an OCI runtime relays it): ask again
                deadline = asyncio.get_running_loop().time() + 30
                while b"30 100" not in output(drv, s.id)[0] and asyncio.get_running_loop().time() < deadline:
                    os.write(fd, b"size?\n")
                    await asyncio.sleep(0.1)
                os.write(fd, b"end\n")
            finally:
                os.close(fd)
            status = await asyncio.wait_for(drv.wait(s.id), 60)
            out = output(drv, s.id)[0]
            assert status.exit_code == 0 and b"30 100" in out, out

        self.go(drv, body)

    # -- exec ------------------------------------------------------------------------------------
    def test_exec(self, drv, rootfs):
        self.needs(drv, "exec")
        s = self.spec(rootfs, "sleep", "1000", hostname="exechost")

        async def body():
            await drv.start(s)
            e = ExecSpec(id="e1", args=["sh", "-c", "echo in; hostname; echo err >&2; exit 6"])
            assert await drv.exec(s.id, e) > 0
            status = await asyncio.wait_for(drv.exec_wait(s.id, "e1"), 60)
            assert status.exit_code == 6
            recs = list(drv.exec_logs(s.id, "e1").records())
            out = b"".join(r.data for r in recs if r.stream == 1)
            err = b"".join(r.data for r in recs if r.stream == 2)
            assert out == b"in\nexechost\n" if self.kernel else out.startswith(b"in\n")
            assert err == b"err\n"
            long = ExecSpec(id="e2", args=["sleep", "1000"])
            await drv.exec(s.id, long)
            await drv.exec_kill(s.id, "e2", signal.SIGKILL)
            assert (await asyncio.wait_for(drv.exec_wait(s.id, "e2"), 60)).exit_code == 137
            await drv.exec_delete(s.id, "e1")
            await drv.exec_delete(s.id, "e2")
            assert drv.state(s.id) == "running"  # an exec's end is not the container's

        self.go(drv, body)

    def test_exec_stdin_and_tty(self, drv, rootfs):
        """``docker exec -i`` (stdin until EOF) and ``docker exec -t`` (a terminal of the asked
        size, resized while it runs)."""
        self.needs(drv, "exec")
        s = self.spec(rootfs, "sleep", "1000")

        async def body():
            await drv.start(s)
            await drv.exec(s.id, ExecSpec(id="in", args=["sh", "-c", "cat; echo END"], open_stdin=True))
            fd = await open_stdin(drv.exec_stdin_path(s.id, "in"))
            os.write(fd, b"to the exec\n")
            os.close(fd)
            assert (await asyncio.wait_for(drv.exec_wait(s.id, "in"), 60)).exit_code == 0
            out = b"".join(r.data for r in drv.exec_logs(s.id, "in").records())
            assert out == b"to the exec\nEND\n"
            script = 'stty size; while read line; do [ "$line" = end ] && exit 0; stty size; done'
            await drv.exec(s.id, ExecSpec(id="tty", args=["sh", "-c", script], tty=True, console_size=(25, 90),
                                          open_stdin=True))

            def seen() -> bytes:
                return b"".join(r.data for r in drv.exec_logs(s.id, "tty").records())

            fd = await open_stdin(drv.exec_stdin_path(s.id, "tty"))
            try:
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 30
                while b"25 90" not in seen() and loop.time() < deadline:
                    await asyncio.sleep(0.05)
                assert b"25 90" in seen(), seen()
                drv.exec_resize(s.id, "tty", 33, 111)
                while b"33 111" not in seen() and loop.time() < deadline:
                    os.write(fd, b"size?\n")
                    await asyncio.sleep(0.1)
                os.write(fd, b"end\n")  # the exec ends by itself: closing its TTY's stdin first hangs it up
                status = await asyncio.wait_for(drv.exec_wait(s.id, "tty"), 60)
            finally:
                os.close(fd)
            assert status.exit_code == 0 and b"33 111" in seen(), seen()

        self.go(drv, body)

    def test_exec_of_a_missing_command(self, drv, rootfs):
        self.needs(drv, "exec")
        from dockyard.drivers.runtime import ExecStartError

        s = self.spec(rootfs, "sleep", "1000")

        async def body():
            await drv.start(s)
            with pytest.raises(ExecStartError) as ei:
                await drv.exec(s.id, ExecSpec(id="bad", args=["no-such-command"]))
                await drv.exec_wait(s.id, "bad")
            assert ei.value.exit_code == 127
            assert drv.state(s.id) == "running"

        self.go(drv, body)

    def test_exec_in_a_stopped_container_is_refused(self, drv, rootfs):
        self.needs(drv, "exec")
        s = self.spec(rootfs, "true")

        async def body():
            await self.run(drv, s)
            with pytest.raises(DockyardError):  # a clear error (NotFound, InvalidState...), not a crash
                await drv.exec(s.id, ExecSpec(id="late", args=["true"]))

        self.go(drv, body)

    # -- several --runtime names -------------------------------------------------------------------
    def test_runtime_names(self, drv, rootfs):
        """``runtime-names``: the names it serves (its own first), each with a binary ``docker
        info`` can show, and ownership of the containers it started (live-restore routing)."""
        self.needs(drv, "runtime-names")
        names = drv.names()
        assert names and names[0] == drv.name and len(set(names)) == len(names)
        for n in names:
            path = drv.path_of(n)
            assert path is None or (os.path.isabs(path) and os.access(path, os.X_OK)), (n, path)
        s = self.spec(rootfs, "true", runtime=names[-1])

        async def body():
            await self.run(drv, s)
            assert drv.owns(s.id) and not drv.owns(f"conf-other-{secrets.token_hex(4)}")

        self.go(drv, body)

    # -- live-restore ---------------------------------------------------------------------------
    def test_a_new_instance_adopts_running_containers(self, drv, rootfs):
        """The daemon restarts (live-restore): the instance that started the container is gone
        with its event loop; a new one lists it, sees it running with the same pid, and
        signals, waits for and reads it."""
        if not self.live_restore:
            pytest.skip("the runtime's containers do not outlive it")
        s = self.spec(rootfs, "sh", "-c", 'trap "echo bye; exit 7" TERM; echo up; while :; do sleep 0.05; done')

        async def first() -> int:
            pid = await drv.start(s)
            await until_output(drv, s.id, b"up")
            return pid

        pid = asyncio.run(first())  # that loop (the old daemon) is gone now
        again = self._factory()
        assert s.id in again.list()
        assert again.state(s.id) == "running" and again.pid(s.id) == pid

        async def second() -> ExitStatus:
            try:
                await again.kill(s.id, signal.SIGTERM)
                return await asyncio.wait_for(again.wait(s.id), 60)
            finally:
                out = output(again, s.id)[0]
                await again.delete(s.id)
                assert out == b"up\nbye\n", out

        status = asyncio.run(second())
        assert status.exit_code == 7


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False
