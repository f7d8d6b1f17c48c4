"""Lifecycle verbs: start, attach, stop, restart, kill, rm, pause, unpause, wait, rename,
update and ``container prune``."""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

import click

from . import interactive
from .client import APIError, Client, ClientError, q
from .create_flags import create_body
from .docker_command import command
from .options import filter_dict
from .output import prune_report
from .sessions import SignalProxy, attach_stream, inspect_container, start_attached, wait_status


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
    start_attached(client, cid, tty=tty, stdin=stdin, detach_keys=detach_keys, sig_proxy=sig_proxy,
                   condition="next-exit", running_exit=1)


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
    prune_report("Containers", result.get("ContainersDeleted") or [], result.get("SpaceReclaimed") or 0)
