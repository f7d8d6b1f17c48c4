"""Attached sessions, shared by ``run``, ``start -a`` and ``attach``: the attach stream, the
signal proxy, the ``/wait`` status, and docker run's exit codes when the start fails."""

from __future__ import annotations

import signal as signals
import sys
import threading
from typing import Any

import click

from . import interactive
from .client import APIError, Client, ClientError, q


def start_exit_code(message: str) -> int:
    """docker run's status when the start fails: 127 command not found, 126 not executable,
    125 anything else."""
    if any(s in message for s in ("executable file not found", "no such file or directory",
                                  "system cannot find the file specified")):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


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
                  detach_keys: str | None = None, stdout: bool = True, stderr: bool = True) -> Any:
    return client.hijack(f"/containers/{q(cid)}/attach",
                         params={"stream": 1, "stdout": int(stdout), "stderr": int(stderr), "logs": 1 if logs else None,
                                 "stdin": 1 if stdin else None, "detachKeys": detach_keys or None})


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


def start_attached(client: Client, cid: str, *, tty: bool, stdin: bool, detach_keys: str | None,
                   sig_proxy: bool, condition: str, running_exit: int | None = None, stdout: bool = True,
                   stderr: bool = True) -> None:
    """``run`` and ``start -a``: attach and wait before the start, so no output and no exit is
    missed; start; then copy the streams. Exits with the container's exit code (with docker
    run's codes when the start fails; ``running_exit``, when given, if it was already running)
    and returns only when the user detached: the container keeps running."""
    conn = attach_stream(client, cid, stdin=stdin, detach_keys=detach_keys, stdout=stdout, stderr=stderr)
    waiter = client.request("POST", f"/containers/{q(cid)}/wait", params={"condition": condition}, stream=True)
    with SignalProxy(client, cid, sig_proxy and not tty):
        try:
            client.request("POST", f"/containers/{q(cid)}/start")
        except APIError as exc:
            conn.close()
            waiter.close()
            click.echo(str(exc), err=True)
            sys.exit(running_exit if exc.status == 304 and running_exit is not None else start_exit_code(exc.message))
        if interactive.container_session(client, cid, conn, tty, stdin, detach_keys):
            waiter.close()
            return  # detached: the container keeps running
        code = wait_status(waiter)
    sys.exit(code)
