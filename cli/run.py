"""``run`` and ``create``: exit 125 for a usage or daemon error, 126/127 when the container's
command cannot start, else the container's own exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Callable, Iterator, Sequence

import click

from . import interactive, run_flags
from .client import APIError, Client, ClientError, q
from .create_flags import CREATE_SETTINGS, container_options, create_body
from .docker_command import command
from .sessions import start_attached, start_exit_code


PULL_CHOICES = ("always", "missing", "never")

CREATE_CALL_OPTIONS = [
    click.option("--pull", default="missing", show_default=True,
                 help='Pull image before creating ("always", "missing", "never")'),
    click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output"),
    click.option("--platform", help="Set platform if server is multi-platform capable"),
]


def create_call_options(f: Any) -> Any:
    for option in reversed(CREATE_CALL_OPTIONS):
        f = option(f)
    return f


def _pull(client: Client, image: str, opts: dict[str, Any]) -> None:
    """``POST /images/create`` with the progress on stderr (stdout is for the id), as docker's."""
    from .registry import _split, registry_auth_header, registry_of_image

    repo, tag = _split(image)
    first, sep, _ = repo.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):  # docker's normalized name
        repo = f"docker.io/{repo}" if sep else f"docker.io/library/{repo}"
    response = client.request("POST", "/images/create", stream=True,
                              params={"fromImage": repo, "tag": tag, "platform": opts.get("platform")},
                              headers={"X-Registry-Auth": registry_auth_header(registry_of_image(repo))})
    try:
        for msg in response.iter_json():
            if msg.get("error") or msg.get("errorDetail"):
                raise ClientError((msg.get("errorDetail") or {}).get("message") or msg.get("error"))
            if not opts.get("quiet") and msg.get("status") and not (msg.get("progressDetail") or {}).get("total"):
                click.echo(f"{msg['id']}: {msg['status']}" if msg.get("id") else msg["status"], err=True)
    finally:
        response.close()


def _familiar(image: str) -> str:
    """The name docker prints in "Unable to find image": a tag added when there is none."""
    last = image.rsplit("/", 1)[-1]
    return image if "@" in image or ":" in last else f"{image}:latest"


def _create(client: Client, image: str, command: Sequence[str], opts: dict[str, Any], attach: bool,
            error_exit: int = 125) -> str:
    """Create the container (pulling its image as ``--pull`` says); a failure exits
    ``error_exit``: docker run's 125, docker create's 1."""
    try:
        if opts.get("pull") not in PULL_CHOICES:
            raise click.UsageError(f"invalid pull option: '{opts.get('pull')}': must be one of "
                                   '"always", "missing" or "never"')
        body = create_body(image, command, opts, attach=attach)
        with _cid_file(opts.get("cidfile")) as cid_out:
            params = {"name": opts.get("name"), "platform": opts.get("platform")}
            if opts["pull"] == "always":
                _pull(client, image, opts)
            try:
                result = client.post("/containers/create", params=params, body=body)
            except APIError as exc:
                if not (exc.status == 404 and opts["pull"] == "missing" and "No such image" in exc.message):
                    raise
                if not opts.get("quiet"):
                    click.echo(f"Unable to find image '{_familiar(image)}' locally", err=True)
                _pull(client, image, opts)
                result = client.post("/containers/create", params=params, body=body)
            cid_out(result["Id"])
    except ClientError as exc:
        exc.exit_code = error_exit  # type: ignore[misc]
        raise
    for w in [*(result.get("Warnings") or []), *run_flags.localhost_dns_warnings(body)]:
        click.echo(f"WARNING: {w}", err=True)
    return result["Id"]


@contextlib.contextmanager
def _cid_file(path: str | None) -> Iterator[Callable[[str], None]]:
    """``--cidfile``: made (it must not exist) before the create, holds the id after it, and
    is removed again when the create failed, as docker does."""
    if not path:
        yield lambda cid: None
        return
    if os.path.exists(path):
        raise ClientError(f"container ID file found, make sure the other container isn't running or delete {path}")
    try:
        f = open(path, "x")
    except OSError as exc:
        raise ClientError(f"failed to create the container ID file: {exc}") from None
    written = False

    def write(cid: str) -> None:
        nonlocal written
        f.write(cid)
        written = True

    try:
        yield write
    finally:
        f.close()
        if not written:
            os.unlink(path)


@command("create", context_settings=CREATE_SETTINGS)
@container_options
@create_call_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(client: Client, image: str, command: tuple[str, ...], **opts: Any) -> None:
    """Create a new container (IMAGE [COMMAND] [ARG...]) and print its id."""
    click.echo(_create(client, image, command, opts, attach=True, error_exit=1))


@command("run", context_settings=CREATE_SETTINGS)
@container_options
@create_call_options
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
    if detach and opts.get("attach"):
        raise ClientError("conflicting options: cannot specify both --attach and --detach")  # docker 28: exit 1
    stdin, stdout, stderr = run_flags.attach_streams(opts)
    stdin = stdin and not detach
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
    if not (stdout or stderr):
        click.echo(cid)  # as docker run -a stdin: nothing else will say which container it is
    start_attached(client, cid, tty=bool(opts.get("tty")), stdin=stdin, detach_keys=detach_keys, sig_proxy=sig_proxy,
                   condition="removed" if opts.get("rm") else "next-exit", stdout=stdout, stderr=stderr)
