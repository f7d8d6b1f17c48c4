"""Container commands: run, create, start, stop, kill, restart, rm, ps, logs, inspect, wait,
rename, pause, unpause, top, stats, diff, attach, update, and the ``container`` group
(``container ls|list|ps``, ``container rm|remove``, ``container prune``, ...), as docker has
them: the same flags, output and exit codes (125 for a usage or daemon error in run/create,
126/127 when the container's command cannot start, else the container's own exit code)."""

from __future__ import annotations

import json
import os
import re
import signal as signals
import sys
import threading
import time
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

import click

from . import health, interactive, ports
from . import aliases
from . import networks
from .client import APIError, Client, ClientError, q
from .options import filter_dict
from .output import human_duration, human_size, table
from .streams import MULTIPLEXED, copy_output, socket_chunks

# -- command class: usage errors exit 125, as docker's do -----------------------------------


class DockerCommand(click.Command):
    """Usage errors (unknown flag, bad value) exit 125 like docker's, not click's 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = 125
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 125
            raise


def command(name: str, **kw: Any) -> Callable[[Callable[..., Any]], click.Command]:
    return click.command(name, cls=DockerCommand, **kw)


# -- pure helpers (unit tested) ---------------------------------------------------------------


def parse_size(text: str, what: str) -> int:
    from dockyard.config import parse_size as _parse
    from dockyard.errors import ConfigError

    if text.strip() == "-1":
        return -1
    try:
        value = _parse(text)
    except ConfigError:
        raise click.BadParameter(f"invalid size: '{text}'", param_hint=what) from None
    if value < 0:
        raise click.BadParameter(f"invalid size: '{text}'", param_hint=what)
    return value


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024:2048`` -> ``{"Name": "nofile", "Soft": 1024, "Hard": 2048}``; one number
    sets both; ``unlimited`` is -1."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise click.BadParameter(f"invalid ulimit argument: {text}", param_hint="--ulimit")
    soft_s, _, hard_s = values.partition(":")

    def num(s: str) -> int:
        if s in ("unlimited", "-1"):
            return -1
        try:
            return int(s)
        except ValueError:
            raise click.BadParameter(f"invalid ulimit argument: {text}", param_hint="--ulimit") from None

    soft = num(soft_s)
    hard = num(hard_s) if hard_s else soft
    if soft != -1 and hard != -1 and soft > hard:
        raise click.BadParameter(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}",
                                 param_hint="--ulimit")
    return {"Name": name, "Soft": soft, "Hard": hard}


def parse_restart(text: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` -> Docker's RestartPolicy."""
    name, sep, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise click.BadParameter(f"invalid restart policy format: {text}", param_hint="--restart")
    retries = 0
    if sep:
        if name != "on-failure":
            raise click.BadParameter(f"maximum retry count can only be used with 'on-failure': {text}",
                                     param_hint="--restart")
        try:
            retries = int(count)
        except ValueError:
            raise click.BadParameter(f"maximum retry count must be an integer: {count}",
                                     param_hint="--restart") from None
    return {"Name": name or "no", "MaximumRetryCount": retries}


def parse_env(items: Iterable[str], env_files: Iterable[str] = (),
              environ: Mapping[str, str] = os.environ) -> list[str]:
    """``-e K=V``; ``-e K`` takes K from our environment (dropped when unset); env files
    hold one such item a line, ``#`` comments."""
    out: list[str] = []
    lines: list[str] = []
    for path in env_files:
        try:
            with open(path, encoding="utf-8") as f:
                lines += [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise click.BadParameter(f"open {path}: {exc.strerror}", param_hint="--env-file") from None
    for item in [*lines, *items]:
        key, sep, _ = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid environment variable: {item}", param_hint="--env")
        if sep:
            out.append(item)
        elif key in environ:
            out.append(f"{key}={environ[key]}")
    return out


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"invalid label: {item}", param_hint="--label")
        out[key] = value
    return out


