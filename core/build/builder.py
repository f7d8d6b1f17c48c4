"""The classic builder (``POST /build``): runs a Dockerfile step by step, each step an image.

Like Docker's classic builder every instruction commits an image whose parent is the
previous step's: metadata instructions (ENV, CMD, ...) add no layer, RUN runs in a real
container of this engine (created from the current image, started, waited for, committed,
removed), COPY/ADD write into a created (never started) container's filesystem, committed
the same way. A step whose cache key (parent image + instruction, + file hash for COPY/ADD)
is known reuses its image (`` ---> Using cache``). On failure every container the build
made is removed and nothing is tagged.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import posixpath
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import stat

from ..containers import archive as A
from ..containers.spec import resolve_user
from ..errors import DockyardError, InvalidArgument, NoSuchImage
from ..images import reference as R
from ..images.streams import IterReader
from ..runtime.logfile import STDERR
from . import dockerfile as D
from . import files as F
from .cache import BuildCache
from .ignore import Matcher

if TYPE_CHECKING:
    from ..containers.service import ContainerService
    from ..images.service import ImageService
    from ..registry import RegistryService

log = logging.getLogger("dockyard.build")

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILTIN_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
                "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
EMPTY_TAR = b"\0" * 1024


class BuildFailed(InvalidArgument):
    """A step failed (its message is what the build stream reports; ``code``, a failed RUN's
    exit status, goes into the stream's ``errorDetail`` as Docker's JSONError does)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Options:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    nocache: bool = False
    rm: bool = True
    forcerm: bool = False
    pull: bool = False
    quiet: bool = False
    networkmode: str = ""
    extrahosts: list[str] = field(default_factory=list)  # "name:ip", the RUN containers' /etc/hosts
    cachefrom: list[str] = field(default_factory=list)  # images whose parent chains may satisfy the cache
    resources: dict[str, Any] = field(default_factory=dict)  # HostConfig limits of the RUN containers
    platform: str = ""
    registry_config: dict[str, dict[str, Any]] = field(default_factory=dict)  # X-Registry-Config


@dataclass
class StageState:
    image_id: str | None  # None: scratch, nothing committed yet
    config: dict[str, Any]
    args: dict[str, str | None] = field(default_factory=dict)  # ARGs declared in this stage
    cmd_set: bool = False

    def env(self) -> dict[str, str]:
        out = {k: v for k, v in self.args.items() if v is not None}
        for e in self.config.get("Env") or []:
            k, _, v = e.partition("=")
            out[k] = v
        return out

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)


def parse_duration(text: str, what: str) -> int:
    """Go's ``time.ParseDuration`` (``1m30s``, ``500ms``) in nanoseconds."""
    units = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(f"time: invalid duration \"{text}\" for {what}")
    return int(sum(float(n) * units[u] for n, u in parts))


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


