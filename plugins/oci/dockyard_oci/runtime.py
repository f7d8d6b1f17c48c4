"""The ``oci`` runtime driver: containers run by an OCI runtime binary (runc, crun, ...),
monitored by Dockyard's own shim.

Per container (``<state>/<id>``, the native runtime's layout): ``bundle/config.json`` (see
:mod:`.bundle`), and the shim's spec, pid, exit, log and stdin/control FIFOs. The shim runs,
in its exec mode on the host (no namespaces joined, root "/", nothing dropped), the payload
``<runtime> --root R --log <sd>/oci.log --log-format json run --bundle B --pid-file <sd>/init.pid <id>``:
``run`` in the foreground, so the OCI runtime is the shim's child and its exit status is the
container's (128+N when killed by signal N). The shim keeps everything it does for native
containers: logs (all log drivers), the exit file, stdin FIFOs and the TTY (the OCI runtime
relays them: it runs in the foreground, ``process.terminal`` set for a TTY).

Signals go through ``<runtime> kill`` (SIGKILL to the runtime process would orphan the
container), execs through ``<runtime> exec --process`` run by the shim the same way, removal
through ``<runtime> delete --force``. The container's pid (inspect, stats, netns joins) is the
one the OCI runtime wrote to ``init.pid``. The cgroup is the daemon's (``linux.cgroupsPath``),
so stats, pause (freezer) and limits are the cgroups driver's as with native.

Config (``[plugins.oci]``): ``runtimes = {crun = {path = "/usr/bin/crun"}}`` as dockerd's
``runtimes`` key (names -> binaries); ``runc`` is served when its binary is on PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from dockyard.drivers.runtime import ContainerSpec, ContainerStartError, ExecSpec, ExecStartError
from dockyard.errors import ConfigError, Conflict, InvalidState, NoSuchContainer, SkipPlugin
from dockyard.runtime import capabilities
from dockyard.runtime import spec as specmod
from dockyard.runtime import state as st
from dockyard.runtime.native import LOG_NAME, NativeRuntime, _rmdir, spawn_shim

from . import bundle

HOST_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PID = "init.pid"
OCI_LOG = "oci.log"
START_TIMEOUT = 60.0  # seconds for the OCI runtime to report the container's pid


def _runc_error(path: Path) -> str:
    """The last error the OCI runtime logged (``--log-format json``), without its own prefix."""
    msg = nsexec = ""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return msg
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("level") in ("error", "fatal") and rec.get("msg"):
            msg = str(rec["msg"])
            if msg.startswith("nsexec") and not nsexec:  # "nsexec[PID]: failed to ...: Permission denied"
                nsexec = msg.split(": ", 1)[-1]
    if nsexec and (msg.startswith("nsexec") or "from pipe" in msg):
        # runc's own error is then "can't get final child's PID from pipe: EOF": its init's says why
        return _nsexec_error(nsexec, path.parent)
    for prefix in ("runc run failed: ", "runc exec failed: ", "runc create failed: "):
        msg = msg.removeprefix(prefix)
    return msg.removeprefix("unable to start container process: ").removeprefix("exec failed: ").removeprefix(
        "unable to start container process: ")


def _nsexec_error(detail: str, sd: Path) -> str:
    """runc's init failure in the native runtime's wording (``error during container init: ...``)."""
    what, _, err = detail.rpartition(": ")
    if "oom_score_adj" in what:
        try:
            adj = json.loads((sd / "bundle" / "config.json").read_text())["process"]["oomScoreAdj"]
        except (OSError, ValueError, KeyError):
            adj = ""
        what = f"oom_score_adj {adj}"
    return f"error during container init: {what or detail}: {err[:1].lower() + err[1:]}"


def _exit_code_for(detail: str) -> int:
    if detail.startswith("error during container init: "):
        return 128
    low = detail.lower()
    if "not found" in low or "no such file" in low:
        return 127
    if "permission denied" in low:
        return 126
    return 128


class OciRuntime(NativeRuntime):
    """Containers as OCI bundles run by an OCI runtime binary; Dockyard's shim monitors."""

    name: ClassVar[str] = "oci"
    #: optional contracts (dockyard.drivers.runtime): native's, and several --runtime names
    capabilities: ClassVar[frozenset[str]] = NativeRuntime.capabilities | {"runtime-names"}
    CONFIG_KEYS = NativeRuntime.CONFIG_KEYS | {"runtimes"}

    def __init__(self, config: dict | None = None, root: Path | str = "/var/lib/dockyard/runtime/oci",
                 state: Path | str = "/run/dockyard/runtime/oci") -> None:
        config = dict(config or {})
        table = config.pop("runtimes", None) or {}
        if not isinstance(table, dict):
            raise ConfigError("runtime oci: runtimes must be a table of name = {path = ...}")
        binaries: dict[str, str] = {}
        runc = shutil.which("runc")
        if runc:
            binaries["runc"] = runc
        for rname, value in table.items():
            path = value.get("path") if isinstance(value, dict) else value
            found = shutil.which(str(path or "")) if path else None
            if not found:
                raise ConfigError(f"runtime oci: runtimes.{rname}: {path!r} is not an executable")
            if rname in ("native", "oci"):
                raise ConfigError(f"runtime oci: runtimes.{rname}: the name is reserved")
            binaries[str(rname)] = found
        if not binaries:
            raise SkipPlugin("oci runtime: no OCI runtime binary (runc not on PATH, no runtimes configured)")
        super().__init__(config, root, state)
        self.binaries = binaries
        self._oom_watch: dict[str, int] = {}
        # the OCI runtime's own state (--root): beside ours, never listed as a container
        self.oci_root = self.state_root.parent / f"{self.state_root.name}-state"
        self.oci_root.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def check(cls) -> None:
        NativeRuntime.check()

    # -- which runtimes ---------------------------------------------------------------------
    def names(self) -> list[str]:
        """``--runtime`` names served: the driver's own (when it is the daemon's default
        runtime: the first binary) and each binary's."""
        return [self.name, *self.binaries]

    def path_of(self, name: str) -> str | None:
        return self.binaries.get(name) or (next(iter(self.binaries.values())) if name == self.name else None)

    def owns(self, cid: str) -> bool:
        return self._dir(cid).exists()

    def _binary(self, cid: str) -> str:
        name = st.read_meta(self._dir(cid)).get("oci_runtime") or ""
        return self.binaries.get(name) or next(iter(self.binaries.values()))

    def _argv(self, binary: str, sd: Path, *args: str) -> list[str]:
        return [binary, "--root", str(self.oci_root), "--log", str(sd / OCI_LOG), "--log-format", "json", *args]

    def _oci_state(self, cid: str) -> bool:
        """The OCI runtime has a record of ``cid`` (its ``--root``/<id>: runc, crun, youki): an
        OCI runtime process per start and removal is ~10-60 ms, spent only when there is one."""
        if Path(self._binary(cid)).name not in ("runc", "crun", "youki"):  # another layout: ask it
            return True
        return os.path.lexists(self.oci_root / cid)

    async def _oci(self, cid: str, *args: str) -> tuple[int, str]:
        """Run the container's OCI runtime with ``args`` (kill, delete, state ...)."""
        sd = self._dir(cid)
        proc = await asyncio.create_subprocess_exec(
            *self._argv(self._binary(cid), sd, *args), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode(errors="replace")

    # -- the shim's payload -----------------------------------------------------------------
    @staticmethod
    def _host_spec(argv: list[str], *, state_dir: Path, log_path: Path, spec: ContainerSpec | None,
                   tty: bool, console_size: tuple[int, int] | None, open_stdin: bool, stdin_once: bool,
                   max_size: int = 0, max_files: int = 1) -> bytes:
        """The shim input that runs ``argv`` on the host (exec mode, root "/", no namespace
        joined, capabilities kept) with the container's stdio, logs and exit file."""
        r: list[tuple[str, bytes]] = []

        def add(key: str, *vals: str | int) -> None:
            r.append((key, specmod._fields(*vals)))

        specmod._add_files(add, state_dir, log_path, state_dir / st.EXIT, max(0, max_size), max(1, max_files), "/")
        if spec is not None:
            if spec.json_log_path is not None:
                add("json_log_path", str(spec.json_log_path))
                add("json_log_max_size", max(0, spec.json_log_max_size))
                add("json_log_max_files", max(1, spec.json_log_max_files))
                if spec.json_log_compress:
                    add("json_log_compress", 1)
            for key, value in spec.syslog.items():
                add(f"syslog_{key}", value)
        add("exec_root", "/")
        add("clone_flags", 0)
        specmod._add_stdio(add, tty, console_size, open_stdin, stdin_once)
        add("cwd", "/")
        add("uid", 0)
        add("gid", 0)
        add("groups", "")
        add("nnp", 0)
        specmod._add_command(add, argv, [HOST_PATH])
        return specmod.encode(r)

    async def _started(self, d: Path, what: str) -> int:
        """Wait until the OCI runtime wrote the process's pid (``init.pid``) or ended; return
        the pid, or raise the runtime's error (as ContainerStartError's detail)."""
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.002
        while True:
            with contextlib.suppress(OSError, ValueError):
                text = (d / INIT_PID).read_text().strip()
                if text:
                    return int(text)
            status = st.read_exit(d)
            if status is not None:
                detail = _runc_error(d / OCI_LOG) or f"{what} exited with status {status.exit_code} before starting"
                raise ContainerStartError(detail, _exit_code_for(detail))
            if time.monotonic() > deadline:
                raise ContainerStartError(f"{what} did not start the container in {START_TIMEOUT:.0f}s", 128)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.01)

    # -- start ------------------------------------------------------------------------------
    async def start(self, spec: ContainerSpec) -> int:
        sd = self._dir(spec.id)
        if spec.state_dir and Path(spec.state_dir) != sd and not sd.exists():
            Path(spec.state_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
            sd.symlink_to(Path(spec.state_dir).resolve())
        created = not sd.exists() or sd.is_symlink() and not any(sd.iterdir())
        if not created:
            pids = st.read_pids(sd)
            if pids and st.read_exit(sd) is None and (self._monitor_alive(sd, pids[1]) or self._orphan_alive(sd)):
                raise Conflict(f"container {spec.id} is already running")
            for name in (st.EXIT, st.PID, st.SPEC, st.STDIN, st.CONTROL, INIT_PID, OCI_LOG, "oom"):
                with contextlib.suppress(FileNotFoundError):
                    (sd / name).unlink()
        sd.mkdir(parents=True, exist_ok=True, mode=0o700)
        rname = spec.runtime if spec.runtime in self.binaries else next(iter(self.binaries))
        binary = self.binaries[rname]
        log_path = Path(spec.log_path) if spec.log_path else sd / LOG_NAME
        bundle_dir = sd / "bundle"
        try:
            doc = bundle.config(spec, init_path=self.init_path)
            bundle_dir.mkdir(exist_ok=True, mode=0o700)
            st.write_atomic(bundle_dir / "config.json", json.dumps(doc, indent=1).encode(), sync=False)
            caps = bundle.container_caps(spec)
            mem = next((str(Path(p).parent) for p in spec.cgroup_procs if "/memory/" in p), "")
            st.write_meta(sd, id=spec.id, log_path=str(log_path), oci_runtime=rname, memory_cgroup=mem,
                          exec={"caps": caps, "privileged": spec.privileged, "nnp": bool(spec.no_new_privileges),
                                "apparmor": "", "rootfs": str(Path(spec.rootfs).resolve())})
            if self._oci_state(spec.id):  # a stale record of an earlier run (runc run removes its own)
                await self._oci(spec.id, "delete", "--force", spec.id)
            self._watch_oom(spec.id)  # before it runs: an OOM kill may come at once
            argv = self._argv(binary, sd, "run", "--bundle", str(bundle_dir), "--pid-file", str(sd / INIT_PID),
                              spec.id)
            data = self._host_spec(argv, state_dir=sd, log_path=log_path, spec=spec, tty=spec.tty,
                                   console_size=spec.console_size, open_stdin=spec.open_stdin,
                                   # a container's TTY outlives its clients (the shim's exec mode
                                   # would hang up a stdin_once TTY when its client leaves)
                                   stdin_once=spec.stdin_once and not spec.tty, max_size=spec.log_max_size,
                                   max_files=spec.log_max_files)
            st.write_atomic(sd / st.SPEC, data, sync=False)
            line = await spawn_shim(self._shim_exe, sd / st.SPEC, argv0=str(self.shim))
            parts = line.split(" ", 3)
            if parts[0] != "ok" or len(parts) < 3:
                raise ContainerStartError(f"{rname}: shim failed: {line or 'no status'}", 128)
            return await self._started(sd, rname)
        except BaseException:
            self._unwatch_oom(spec.id)
            self._kill_unreported(sd)
            with contextlib.suppress(Exception):
                await self._oci(spec.id, "delete", "--force", spec.id)
            if created:
                _rmdir(sd)
            else:
                for name in (st.PID, st.SPEC, st.STDIN, st.CONTROL, INIT_PID):
                    with contextlib.suppress(FileNotFoundError):
                        (sd / name).unlink()
            raise

    # -- OOM kills --------------------------------------------------------------------------
    # The OCI runtime removes the container's cgroup when it ends (before the exit is recorded),
    # so the cgroups driver cannot count its OOM kills then: the driver watches the memory
    # cgroup (v1: an eventfd on memory.oom_control) from before the start, and leaves ``<sd>/oom``.
    # Not watched: cgroup v2 hosts, and OOM kills while the daemon is down.

    def _watch_oom(self, cid: str) -> None:
        sd = self._dir(cid)
        mem = st.read_meta(sd).get("memory_cgroup")
        if not mem or cid in self._oom_watch or (sd / "oom").exists():
            return
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError:
            return
        try:
            ofd = os.open(Path(mem) / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            try:
                (Path(mem) / "cgroup.event_control").write_text(f"{efd} {ofd}")
            finally:
                os.close(ofd)
        except OSError:
            os.close(efd)
            return
        loop = asyncio.get_running_loop()

        def fired() -> None:
            with contextlib.suppress(OSError):
                os.eventfd_read(efd)
            # an OOM event (signalled as the OOM killer starts: the kill may not be counted yet),
            # or the cgroup went away (the file is gone then), as containerd's v1 OOM watch
            if (Path(mem) / "memory.oom_control").exists():
                with contextlib.suppress(OSError):
                    (sd / "oom").touch()
            self._unwatch_oom(cid)

        loop.add_reader(efd, fired)
        self._oom_watch[cid] = efd

    def _unwatch_oom(self, cid: str) -> None:
        efd = self._oom_watch.pop(cid, None)
        if efd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(efd)
            os.close(efd)

    def _with_oom(self, cid: str, status: Any) -> Any:
        if status is not None and (self._dir(cid) / "oom").exists():
            status.oom_killed = True
        return status

    async def wait(self, cid: str) -> Any:
        self._watch_oom(cid)
        try:
            return self._with_oom(cid, await super().wait(cid))
        finally:
            self._unwatch_oom(cid)

    def exit_status(self, cid: str) -> Any:
        return self._with_oom(cid, super().exit_status(cid))

    # -- queries ----------------------------------------------------------------------------
    def _init_pid(self, d: Path) -> int | None:
        try:
            return int((d / INIT_PID).read_text().strip())
        except (OSError, ValueError):
            return None

    def pid(self, cid: str) -> int | None:
        """The container's init (as the OCI runtime reported it) while its runtime process runs."""
        if super().pid(cid) is None:
            return None
        p = self._init_pid(self._dir(cid))
        return p if p is not None and st.pid_alive(p) else None

    # -- actions ----------------------------------------------------------------------------
    async def kill(self, cid: str, sig: int = signal.SIGKILL) -> None:
        sd = self._dir(cid)
        if not sd.exists():
            raise NoSuchContainer(cid)
        pid = self.pid(cid)
        if pid is None:
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="kill")
        rc, out = await self._oci(cid, "kill", cid, str(int(sig)))
        if rc != 0:
            if self.pid(cid) is None:
                raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="kill")
            with contextlib.suppress(ProcessLookupError):  # the runtime lost it: signal its init directly
                os.kill(pid, sig)

    async def delete(self, cid: str, logs: bool = True) -> None:
        sd = self._dir(cid)
        if not sd.exists():
            return
        if self.pid(cid) is not None:
            with contextlib.suppress(InvalidState):
                await self.kill(cid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await self.wait(cid)
        if self._oci_state(cid):  # a foreground ``run`` removed it when the container ended
            with contextlib.suppress(Exception):
                await self._oci(cid, "delete", "--force", cid)
        remove_named_hierarchy_dirs(sd / "bundle" / "config.json")
        await super().delete(cid, logs)

    # -- exec -------------------------------------------------------------------------------
    async def exec(self, cid: str, spec: ExecSpec) -> int:
        sd = self._dir(cid)
        if self.pid(cid) is None:
            raise InvalidState(f"Container {cid} is not running", object_id=cid, state="exited", action="exec")
        if not spec.args:
            from dockyard.errors import InvalidArgument
            raise InvalidArgument("No exec command specified")
        cwd = spec.cwd or "/"
        if not cwd.startswith("/"):
            from dockyard.errors import InvalidArgument
            raise InvalidArgument(f"the working directory '{cwd}' is invalid, it needs to be an absolute path")
        settings = st.read_meta(sd).get("exec") or {}
        priv = bool(settings.get("privileged")) or spec.privileged
        caps = bundle.limit_caps(capabilities.resolve(privileged=True) if priv
                                 else list(settings.get("caps") or capabilities.DOCKER_DEFAULT))
        process: dict[str, Any] = {
            "terminal": bool(spec.tty),
            **bundle.console_size(spec.tty, spec.console_size),
            "user": {"uid": spec.uid, "gid": spec.gid,
                     **({"additionalGids": list(spec.additional_gids)} if spec.additional_gids else {})},
            "args": list(spec.args), "env": list(spec.env), "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": bool(settings.get("nnp")),
        }
        ed = self._exec_dir(cid, spec.id)
        ed.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            st.write_atomic(ed / "process.json", json.dumps(process).encode(), sync=False)
            argv = self._argv(self._binary(cid), ed, "exec", "--process", str(ed / "process.json"),
                              "--pid-file", str(ed / INIT_PID), cid)
            data = self._host_spec(argv, state_dir=ed, log_path=ed / "exec.log", spec=None, tty=spec.tty,
                                   console_size=spec.console_size, open_stdin=spec.open_stdin, stdin_once=True)
            st.write_atomic(ed / st.SPEC, data, sync=False)
            line = await spawn_shim(self._shim_exe, ed / st.SPEC, argv0=str(self.shim))
            parts = line.split(" ", 3)
            if parts[0] != "ok" or len(parts) < 3:
                raise ExecStartError(f"shim failed: {line or 'no status'}", 126)
            try:
                return await self._started(ed, "exec")
            except ContainerStartError as e:
                raise ExecStartError(e.detail, 126 if e.exit_code == 128 else e.exit_code) from None
        except BaseException:
            self._kill_unreported(ed)
            shutil.rmtree(ed, ignore_errors=True)
            raise

    async def exec_kill(self, cid: str, eid: str, sig: int = signal.SIGKILL) -> None:
        """Signal the exec'd process itself (the OCI runtime's exec only forwards catchable ones)."""
        ed = self._exec_dir(cid, eid)
        p = self._init_pid(ed)
        if p is None or st.read_exit(ed) is not None:
            return await super().exec_kill(cid, eid, sig)
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def remove_named_hierarchy_dirs(config: Path) -> None:
    """runc makes the container's ``cgroupsPath`` in every v1 hierarchy, also named ones such as
    ``name=systemd`` that our cgroups driver does not manage, and its ``delete`` removes only
    the leaf: remove the empty directories it left on the way there (``rmdir`` never removes
    one that still holds a cgroup or a process, so nobody else's is touched)."""
    try:
        path = json.loads(config.read_text()).get("linux", {}).get("cgroupsPath", "")
    except (OSError, ValueError):
        return
    if not path or ":" in path:  # none, or systemd's slice:prefix:name form
        return
    with open("/proc/self/mountinfo") as f:
        named = [line.split()[4] for line in f
                 if " - cgroup " in line and "name=" in line.rsplit(" ", 1)[-1]]
    parts = [p for p in path.strip("/").split("/") if p not in ("", ".", "..")]
    for root in named:
        for depth in range(len(parts), 0, -1):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, *parts[:depth]))
