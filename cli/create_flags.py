"""The ``run``/``create`` flags and the ``POST /containers/create`` body they make (``update``
reuses the HostConfig part). Pure parsing, unit tested."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping, Sequence

import click

from . import aliases, health, networks, ports, run_flags


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
    labels = parse_labels(run_flags.labels(o))
    if labels:
        body["Labels"] = labels
    stdin = bool(o.get("interactive"))
    # attach: not detached (run without -d, create); -a picks the streams, as docker does
    a_in, a_out, a_err = run_flags.attach_streams(o) if attach else (False, False, False)
    body.update({"Tty": bool(o.get("tty")), "OpenStdin": stdin, "StdinOnce": stdin and a_in,
                 "AttachStdin": a_in, "AttachStdout": a_out, "AttachStderr": a_err})

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
    for key, value in (("CapAdd", run_flags.capabilities(o.get("cap_add") or ())),
                       ("CapDrop", run_flags.capabilities(o.get("cap_drop") or ())),
                       ("SecurityOpt", list(o.get("security_opt") or ()))):
        if value:
            hc[key] = value
    if o.get("network"):
        hc["NetworkMode"] = o["network"]
    from .volumes import apply_mount_flags

    apply_mount_flags(o, body, hc)
    body["HostConfig"] = hc
    run_flags.apply(body, o)
    ports.apply(body, o)
    aliases.apply(body, o)
    networks.apply_ip(body, o)
    health.apply(body, o)
    return body


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
        *run_flags.OPTIONS,
    ]
    for option in reversed(options):
        f = option(f)
    from .volumes import mount_options

    return mount_options(f)


CREATE_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}