def create_body(image: str, command: Sequence[str], opts: Mapping[str, Any], *, attach: bool = False,
                environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The ``POST /containers/create`` body for ``run``/``create`` flags (click's names)."""
    o = dict(opts)
    body: dict[str, Any] = {"Image": image, "Cmd": list(command) or None}
    if o.get("entrypoint") is not None:
        # --entrypoint "" resets the image's entrypoint
        body["Entrypoint"] = [o["entrypoint"]] if o["entrypoint"] else []
    env = parse_env(o.get("env") or (), o.get("env_file") or (), environ)
    if env:
        body["Env"] = env
    for flag, key in (("workdir", "WorkingDir"), ("user", "User"), ("hostname", "Hostname"),
                      ("stop_signal", "StopSignal")):
        if o.get(flag):
            body[key] = o[flag]
    if o.get("stop_timeout") is not None:
        body["StopTimeout"] = int(o["stop_timeout"])
    labels = parse_labels(o.get("label") or ())
    if labels:
        body["Labels"] = labels
    stdin = bool(o.get("interactive"))
    body.update({"Tty": bool(o.get("tty")), "OpenStdin": stdin, "StdinOnce": stdin and attach,
                 "AttachStdin": stdin and attach, "AttachStdout": attach, "AttachStderr": attach})

    hc: dict[str, Any] = {}
    if o.get("console_size"):
        hc["ConsoleSize"] = list(o["console_size"])
    if o.get("rm"):
        hc["AutoRemove"] = True
    if o.get("memory"):
        hc["Memory"] = parse_size(o["memory"], "--memory")
    if o.get("memory_swap"):
        hc["MemorySwap"] = parse_size(o["memory_swap"], "--memory-swap")
    if o.get("cpus") is not None:
        if o["cpus"] < 0:
            raise click.BadParameter("range of CPUs is from 0.01 to the number of CPUs", param_hint="--cpus")
        hc["NanoCpus"] = int(round(o["cpus"] * 1e9))
    if o.get("cpu_shares") is not None:
        hc["CpuShares"] = int(o["cpu_shares"])
    if o.get("cpuset_cpus"):
        hc["CpusetCpus"] = o["cpuset_cpus"]
    if o.get("pids_limit") is not None:
        hc["PidsLimit"] = int(o["pids_limit"])
    if o.get("restart"):
        policy = parse_restart(o["restart"])
        if o.get("rm") and policy["Name"] != "no":
            raise click.UsageError("Conflicting options: --restart and --rm")
        hc["RestartPolicy"] = policy
    if o.get("init"):
        hc["Init"] = True
    if o.get("read_only"):
        hc["ReadonlyRootfs"] = True
    if o.get("privileged"):
        hc["Privileged"] = True
    ulimits = [parse_ulimit(u) for u in o.get("ulimit") or ()]
    if ulimits:
        hc["Ulimits"] = ulimits
    for flag, key in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop"), ("security_opt", "SecurityOpt")):
        if o.get(flag):
            hc[key] = list(o[flag])
    if o.get("network"):
        hc["NetworkMode"] = o["network"]
    from .volumes import apply_mount_flags

    apply_mount_flags(o, body, hc)
    body["HostConfig"] = hc
    ports.apply(body, o)
    aliases.apply(body, o)
    networks.apply_ip(body, o)
    health.apply(body, o)
    return body


def start_exit_code(message: str) -> int:
    """docker run's status when the start fails: 127 command not found, 126 not executable,
    125 anything else."""
    if any(s in message for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def to_unix(value: str | None, now: float | None = None) -> str | None:
    """docker's ``--since``/``--until``: unix seconds, a Go duration (``1h30m`` ago), or an
    RFC 3339 / ``YYYY-MM-DD[THH:MM:SS]`` time -> unix seconds for the API."""
    if not value:
        return None
    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if _DURATION.match(value):
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(value))
        return f"{now - seconds:.9f}"
    text = value.replace("Z", "+00:00").replace("z", "+00:00")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(_trim_fraction(text), fmt)
        except ValueError:
            continue
        return f"{dt.timestamp():.9f}"
    raise click.BadParameter(f"invalid time value: {value!r}")


def _trim_fraction(text: str) -> str:
    """Python's %f takes at most 6 digits; RFC 3339 may have 9."""
    return re.sub(r"\.(\d{6})\d+", r".\1", text)


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def go_str(value: Any) -> str:
    """A value as Go's text/template prints it: true/false, [a b], map[k:v]."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def render(template: str, row: Any) -> str:
    """``{{.A.B}}``, ``{{json .A}}``, ``{{.}}``, with Go's printing of values."""

    def lookup(path: str) -> Any:
        value = row
        for part in path.strip().strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return value

    def repl(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(lookup(expr[5:]), separators=(",", ":"))
        value = lookup(expr)
        return "" if value is None and expr != "." else go_str(value)

    return re.sub(r"\{\{-?(.*?)-?\}\}", repl, template).replace("\\t", "\t").replace("\\n", "\n")


def print_rows(fmt: str | None, rows: list[dict[str, Any]], headers: dict[str, str], default: str) -> None:
    """docker's formatting: ``table`` (default template), ``table TEMPLATE``, ``json`` (one
    object a line) or a bare template (no header)."""
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, separators=(",", ":"), ensure_ascii=False))
        return
    if fmt and not fmt.startswith("table"):
        for r in rows:
            click.echo(render(fmt, r))
        return
    template = (fmt[5:].strip() if fmt else "") or default
    columns = render(template, headers).split("\t")
    table(columns, [render(template, r).split("\t") for r in rows])


# -- stats formulas ---------------------------------------------------------------------------


def cpu_percent(s: Mapping[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - (
        (pre.get("cpu_usage") or {}).get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_used(mem: Mapping[str, Any]) -> int:
    """usage minus page cache: ``stats.cache`` on cgroup v1, ``inactive_file`` on v2."""
    usage = mem.get("usage") or 0
    stats = mem.get("stats") or {}
    if "cache" in stats and stats["cache"] < usage:
        return usage - stats["cache"]
    if "inactive_file" in stats and stats["inactive_file"] < usage:
        return usage - stats["inactive_file"]
    return usage


def _go_g(value: float, precision: int) -> str:
    return f"{value:.{precision}g}"


def bytes_size(n: float) -> str:
    """go-units BytesSize: ``1.5MiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return _go_g(n, 4) + units[i]


def human_size3(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): ``1.23kB``."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return _go_g(n, 3) + units[i]


def stats_row(s: Mapping[str, Any], no_trunc: bool = False) -> dict[str, Any]:
    mem = s.get("memory_stats") or {}
    used, limit = memory_used(mem), mem.get("limit") or 0
    rx = sum((n.get("rx_bytes") or 0) for n in (s.get("networks") or {}).values())
    tx = sum((n.get("tx_bytes") or 0) for n in (s.get("networks") or {}).values())
    read = write = 0
    for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (e.get("op") or "").lower()
        if op == "read":
            read += e.get("value") or 0
        elif op == "write":
            write += e.get("value") or 0
    cid = s.get("id") or ""
    return {
        "ID": cid if no_trunc else cid[:12],
        "Container": cid if no_trunc else cid[:12],
        "Name": (s.get("name") or "").lstrip("/"),
        "CPUPerc": f"{cpu_percent(s):.2f}%",
        "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
        "MemPerc": f"{(used / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size3(rx)} / {human_size3(tx)}",
        "BlockIO": f"{human_size3(read)} / {human_size3(write)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current") or 0),
    }


STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_DEFAULT = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


# -- ps rows --------------------------------------------------------------------------------


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS", "Size": "SIZE",
              "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS", "Networks": "NETWORKS",
              "LocalVolumes": "LOCAL VOLUMES"}
PS_DEFAULT = "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"


def format_ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports or []:
        proto = p.get("Type") or "tcp"
        if p.get("PublicPort"):
            out.append(f"{p.get('IP') or '0.0.0.0'}:{p['PublicPort']}->{p.get('PrivatePort')}/{proto}")
        else:
            out.append(f"{p.get('PrivatePort')}/{proto}")
    return ", ".join(out)


def ps_row(c: Mapping[str, Any], no_trunc: bool = False, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    command = c.get("Command") or ""
    created = c.get("Created") or 0
    names = [n.lstrip("/") for n in c.get("Names") or [] if "/" not in n.lstrip("/")]
    size = ""
    if "SizeRw" in c:
        size = human_size(c.get("SizeRw") or 0) + f" (virtual {human_size(c.get('SizeRootFs') or 0)})"
    return {
        "Command": json.dumps(command if no_trunc else ellipsis(command, 20), ensure_ascii=False),
        "CreatedAt": datetime.fromtimestamp(created).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z"),
        "ID": c.get("Id", "") if no_trunc else c.get("Id", "")[:12],
        "Image": c.get("Image") or "",
        "Labels": ",".join(f"{k}={v}" for k, v in sorted((c.get("Labels") or {}).items())),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")),
        "Mounts": ",".join(m.get("Name") or m.get("Source") or "" for m in c.get("Mounts") or []),
        "Names": ",".join(names),
        "Networks": ",".join(sorted(((c.get("NetworkSettings") or {}).get("Networks") or {}).keys())),
        "Ports": format_ports(c.get("Ports") or []),
        "RunningFor": human_duration(now - created) + " ago",
        "Size": size,
        "State": c.get("State") or "",
        "Status": c.get("Status") or "",
    }


# -- shared plumbing ------------------------------------------------------------------------


def each(names: Iterable[str], action: Callable[[str], Any], echo: bool = True,
         failure: str | None = None) -> None:
    """Do ``action`` for every name, echoing the name as docker does; report each failure and
    exit 1 at the end if any failed."""
    failed = []
    for name in names:
        try:
            action(name)
        except APIError as exc:
            click.echo(str(exc), err=True)
            failed.append(name)
            continue
        if echo:
            click.echo(name)
    if failed:
        if failure:
            click.echo(f"Error: {failure}: {', '.join(failed)}", err=True)
        sys.exit(1)


class SignalProxy:
    """docker's sig-proxy: forward the signals we get to the container while attached."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")

    def __init__(self, client: Client, cid: str, enabled: bool = True) -> None:
        self.client, self.cid, self.enabled = client, cid, enabled
        self.previous: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: Any) -> None:
        name = signals.Signals(signum).name

        def send() -> None:
            try:
                self.client.request("POST", f"/containers/{q(self.cid)}/kill", params={"signal": name})
            except ClientError:
                pass

        threading.Thread(target=send, daemon=True).start()

    def __enter__(self) -> "SignalProxy":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                sig = getattr(signals, name, None)
                if sig is not None:
                    self.previous[sig] = signals.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signals.signal(sig, handler)
        self.previous.clear()


def attach_stream(client: Client, cid: str, logs: bool = False, stdin: bool = False,
                  detach_keys: str | None = None) -> Any:
    return client.hijack(f"/containers/{q(cid)}/attach",
                         params={"stream": 1, "stdout": 1, "stderr": 1, "logs": 1 if logs else None,
                                 "stdin": 1 if stdin else None, "detachKeys": detach_keys or None})


def pump(conn: Any, tty: bool | None = None) -> None:
    """Copy a hijacked stream to our stdout/stderr until the daemon closes it."""
    ctype = conn.headers.get("content-type", "")
    multiplexed = ctype.startswith(MULTIPLEXED) if ctype else not tty
    try:
        conn.close_write()
        copy_output(socket_chunks(conn), multiplexed)
    finally:
        conn.close()


def wait_status(response: Any) -> int:
    """The exit code from a ``/wait`` response; 125 when the wait itself failed."""
    try:
        result = response.json() or {}
    except (ValueError, OSError):
        return 125
    finally:
        response.close()
    error = (result.get("Error") or {}).get("Message") if isinstance(result.get("Error"), dict) else None
    if error:
        click.echo(f"Error waiting for container: {error}", err=True)
        return 125
    return int(result.get("StatusCode") or 0)


def inspect_container(client: Client, name: str) -> dict[str, Any]:
    return client.get(f"/containers/{q(name)}/json")


# -- run and create -------------------------------------------------------------------------


def container_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--name", help="Assign a name to the container"),
        click.option("-e", "--env", multiple=True, help="Set environment variables (K=V, or K from ours)"),
        click.option("--env-file", multiple=True, type=click.Path(), help="Read in a file of environment variables"),
        click.option("-w", "--workdir", help="Working directory inside the container"),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        click.option("-h", "--hostname", help="Container host name"),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container (k=v)"),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image"),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"),
        click.option("-m", "--memory", help="Memory limit (e.g. 32m)"),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 for unlimited swap"),
        click.option("--cpus", type=float, help="Number of CPUs (e.g. 1.5)"),
        click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)"),
        click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)"),
        click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)"),
        click.option("--restart", help="Restart policy: no, always, unless-stopped, on-failure[:max-retries]"),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and reaps processes"),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only"),
        click.option("--ulimit", multiple=True, help="Ulimit options (nofile=1024:2048)"),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities"),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities"),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container"),
        click.option("--security-opt", multiple=True, help="Security options"),
        click.option("--stop-signal", help="Signal to stop the container"),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container"),
        click.option("--network", "--net", "network", help="Connect a container to a network (NetworkMode)"),
        click.option("--rm", is_flag=True, help="Automatically remove the container when it exits"),
        *ports.OPTIONS,
        *aliases.OPTIONS,
        *networks.IP_OPTIONS,
        *health.OPTIONS,
    ]
    for option in reversed(options):
        f = option(f)
    from .volumes import mount_options

    return mount_options(f)