class Builder:
    def __init__(self, images: ImageService, containers: ContainerService, registry: RegistryService,
                 context: Path, opts: Options, out: Callable[[dict[str, Any]], Awaitable[None]],
                 cache: BuildCache) -> None:
        self.images = images
        self.containers = containers
        self.registry = registry
        self.context = context
        self.opts = opts
        self._out = out
        self.cache = cache
        self.made: list[str] = []  # containers to remove
        self.ignore: Matcher | None = None
        self.used_args: set[str] = set()
        self.step = 0
        self.total = 0
        self._sources: list[str] | None = None  # the cachefrom images' parent chains, resolved once

    async def say(self, text: str) -> None:
        if not self.opts.quiet:
            await self._out({"stream": text})

    # -- the whole build -----------------------------------------------------------------

    async def run(self) -> str:
        """Build; on failure (or cancellation) remove every container the build made (with
        ``rm=0`` a successful build keeps its RUN containers, as Docker does)."""
        try:
            return await self._run()
        except BaseException:
            for cid in list(self.made):
                with contextlib.suppress(DockyardError):
                    await asyncio.shield(self.containers.remove(cid, force=True))
            raise

    async def _run(self) -> str:
        df = D.parse(self._read_dockerfile())
        stages = df.stages
        if self.opts.target:
            names = [s.name for s in stages]
            if self.opts.target.lower() not in names:
                raise InvalidArgument(f"failed to reach build target {self.opts.target} in Dockerfile")
            stages = stages[:names.index(self.opts.target.lower()) + 1]
        if self.opts.labels:
            pairs = " ".join(f"{D.quote(k)}={D.quote(v)}" for k, v in sorted(self.opts.labels.items()))
            stages[-1].instructions.append(D.Instruction("label", pairs, 0, "LABEL " + pairs, args=pairs))
        self.total = len(df.meta_args) + sum(1 + len(s.instructions) for s in stages)
        meta: dict[str, str | None] = {}
        for ins in df.meta_args:  # printed as steps, as the classic builder does
            self.step += 1
            await self.say(f"Step {self.step}/{self.total} : {ins.original}\n")
            self._declare(meta, [ins], {})
        done: dict[str, str | None] = {}  # stage name or index -> image id
        state = None
        for stage in stages:
            state = await self._from(stage, meta, done)
            for ins in stage.instructions:
                self.step += 1
                await self.say(f"Step {self.step}/{self.total} : {ins.original}\n")
                await self._dispatch(ins, state, meta, done)
                if state.image_id is not None:
                    await self.say(f" ---> {short(state.image_id)}\n")
            done[str(stage.index)] = state.image_id
            if stage.name:
                done[stage.name] = state.image_id
        assert state is not None
        if state.image_id is None:
            raise BuildFailed("No image was generated. Is your Dockerfile empty?")
        unused = sorted(k for k in self.opts.buildargs if k not in self.used_args and k not in BUILTIN_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        image_id = state.image_id
        await self._out({"aux": {"ID": image_id}})
        await self.say(f"Successfully built {short(image_id)}\n")
        for t in self.opts.tags:
            ref = R.parse(t).with_default_tag()
            self.images.tag(image_id, ref.familiar_name, ref.tag)
            await self.say(f"Successfully tagged {ref.familiar}\n")
        if self.opts.quiet:
            await self._out({"stream": image_id + "\n"})
        return image_id

    def _read_dockerfile(self) -> bytes:
        name = self.opts.dockerfile or "Dockerfile"
        with A.Root(self.context) as root:
            clean = posixpath.normpath(name.lstrip("/"))
            if clean.startswith(".."):
                raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
            parts = root.resolve("/" + clean)
            try:
                if not parts:
                    raise OSError
                fd = root.open_dir(parts[:-1])
            except OSError:
                raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None
            try:
                try:
                    ffd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                except OSError:
                    raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}") from None
                with open(ffd, "rb") as f:
                    data = f.read(10 << 20)
            finally:
                os.close(fd)
            try:
                ign_fd = os.open(".dockerignore", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root.fd)
            except OSError:
                pass
            else:
                with open(ign_fd, "rb") as f:
                    self.ignore = Matcher.from_text(f.read(1 << 20).decode(errors="replace"))
        return data

    def _declare(self, declared: dict[str, str | None], args: list[D.Instruction],
                 env: dict[str, str], inherited: dict[str, str | None] | None = None) -> dict[str, str | None]:
        """ARG instructions: each name's value is the build arg, else its default, else the
        meta ARG of the same name (for ARGs inside a stage)."""
        for ins in args:
            for word in D.words(ins.args, {**{k: v for k, v in declared.items() if v is not None}, **env}, ins.escape):
                name, eq, default = word.partition("=")
                if not name:
                    raise D.ParseError(ins.line, "ARG requires exactly one argument")
                if name in self.opts.buildargs and self.opts.buildargs[name] is not None:
                    value: str | None = self.opts.buildargs[name]
                    self.used_args.add(name)
                elif eq:
                    value = default
                elif inherited is not None and inherited.get(name) is not None:
                    value = inherited[name]
                else:
                    value = None
                if name in self.opts.buildargs:
                    self.used_args.add(name)
                declared[name] = value
        return declared

    # -- FROM --------------------------------------------------------------------------------

    async def _from(self, stage: D.Stage, meta: dict[str, str | None], done: dict[str, str | None]) -> StageState:
        self.step += 1
        await self.say(f"Step {self.step}/{self.total} : {stage.from_instruction.original}\n")
        base = D.expand(stage.base, {k: v for k, v in meta.items() if v is not None}, stage.from_instruction.escape)
        if base.lower() == "scratch":
            return StageState(None, {"Env": [DEFAULT_PATH]})
        if base.lower() in done:
            image_id = done[base.lower()]
        else:
            image_id = await self._base_image(base)
        config = dict(self.images.config(image_id).get("config") or {}) if image_id else {"Env": [DEFAULT_PATH]}
        state = StageState(image_id, config)
        triggers = config.pop("OnBuild", None) or []
        if triggers:  # the base's ONBUILD triggers run first, in order, and are not inherited
            instructions = D.parse_triggers([str(t) for t in triggers])
            await self.say(f"# Executing {len(instructions)} build trigger{'s' if len(instructions) > 1 else ''}\n")
            for ins in instructions:
                await self._dispatch(ins, state, meta, done)
        await self.say(f" ---> {short(state.image_id)}\n" if state.image_id else "")
        return state

    async def _base_image(self, name: str) -> str:
        """The image of a FROM (or ``COPY --from``) that is not a stage: the local one, pulled
        first when missing (as Docker's classic builder does) or always with ``pull=1``."""
        if not self.opts.pull:
            try:
                return self.images.resolve(name).id
            except NoSuchImage:
                pass
        await self._pull(name)
        try:
            return self.images.resolve(name).id
        except NoSuchImage:
            raise BuildFailed(f"No such image: {name}") from None

    async def _pull(self, name: str) -> None:
        """Fetch an image through the daemon's registry service, with the credentials of
        ``X-Registry-Config`` for its registry; its progress messages (``Pulling from``, the
        layers, ``Status: Downloaded newer image``) go into the build output as Docker's do."""
        from ..registry import Credentials, pull_reference

        svc = self.registry
        domain = pull_reference(name, None).domain
        auth = self.opts.registry_config.get(domain) or {}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def progress(msg: dict[str, Any]) -> None:  # called from the event loop or a worker thread
            loop.call_soon_threadsafe(queue.put_nowait, msg)

        task = asyncio.ensure_future(svc.pull(name, None, self.opts.platform or None, Credentials.from_json(auth),
                                              progress))
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    await asyncio.sleep(0)  # messages a worker thread sent just before the end
                    continue
                if not self.opts.quiet:
                    await self._out(getter.result())
            task.result()
        except DockyardError as exc:
            raise BuildFailed(exc.message) from None
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # -- the other instructions --------------------------------------------------------------

    async def _dispatch(self, ins: D.Instruction, st: StageState, meta: dict[str, str | None],
                        done: dict[str, str | None]) -> None:
        env = st.env()
        cmd = ins.cmd
        if cmd == "run":
            await self._run_step(ins, st)
            return
        if cmd in ("copy", "add"):
            await self._copy(ins, st, env, done)
            return
        config = json.loads(json.dumps(st.config))
        summary = f"{cmd.upper()} {ins.args}"
        if cmd == "env":
            pairs = D.key_values(ins, env)
            current = list(config.get("Env") or [])
            for k, v in pairs:
                current = [e for e in current if e.partition("=")[0] != k] + [f"{k}={v}"]
                env[k] = v
            config["Env"] = current
            summary = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        elif cmd == "label":
            labels = dict(config.get("Labels") or {})
            pairs = D.key_values(ins, env)
            labels.update(pairs)
            config["Labels"] = labels
            summary = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        elif cmd == "arg":
            self._declare(st.args, [ins], env, inherited=meta)
            summary = "ARG " + ins.args
        elif cmd == "workdir":
            path = D.expand(ins.args, env, ins.escape)
            config["WorkingDir"] = posixpath.normpath(posixpath.join(config.get("WorkingDir") or "/", path))
            summary = "WORKDIR " + config["WorkingDir"]
        elif cmd == "user":
            config["User"] = D.expand(ins.args, env, ins.escape)
        elif cmd == "expose":
            ports = dict(config.get("ExposedPorts") or {})
            for p in D.words(ins.args, env, ins.escape):
                if not re.fullmatch(r"\d+(-\d+)?(/(tcp|udp|sctp))?", p):
                    raise D.ParseError(ins.line, f"Invalid containerPort: {p}")
                ports[p if "/" in p else p + "/tcp"] = {}
            config["ExposedPorts"] = ports
        elif cmd == "volume":
            vols = dict(config.get("Volumes") or {})
            raw = ins.json_args()
            targets = ([D.expand(v, env, ins.escape) for v in raw] if raw is not None
                       else D.words(ins.args, env, ins.escape))
            for v in targets:
                if not v:
                    raise D.ParseError(ins.line, "VOLUME specified can not be an empty string")
                vols[v] = {}
            config["Volumes"] = vols
        elif cmd == "cmd":
            config["Cmd"] = D.command(ins, st.shell)
            st.cmd_set = True
        elif cmd == "entrypoint":
            config["Entrypoint"] = D.command(ins, st.shell)
            if not st.cmd_set:
                config["Cmd"] = None
        elif cmd == "shell":
            shell = ins.json_args()
            if not shell:
                raise D.ParseError(ins.line, "SHELL requires the arguments to be in JSON form")
            config["Shell"] = shell
        elif cmd == "stopsignal":
            config["StopSignal"] = D.expand(ins.args, env, ins.escape)
        elif cmd == "healthcheck":
            config["Healthcheck"] = self._healthcheck(ins, st)
        elif cmd == "onbuild":
            config["OnBuild"] = [*(config.get("OnBuild") or []), ins.args]
        elif cmd == "maintainer":
            pass  # deprecated; kept in the history only
        await self._commit_metadata(st, config, f"#(nop) {summary}")

    def _healthcheck(self, ins: D.Instruction, st: StageState) -> dict[str, Any]:
        words = ins.args.split(None, 1)
        kind = words[0].upper()
        if kind == "NONE":
            if len(words) > 1 or ins.flags:
                raise D.ParseError(ins.line, "HEALTHCHECK NONE takes no arguments")
            return {"Test": ["NONE"]}
        if kind != "CMD" or len(words) < 2:
            raise D.ParseError(ins.line, "Unknown type \"%s\" in HEALTHCHECK (try CMD)" % words[0])
        sub = D.Instruction("cmd", words[1], ins.line, "", args=words[1])
        exec_form = sub.json_args()
        hc: dict[str, Any] = {"Test": ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", words[1]]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                          ("start-interval", "StartInterval")):
            if flag in ins.flags:
                try:
                    hc[key] = parse_duration(ins.flags[flag], flag)
                except InvalidArgument as exc:
                    raise D.ParseError(ins.line, str(exc)) from None
        if "retries" in ins.flags:
            try:
                hc["Retries"] = int(ins.flags["retries"])
            except ValueError:
                raise D.ParseError(ins.line, f"invalid --retries: {ins.flags['retries']}") from None
        return hc

    async def _cached(self, key: str, st: StageState | None = None, created_by: str = "",
                      config: dict[str, Any] | None = None) -> str | None:
        if self.opts.nocache:
            return None
        if self.opts.cachefrom:
            image_id = self._from_cache_sources(key)
            if image_id is None and st is not None and created_by:
                image_id = await asyncio.to_thread(self._from_source_history, st.image_id, created_by,
                                                   st.config if config is None else config)
                if image_id is not None:
                    self.cache.put(key, image_id)
        else:
            image_id = self.cache.get(key)
        if image_id is None or image_id not in self.images.images:
            return None
        await self.say(" ---> Using cache\n")
        return image_id

    def _from_cache_sources(self, key: str) -> str | None:
        """``cachefrom`` (moby's ``ImageCache``): only images in the parent chain of a named
        image serve the cache (names not present serve nothing); the one made by this step."""
        if self._sources is None:
            self._sources = []
            for name in self.opts.cachefrom:
                try:
                    cur = self.images.resolve(name).id
                except DockyardError:  # not present (or not a name): no cache from it
                    continue
                seen: set[str] = set()
                while cur and cur not in seen:
                    seen.add(cur)
                    self._sources.append(cur)
                    image = self.images.images.get(cur)
                    cur = image.parent if image is not None else ""
        return next((i for i in self._sources if self.cache.key_of(i) == key), None)

    def _from_source_history(self, parent_id: str | None, created_by: str, config: dict[str, Any]) -> str | None:
        """``cachefrom`` images without a parent chain here (pulled, loaded): as moby's
        ``ImageCache``, a named image serves the step when its history and layers start with the
        parent's and its next history entry was made by the same instruction (``created_by``
        names the files' content hash for COPY/ADD); the image of that step is restored from
        its layers (:meth:`ImageService.restore_cached`)."""
        parent = self.images.images.get(parent_id) if parent_id else None
        p_hist = list((parent.config.get("history") or []) if parent is not None else [])
        p_diffs = list(((parent.config.get("rootfs") or {}).get("diff_ids") or []) if parent is not None else [])
        for name in self.opts.cachefrom:
            try:
                source = self.images.resolve(name)
            except DockyardError:
                continue
            s_hist = list(source.config.get("history") or [])
            s_diffs = list((source.config.get("rootfs") or {}).get("diff_ids") or [])
            n = len(p_hist)
            if len(s_hist) <= n or s_hist[:n] != p_hist or s_diffs[:len(p_diffs)] != p_diffs:
                continue
            if s_hist[n].get("created_by") != created_by:
                continue
            if (len(s_hist) == n + 1 and (source.config.get("config") or {}) == config
                    and source.parent in ("", parent_id)):
                return source.id
            return self.images.restore_cached(parent_id, source.id, n + 1, config).id
        return None

    async def _commit_metadata(self, st: StageState, config: dict[str, Any], created_by: str) -> None:
        key = self.cache.key(st.image_id, "meta", json.dumps(config, sort_keys=True), created_by)
        cached = await self._cached(key, st, "/bin/sh -c " + created_by, config)
        if cached is None:
            image = await asyncio.to_thread(self.images.commit, st.image_id, io.BytesIO(EMPTY_TAR), config,
                                            created_by="/bin/sh -c " + created_by)
            cached = image.id
            self.cache.put(key, cached)
        st.image_id, st.config = cached, config

    # -- RUN ---------------------------------------------------------------------------------

    async def _run_step(self, ins: D.Instruction, st: StageState) -> None:
        if st.image_id is None:
            raise BuildFailed("RUN needs a shell or a program: the stage has no filesystem yet (FROM scratch)")
        argv = D.command(ins, st.shell)
        run_args = sorted((k, v) for k, v in st.args.items() if v is not None)
        for k, _ in run_args:
            self.used_args.add(k)
        env = list(st.config.get("Env") or [])
        env_keys = {e.partition("=")[0] for e in env}
        env += [f"{k}={v}" for k, v in run_args if k not in env_keys]
        created_by = " ".join(argv)
        if run_args:
            created_by = f"|{len(run_args)} " + " ".join(f"{k}={v}" for k, v in run_args) + " " + created_by
        key = self.cache.key(st.image_id, "run", json.dumps(argv), json.dumps(run_args),
                             json.dumps(st.config, sort_keys=True))
        cached = await self._cached(key, st, created_by)
        if cached is not None:
            st.image_id = cached
            return
        body: dict[str, Any] = {
            **st.config, "Image": st.image_id, "Cmd": argv, "Entrypoint": None, "Env": env,
            "Healthcheck": {"Test": ["NONE"]}, "AttachStdout": True, "AttachStderr": True,
            "HostConfig": {**self.opts.resources,
                           **({"NetworkMode": self.opts.networkmode} if self.opts.networkmode else {}),
                           **({"ExtraHosts": list(self.opts.extrahosts)} if self.opts.extrahosts else {})},
        }
        c = await self.containers.create(body, None)
        self.made.append(c.id)
        await self.say(f" ---> Running in {c.id[:12]}\n")
        await self.containers.start(c.id)
        reader = self.containers.logs(c)
        if reader is not None:
            async for record in reader.follow():
                text = record.data.decode(errors="replace")
                # Docker's stderr writer: every write to stderr in red (docker-py tests for it)
                await self.say(f"\x1b[91m{text}\x1b[0m" if record.stream == STDERR else text)
        ended = await self.containers.wait(c.id)
        if ended.exit_code != 0:
            raise BuildFailed(f"The command '{' '.join(argv)}' returned a non-zero code: {ended.exit_code}",
                              code=ended.exit_code)
        image_id = await self._commit_container(c.id, st, st.config, created_by)
        self.cache.put(key, image_id)
        st.image_id = image_id
        await self._remove(c.id)

    async def _commit_container(self, cid: str, st: StageState, config: dict[str, Any], created_by: str) -> str:
        storage = self.containers.storage

        def run() -> str:
            layer = IterReader(storage.export_changes(cid))
            try:
                return self.images.commit(st.image_id, layer, config, container_id=cid,
                                          created_by=created_by).id
            finally:
                layer.close()

        return await asyncio.to_thread(run)

    async def _remove(self, cid: str) -> None:
        if self.opts.rm or self.opts.forcerm:
            await self.say(f"Removing intermediate container {cid[:12]}\n")
            await self.containers.remove(cid, force=True)
            self.made.remove(cid)

    # -- COPY and ADD ------------------------------------------------------------------------

    async def _copy(self, ins: D.Instruction, st: StageState, env: dict[str, str], done: dict[str, str | None]) -> None:
        what = ins.cmd.upper()
        if "chmod" in ins.flags:
            raise BuildFailed("the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ "
                              "to learn how to build images with BuildKit enabled")
        raw = ins.json_args()
        words = [D.expand(w, env, ins.escape) for w in raw] if raw is not None else D.words(ins.args, env, ins.escape)
        if len(words) < 2:
            raise D.ParseError(ins.line, f"{what} requires at least two arguments, but only one was provided. "
                                         "Destination could not be determined.")
        *srcs, dest = words
        if ins.cmd == "add" and any(re.match(r"^[a-z][a-z0-9+.-]*://", s) for s in srcs):
            raise BuildFailed("ADD from a URL is not supported: dockyard builds offline "
                              "(download the file into the build context and ADD or COPY it)")
        if len(srcs) > 1 and not dest.endswith("/"):
            raise BuildFailed(f"When using {what} with more than one source file, the destination must be "
                              "a directory and end with a /")
        workdir = st.config.get("WorkingDir") or "/"
        dest_abs = posixpath.join(workdir, dest)
        if dest.endswith("/") and not dest_abs.endswith("/"):
            dest_abs += "/"
        chown = D.expand(ins.flags["chown"], env, ins.escape) if "chown" in ins.flags else ""
        source_image = None
        if "from" in ins.flags:
            ref = D.expand(ins.flags["from"], env, ins.escape)
            source_image = done[ref.lower()] if ref.lower() in done else await self._base_image(ref)
        async with contextlib.AsyncExitStack() as stack:
            if source_image is not None:
                src_root_path = await self._mounted(stack, source_image)
                ignore = None
            else:
                src_root_path, ignore = self.context, self.ignore
            src_root = stack.enter_context(A.Root(src_root_path))
            sources = F.resolve_sources(src_root, srcs, what, ignore)
            summary = f"{what} {'--chown=' + chown + ' ' if chown else ''}" + \
                f"{'--from=' + ins.flags['from'] + ' ' if 'from' in ins.flags else ''}{' '.join(srcs)} {dest}"
            # whether the destination is a directory follows from the parent image (in the key)
            with contextlib.ExitStack() as fds:
                digest = await asyncio.to_thread(F.digest, F.entries(src_root, sources, dest_abs, True, ignore, fds))
            key = self.cache.key(st.image_id, ins.cmd, summary, digest, dest_abs)
            # the history entry names the content, as moby's (`COPY file:<hash> in /dest `): what
            # a cachefrom image's history is matched by
            kind = ("multi" if len(sources) > 1
                    else "dir" if sources and stat.S_ISDIR(sources[0].st.st_mode) else "file")
            history = f"{what} {'--chown=' + chown + ' ' if chown else ''}{kind}:{digest.split(':')[-1]} in {dest} "
            cached = await self._cached(key, st, "/bin/sh -c #(nop) " + history)
            if cached is not None:
                st.image_id = cached
                return
            dest_is_dir = dest_abs.endswith("/") or len(srcs) > 1
            target, target_cid = await self._target(stack, st)
            tgt_root = stack.enter_context(A.Root(target))
            if not dest_is_dir:  # a single file onto an existing directory goes into it
                parts = tgt_root.resolve(dest_abs, follow_last=True)
                with contextlib.suppress(OSError):
                    dest_is_dir = stat.S_ISDIR(tgt_root.lstat(parts).st_mode)
                if any(stat.S_ISDIR(s.st.st_mode) for s in sources):
                    dest_is_dir = True
            spool_dir = Path(tempfile.gettempdir())
            with contextlib.ExitStack() as fds:
                tar = await asyncio.to_thread(
                    F.spool_tar, F.entries(src_root, sources, dest_abs, dest_is_dir, ignore, fds), spool_dir)
            stack.callback(tar.close)
            uid, gid = 0, 0
            if chown:
                uid, gid, _ = resolve_user(target, chown)
            dest_dir = dest_abs if dest_is_dir else posixpath.dirname(dest_abs.rstrip("/")) or "/"

            def write() -> None:
                parts = F.mkdir_p(tgt_root, dest_dir, uid, gid)
                if ins.cmd == "add" and source_image is None:
                    for s in sources:
                        if stat.S_ISREG(s.st.st_mode):
                            path = src_root_path / "/".join(s.parts)
                            if F.is_archive(str(path)):
                                with open(path, "rb") as f:
                                    F.extract(tgt_root, parts, f, None, None)
                    plain = [s for s in sources if not (stat.S_ISREG(s.st.st_mode)
                                                         and F.is_archive(str(src_root_path / "/".join(s.parts))))]
                    if len(plain) != len(sources):
                        with contextlib.ExitStack() as fds2:
                            tar2 = F.spool_tar(F.entries(src_root, plain, dest_abs, dest_is_dir, ignore, fds2),
                                               spool_dir)
                        with tar2:
                            F.extract(tgt_root, parts, tar2, uid, gid)
                        return
                F.extract(tgt_root, parts, tar, uid, gid)

            await asyncio.to_thread(write)
            image_id = await self._commit_target(st, history, target, target_cid)
        self.cache.put(key, image_id)
        st.image_id = image_id

    async def _mounted(self, stack: contextlib.AsyncExitStack, image_id: str | None) -> Path:
        """A created (never started) container of ``image_id``, its rootfs mounted."""
        if image_id is None:
            return Path(stack.enter_context(self._scratch_dir()))
        c = await self.containers.create({"Image": image_id, "Cmd": ["/bin/true"], "Entrypoint": None}, None)
        self.made.append(c.id)
        stack.push_async_callback(self._drop, c.id)
        return await stack.enter_async_context(self.containers.mounted(c))

    def _scratch_dir(self) -> tempfile.TemporaryDirectory[str]:
        # under the image store's tmp/ (emptied at start): a killed daemon leaves nothing behind
        return tempfile.TemporaryDirectory(prefix="dockyard-build-", dir=self.images.tmp_dir)

    async def _drop(self, cid: str) -> None:
        if cid in self.made:
            with contextlib.suppress(DockyardError):
                await self.containers.remove(cid, force=True)
            self.made.remove(cid)

    async def _target(self, stack: contextlib.AsyncExitStack, st: StageState) -> tuple[Path, str | None]:
        """Where a COPY writes: the rootfs of a created container of the current image (and
        its id), or for a scratch stage an empty directory (and None)."""
        if st.image_id is None:
            return Path(stack.enter_context(self._scratch_dir())), None
        c = await self.containers.create({"Image": st.image_id, "Cmd": ["/bin/true"], "Entrypoint": None}, None)
        self.made.append(c.id)
        stack.push_async_callback(self._drop, c.id)
        return await stack.enter_async_context(self.containers.mounted(c)), c.id

    async def _commit_target(self, st: StageState, summary: str, directory: Path, cid: str | None) -> str:
        created_by = "/bin/sh -c #(nop) " + summary
        if cid is not None:
            return await self._commit_container(cid, st, st.config, created_by)
        from .. import layers as L

        def run() -> str:
            layer = IterReader(L.export_dir(directory))
            try:
                return self.images.commit(None, layer, st.config, created_by=created_by).id
            finally:
                layer.close()

        return await asyncio.to_thread(run)
