"""Registry commands: pull, push (per-layer progress), login, logout.

Credentials live where the docker CLI keeps them, so both CLIs share a login: through the
``credHelpers``/``credsStore`` helper programs of ``$DOCKER_CONFIG/config.json`` (default
``~/.docker``), else in it as ``auths.<registry>.auth`` = base64("user:password"), the directory
0700 and the file 0600 (see :mod:`credentials`). Pull and push send them to
the daemon as ``X-Registry-Auth`` (base64url JSON), as the docker CLI does.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from .client import Client, ClientError, q

HUB_ADDRESS = "https://index.docker.io/v1/"


# -- credentials ---------------------------------------------------------------------------------


def registry_key(server: str | None) -> str:
    """The ``auths`` key: the Hub's legacy address, or ``host[:port]``."""
    if not server or server in ("docker.io", "index.docker.io", "registry-1.docker.io", HUB_ADDRESS):
        return HUB_ADDRESS
    text = server.split("://", 1)[-1].split("/", 1)[0]
    return HUB_ADDRESS if text in ("docker.io", "index.docker.io", "registry-1.docker.io") else text


def registry_of_image(name: str) -> str:
    """Docker's domain split: ``localhost:5000/x`` -> ``localhost:5000``; ``busybox`` -> the Hub."""
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return registry_key(first)
    return HUB_ADDRESS


def stored_auth(server: str) -> dict[str, str]:
    from .credentials import get

    return get(registry_key(server))


def registry_auth_header(server: str) -> str:
    data = json.dumps(stored_auth(server)).encode()
    return base64.urlsafe_b64encode(data).decode()


# -- progress ------------------------------------------------------------------------------------


def render_progress(response: Any, quiet: bool = False) -> None:
    """Docker's progress JSON: one bar per layer on a terminal, plain lines otherwise."""
    failed = None
    tty = sys.stdout.isatty() and not quiet
    if tty:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        bars = Progress(TextColumn("{task.fields[layer]}: {task.description:<18}"), BarColumn(), DownloadColumn())
        tasks: dict[str, Any] = {}
        with bars:
            for msg in response.iter_json():
                if "errorDetail" in msg or "error" in msg:
                    failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
                    break
                status, layer = msg.get("status"), msg.get("id")
                if status is None:
                    continue
                if layer and ("progressDetail" in msg):
                    detail = msg.get("progressDetail") or {}
                    if layer not in tasks:
                        tasks[layer] = bars.add_task(status, layer=layer, total=None)
                    kw: dict[str, Any] = {"description": status}
                    if detail.get("total"):
                        kw.update(total=detail["total"], completed=detail.get("current", 0))
                    elif status in ("Download complete", "Pull complete", "Pushed", "Already exists",
                                    "Layer already exists") or status.startswith("Mounted from"):
                        task = bars.tasks[tasks[layer]]
                        kw.update(total=task.total or 1, completed=task.total or 1)
                    bars.update(tasks[layer], **kw)
                else:
                    bars.console.print(f"{layer}: {status}" if layer else status, highlight=False, markup=False)
    else:
        for msg in response.iter_json():
            if "errorDetail" in msg or "error" in msg:
                failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
                break
            status, layer = msg.get("status"), msg.get("id")
            if status is None or quiet or (msg.get("progressDetail") or {}).get("total"):
                continue
            click.echo(f"{layer}: {status}" if layer else status)
    response.close()
    if failed:
        raise ClientError(failed)


# -- commands ------------------------------------------------------------------------------------


def register(cli: click.Group) -> None:
    for command in (pull, push, login, logout):
        cli.add_command(command)
    image = cli.commands.get("image")  # docker image pull / image push
    if isinstance(image, click.Group):
        image.add_command(pull)
        image.add_command(push)


@click.command("pull")
@click.argument("name")
@click.option("--platform", help="Platform to pull (os/arch[/variant]) from a multi-platform image")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.pass_obj
def pull(client: Client, name: str, platform: str | None, quiet: bool) -> None:
    """Pull an image from a registry (by tag or digest)."""
    image, tag = _split(name)
    params = {"fromImage": image, "tag": tag}
    if platform:
        params["platform"] = platform
    response = client.request("POST", "/images/create", params=params, stream=True,
                              headers={"X-Registry-Auth": registry_auth_header(registry_of_image(image))})
    render_progress(response, quiet)
    if quiet:
        click.echo(name if (":" in name.rsplit("/", 1)[-1] or "@" in name) else f"{name}:latest")


@click.command("push")
@click.argument("name")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of the repository")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.pass_obj
def push(client: Client, name: str, all_tags: bool, quiet: bool) -> None:
    """Push an image (a tag, or with -a every tag of a repository) to a registry."""
    image, tag = _split(name)
    if "@" in name:
        raise ClientError("cannot push a digest reference")
    if all_tags and tag != "latest" and ":" in name.rsplit("/", 1)[-1]:
        raise ClientError("tag can't be used with --all-tags/-a")
    params = {"tag": "" if all_tags else tag}
    response = client.request("POST", f"/images/{q(image)}/push", params=params, stream=True,
                              headers={"X-Registry-Auth": registry_auth_header(registry_of_image(image))})
    render_progress(response, quiet)


@click.command("login")
@click.argument("server", required=False)
@click.option("-u", "--username", help="Username")
@click.option("-p", "--password", help="Password (prefer --password-stdin)")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.pass_obj
def login(client: Client, server: str | None, username: str | None, password: str | None,
          password_stdin: bool) -> None:
    """Log in to a registry; the credentials are stored in Docker's config.json."""
    key = registry_key(server)
    if password_stdin:
        if password:
            raise ClientError("--password and --password-stdin are mutually exclusive")
        if not username:
            raise ClientError("must provide --username with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
    if not username:
        username = click.prompt("Username")
    if not password:
        password = click.prompt("Password", hide_input=True)
    answer = client.post("/auth", body={"username": username, "password": password, "serveraddress": key}) or {}
    from .credentials import store

    store(key, username, password, answer.get("IdentityToken") or None)
    click.echo(answer.get("Status") or "Login Succeeded")


@click.command("logout")
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Remove the stored credentials of a registry."""
    from .credentials import erase, is_stored

    key = registry_key(server)
    if not is_stored(key):
        click.echo(f"Not logged in to {key}")
        return
    click.echo(f"Removing login credentials for {key}")
    erase(key)


def _split(name: str) -> tuple[str, str]:
    """``repo[:tag][@digest]`` -> (repo, tag or digest), ``latest`` when neither."""
    if "@" in name:
        repo, digest = name.split("@", 1)
        return repo, digest
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, "latest"