CREATE_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def _create(client: Client, image: str, command: Sequence[str], opts: dict[str, Any], attach: bool) -> str:
    body = create_body(image, command, opts, attach=attach)
    try:
        result = client.post("/containers/create", params={"name": opts.get("name")}, body=body)
    except ClientError as exc:
        exc.exit_code = 125  # type: ignore[misc]
        raise
    for w in result.get("Warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    return result["Id"]


@command("create", context_settings=CREATE_SETTINGS)
@container_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(client: Client, image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container (IMAGE [COMMAND] [ARG...]) and print its id."""
    click.echo(_create(client, image, command, opts, attach=False))


@command("run", context_settings=CREATE_SETTINGS)
@container_options
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True, show_default=True,
              help="Proxy received signals to the process (--sig-proxy=false to turn off)")
@click.option("--detach-keys", help="Override the key sequence for detaching a container")
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(client: Client, image: str, command: tuple[str, ...], detach: bool, sig_proxy: bool,
        detach_keys: str | None, **opts: Any) -> None:
    """Create and run a new container from an image (IMAGE [COMMAND] [ARG...])."""
    stdin = bool(opts.get("interactive")) and not detach
    if not detach:
        interactive.check_terminal(bool(opts.get("tty")), stdin, detach_keys)
        opts["console_size"] = interactive.terminal_size(sys.stdout.fileno()) if opts.get("tty") else None
    cid = _create(client, image, command, opts, attach=not detach)
    if detach:
        try:
            client.request("POST", f"/containers/{q(cid)}/start")
        except APIError as exc:
            click.echo(str(exc), err=True)
            sys.exit(start_exit_code(exc.message))
        click.echo(cid)
        return
    # attach and wait before the start, so no output and no exit is missed
    conn = attach_stream(client, cid, stdin=stdin, detach_keys=detach_keys)
    waiter = client.request("POST", f"/containers/{q(cid)}/wait",
                            params={"condition": "removed" if opts.get("rm") else "next-exit"}, stream=True)
    with SignalProxy(client, cid, sig_proxy and not opts.get("tty")):
        try:
            client.request("POST", f"/containers/{q(cid)}/start")
        except APIError as exc:
            conn.close()
            waiter.close()
            click.echo(str(exc), err=True)
            sys.exit(start_exit_code(exc.message))
        if interactive.container_session(client, cid, conn, bool(opts.get("tty")), stdin, detach_keys):
            waiter.close()
            return  # detached: the container keeps running
        code = wait_status(waiter)
    sys.exit(code)


# -- lifecycle verbs --------------------------------------------------------------------------


@command("start")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", "stdin", is_flag=True, help="Attach container's STDIN")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Proxy received signals to the process (with -a)")
@click.option("--detach-keys", help="Override the key sequence for detaching a container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start(client: Client, attach: bool, stdin: bool, sig_proxy: bool, detach_keys: str | None,
          containers: tuple[str, ...]) -> None:
    """Start one or more stopped containers."""
    attach = attach or stdin  # docker: -i attaches too
    if not attach:
        each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/start"),
             failure="failed to start containers")
        return
    if len(containers) > 1:
        raise click.UsageError("you cannot start and attach multiple containers at once")
    info = inspect_container(client, containers[0])
    cid = info["Id"]
    tty = bool((info.get("Config") or {}).get("Tty"))
    stdin = stdin and bool((info.get("Config") or {}).get("OpenStdin"))
    interactive.check_terminal(tty, stdin, detach_keys)
    conn = attach_stream(client, cid, stdin=stdin, detach_keys=detach_keys)
    waiter = client.request("POST", f"/containers/{q(cid)}/wait", params={"condition": "next-exit"}, stream=True)
    with SignalProxy(client, cid, sig_proxy and not tty):
        try:
            client.request("POST", f"/containers/{q(cid)}/start")
        except APIError as exc:
            conn.close()
            waiter.close()
            click.echo(str(exc), err=True)
            sys.exit(start_exit_code(exc.message) if exc.status != 304 else 1)
        if interactive.container_session(client, cid, conn, tty, stdin, detach_keys):
            waiter.close()
            return  # detached: the container keeps running
        code = wait_status(waiter)
    sys.exit(code)


@command("attach")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy", type=click.BOOL, default=True, is_flag=False, flag_value=True,
              help="Proxy all received signals to the process")
@click.option("--detach-keys", help="Override the key sequence for detaching a container")
@click.argument("container")
@click.pass_obj
def attach(client: Client, no_stdin: bool, sig_proxy: bool, detach_keys: str | None, container: str) -> None:
    """Attach to a running container's output; exit with its exit code."""
    info = inspect_container(client, container)
    state = info.get("State") or {}
    if not state.get("Running"):
        raise ClientError("You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise ClientError("You cannot attach to a paused container, unpause it first")
    cid = info["Id"]
    tty = bool((info.get("Config") or {}).get("Tty"))
    stdin = not no_stdin and bool((info.get("Config") or {}).get("OpenStdin"))
    interactive.check_terminal(tty, stdin, detach_keys)
    conn = attach_stream(client, cid, stdin=stdin, detach_keys=detach_keys)
    with SignalProxy(client, cid, sig_proxy and not tty):
        if interactive.container_session(client, cid, conn, tty, stdin, detach_keys, redraw=True):
            return  # detached: the container keeps running
    sys.exit(wait_status(client.request("POST", f"/containers/{q(cid)}/wait", stream=True)))


@command("stop")
@click.option("-s", "--signal", "sig", help="Signal to send to the container")
@click.option("-t", "--time", "--timeout", "timeout", type=int, help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(client: Client, sig: str | None, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Stop one or more running containers."""
    each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/stop",
                                              params={"t": timeout, "signal": sig}))


@command("restart")
@click.option("-s", "--signal", "sig", help="Signal to send to the container")
@click.option("-t", "--time", "--timeout", "timeout", type=int, help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart(client: Client, sig: str | None, timeout: int | None, containers: tuple[str, ...]) -> None:
    """Restart one or more containers."""
    each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/restart",
                                              params={"t": timeout, "signal": sig}))


@command("kill")
@click.option("-s", "--signal", "sig", help="Signal to send to the container (default KILL)")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill(client: Client, sig: str | None, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/kill", params={"signal": sig or None}))


@command("rm")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm(client: Client, force: bool, volumes: bool, containers: tuple[str, ...]) -> None:
    """Remove one or more containers."""
    each(containers, lambda n: client.request("DELETE", f"/containers/{q(n)}",
                                              params={"force": force or None, "v": volumes or None}))


@command("pause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause(client: Client, containers: tuple[str, ...]) -> None:
    """Pause all processes within one or more containers."""
    each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/pause"))


@command("unpause")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause(client: Client, containers: tuple[str, ...]) -> None:
    """Unpause all processes within one or more containers."""
    each(containers, lambda n: client.request("POST", f"/containers/{q(n)}/unpause"))


@command("wait")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait(client: Client, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    def one(name: str) -> None:
        code = wait_status(client.request("POST", f"/containers/{q(name)}/wait", stream=True))
        click.echo(code)

    each(containers, one, echo=False)


@command("rename")
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename(client: Client, container: str, new_name: str) -> None:
    """Rename a container."""
    if not new_name.strip():
        raise ClientError("Error: Neither old nor new names may be empty")
    client.request("POST", f"/containers/{q(container)}/rename", params={"name": new_name})


@command("update")
@click.option("-m", "--memory", help="Memory limit")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 for unlimited swap")
@click.option("--cpus", type=float, help="Number of CPUs")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)")
@click.option("--restart", help="Restart policy to apply when a container exits")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def update(client: Client, containers: tuple[str, ...], **opts: Any) -> None:
    """Update configuration of one or more containers."""
    body = create_body("", (), opts)["HostConfig"]
    if not body:
        raise click.UsageError("you must provide one or more flags when using this command")
    each(containers, lambda n: [click.echo(f"WARNING: {w}", err=True) for w in
                                (client.post(f"/containers/{q(n)}/update", body=body) or {}).get("Warnings") or []])


# -- queries ----------------------------------------------------------------------------------


@command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions (key=value)")
@click.option("--format", "fmt", help="table (default), table TEMPLATE, json, or a template like '{{.ID}}'")
@click.option("-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.pass_obj
def ps(client: Client, all_: bool, filters: tuple[str, ...], fmt: str | None, last: int, latest: bool,
       no_trunc: bool, quiet: bool, size: bool) -> None:
    """List containers."""
    if latest and last == -1:
        last = 1
    f = filter_dict(filters)
    params = {"all": (all_ or last > 0) or None, "limit": last if last > 0 else None,
              "filters": f or None, "size": size or None}
    items: list[dict[str, Any]] = client.get("/containers/json", params=params)
    now = time.time()
    rows = [ps_row(c, no_trunc, now) for c in items]
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    default = PS_DEFAULT + ("\t{{.Size}}" if size else "")
    print_rows(fmt, rows, PS_HEADERS, default)


@command("logs")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("--since", help="Show logs since timestamp (2013-01-02T13:23:37Z) or relative (42m)")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--until", help="Show logs before a timestamp or relative (42m)")
@click.argument("container")
@click.pass_obj
def logs(client: Client, details: bool, follow: bool, since: str | None, tail: str, timestamps: bool,
         until: str | None, container: str) -> None:
    """Fetch the logs of a container."""
    params = {"stdout": 1, "stderr": 1, "follow": follow or None, "tail": tail,
              "since": to_unix(since), "until": to_unix(until), "timestamps": timestamps or None,
              "details": details or None}
    response = client.request("GET", f"/containers/{q(container)}/logs", params=params, stream=True)
    multiplexed = (response.headers.get("Content-Type") or MULTIPLEXED).startswith(MULTIPLEXED)
    try:
        copy_output(response.iter_chunks(), multiplexed)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        response.close()


def _emit_inspect(results: list[Any], fmt: str | None) -> None:
    if fmt and fmt != "json":
        for r in results:
            click.echo(render(fmt, r))
    else:
        click.echo(json.dumps(results, indent=4))


@command("inspect")
@click.option("-f", "--format", "fmt", help="Format output using a template like '{{.State.Status}}'")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def container_inspect(client: Client, fmt: str | None, size: bool, containers: tuple[str, ...]) -> None:
    """Display detailed information on one or more containers."""
    results, failed = [], False
    for name in containers:
        try:
            results.append(client.get(f"/containers/{q(name)}/json", params={"size": size or None}))
        except APIError as exc:
            click.echo(f"Error: {exc.message}" if exc.status == 404 else str(exc), err=True)
            failed = True
    _emit_inspect(results, fmt)
    if failed:
        sys.exit(1)


@command("top", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(client: Client, container: str, ps_args: tuple[str, ...]) -> None:
    """Display the running processes of a container (CONTAINER [ps OPTIONS])."""
    result = client.get(f"/containers/{q(container)}/top", params={"ps_args": " ".join(ps_args) or None})
    table(result.get("Titles") or [], result.get("Processes") or [])


@command("diff")
@click.argument("container")
@click.pass_obj
def diff(client: Client, container: str) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in client.get(f"/containers/{q(container)}/changes") or []:
        click.echo(f"{kinds.get(change.get('Kind'), '?')} {change.get('Path')}")


@command("prune")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (until=<timestamp>, label=k[=v])")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def prune(client: Client, filters: tuple[str, ...], force: bool) -> None:
    """Remove all stopped containers."""
    if not force and not click.confirm("WARNING! This will remove all stopped containers.\n"
                                       "Are you sure you want to continue?"):
        return
    f = filter_dict(filters)
    result = client.post("/containers/prune", params={"filters": f or None}) or {}
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        click.echo("Deleted Containers:")
        for cid in deleted:
            click.echo(cid)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}")


# -- stats ----------------------------------------------------------------------------------


def _stats_targets(client: Client, containers: tuple[str, ...], all_: bool) -> list[str]:
    if containers:
        return list(containers)
    items = client.get("/containers/json", params={"all": all_ or None})
    return [c["Id"] for c in items]


def _table_text(fmt: str | None, rows: list[dict[str, Any]]) -> str:
    template = (fmt[5:].strip() if fmt and fmt.startswith("table") else "") or STATS_DEFAULT
    lines = [render(template, STATS_HEADERS).split("\t")] + [render(template, r).split("\t") for r in rows]
    widths = [max(len(line[i]) if i < len(line) else 0 for line in lines) for i in range(len(lines[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)


def _print_stats(fmt: str | None, rows: list[dict[str, Any]]) -> None:
    if fmt and not fmt.startswith("table"):
        print_rows(fmt, rows, STATS_HEADERS, STATS_DEFAULT)
    else:
        click.echo(_table_text(fmt, rows))


@command("stats")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--format", "fmt", help="table (default), table TEMPLATE, json, or a template like '{{.Name}}'")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats(client: Client, all_: bool, fmt: str | None, no_stream: bool, no_trunc: bool,
          containers: tuple[str, ...]) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    targets = _stats_targets(client, containers, all_)
    latest: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    lock = threading.Lock()

    def one_shot(ref: str) -> None:
        try:
            s = client.get(f"/containers/{q(ref)}/stats", params={"stream": 0})
            with lock:
                latest[ref] = s
        except ClientError as exc:
            with lock:
                errors[ref] = str(exc)

    def follow(ref: str) -> None:
        try:
            response = client.request("GET", f"/containers/{q(ref)}/stats", params={"stream": 1}, stream=True)
            try:
                for s in response.iter_json():
                    with lock:
                        latest[ref] = s
            finally:
                response.close()
        except (ClientError, OSError, ValueError) as exc:
            with lock:
                errors.setdefault(ref, str(exc))

    threads = [threading.Thread(target=one_shot if no_stream else follow, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()

    def rows() -> list[dict[str, Any]]:
        with lock:
            return [stats_row(latest[t], no_trunc) for t in targets if t in latest]

    if no_stream:
        for t in threads:
            t.join()
        for ref in targets:
            if ref in errors:
                click.echo(errors[ref], err=True)
        _print_stats(fmt, rows())
        if errors:
            sys.exit(1)
        return

    try:
        if sys.stdout.isatty() and (not fmt or fmt.startswith("table")):
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            with Live(Text(_table_text(fmt, rows())), console=Console(), auto_refresh=False) as live:
                while any(t.is_alive() for t in threads):
                    time.sleep(1)
                    live.update(Text(_table_text(fmt, rows())), refresh=True)
        else:
            while True:
                time.sleep(1)
                alive = any(t.is_alive() for t in threads)
                _print_stats(fmt, rows())
                click.echo()
                if not alive:
                    break
    except KeyboardInterrupt:
        return
    for ref in targets:
        if ref in errors and ref not in latest:
            click.echo(errors[ref], err=True)


# -- registration ---------------------------------------------------------------------------


TOP_LEVEL = (run, create, start, stop, kill, restart, rm, ps, logs, wait, rename, pause, unpause, top,
             stats, diff, attach, update)


@click.group("container")
def container() -> None:
    """Manage containers."""


for _cmd in TOP_LEVEL + (prune,):
    container.add_command(_cmd)
container.add_command(container_inspect, "inspect")
container.add_command(ps, "ls")
container.add_command(ps, "list")
container.add_command(rm, "remove")


def register(cli: click.Group) -> None:
    for cmd in TOP_LEVEL:
        cli.add_command(cmd)
    cli.add_command(container)
