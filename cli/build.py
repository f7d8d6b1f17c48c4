"""``dockyard build``: tar the context (honouring .dockerignore), send it to ``POST /build``,
print the step output as it streams."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO, Iterator
from urllib.parse import urlencode

import click

from .client import Client, ClientError, _qs
from .images import progress_bar, read_chunks


def register(cli: click.Group) -> None:
    cli.add_command(build)
    image = cli.commands.get("image")
    if isinstance(image, click.Group):
        image.add_command(build)


def _key_values(items: tuple[str, ...], what: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not key:
            raise ClientError(f"invalid {what}: {item!r}")
        out[key] = value if eq else os.environ.get(key)  # --build-arg NAME takes $NAME, as docker does
    return out


def context_tar(context: Path, dockerfile: Path | None, out: BinaryIO) -> str:
    """Write the context as a tar to ``out``; returns the Dockerfile's name inside it."""
    import secrets  # here, not at the top, like every import only one command needs: start-up
    import tarfile

    from dockyard.build.ignore import Matcher

    ignore_file = context / ".dockerignore"
    matcher = Matcher.from_text(ignore_file.read_text(errors="replace")) if ignore_file.is_file() else Matcher([])
    name = "Dockerfile"
    extra = None
    if dockerfile is not None:
        try:
            name = dockerfile.resolve().relative_to(context.resolve()).as_posix()
        except ValueError:  # outside the context: sent under a name of its own, as docker does
            name = f".dockerfile.{secrets.token_hex(10)}"
            extra = dockerfile
    always = {name, ".dockerignore"}

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for root, dirs, files in os.walk(context):
            rel_root = os.path.relpath(root, context)
            rel_root = "" if rel_root == "." else rel_root
            keep_dirs = []
            for d in sorted(dirs):
                rel = f"{rel_root}/{d}" if rel_root else d
                if matcher.excluded(rel):
                    if matcher.may_contain_exceptions():
                        keep_dirs.append(d)  # something below may be re-included: walk, do not add
                    continue
                tf.add(os.path.join(root, d), rel, recursive=False, filter=clean)
                keep_dirs.append(d)
            dirs[:] = keep_dirs
            for f in sorted(files):
                rel = f"{rel_root}/{f}" if rel_root else f
                if rel not in always and matcher.excluded(rel):
                    continue
                tf.add(os.path.join(root, f), rel, recursive=False, filter=clean)
        if extra is not None:
            tf.add(str(extra), name, recursive=False, filter=clean)
    return name


@click.command("build")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag); repeatable")
@click.option("-f", "--file", "dockerfile", type=click.Path(exists=True, dir_okay=False),
              help="Name of the Dockerfile (default: PATH/Dockerfile)")
@click.option("--build-arg", "build_args", multiple=True, help="Set a build-time variable (NAME=value)")
@click.option("--label", "labels", multiple=True, help="Set metadata for the image (key=value)")
@click.option("--target", default="", help="Build up to this stage")
@click.option("--no-cache", is_flag=True, help="Do not use the cache")
@click.option("--pull", is_flag=True, help="Try to pull newer base images")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID")
@click.option("--network", default="", help="Network mode of the RUN containers")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers (default true)")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers")
@click.pass_obj
def build(client: Client, path: str, tags: tuple[str, ...], dockerfile: str | None, build_args: tuple[str, ...],
          labels: tuple[str, ...], target: str, no_cache: bool, pull: bool, quiet: bool, network: str,
          rm: bool, force_rm: bool) -> None:
    """Build an image from a Dockerfile (the classic builder)."""
    context = Path(path)
    params: dict[str, Any] = {
        "buildargs": _key_values(build_args, "--build-arg"), "labels": _key_values(labels, "--label"),
        "target": target or None, "nocache": no_cache, "pull": pull, "q": quiet, "rm": rm,
        "forcerm": force_rm, "networkmode": network or None,
    }
    import tempfile

    with tempfile.TemporaryFile() as tar:
        params["dockerfile"] = context_tar(context, Path(dockerfile) if dockerfile else None, tar)
        size = tar.tell()
        tar.seek(0)
        query = urlencode([(k, _qs(v)) for k, v in params.items() if v is not None] + [("t", t) for t in tags])
        with progress_bar("Sending build context", size) as advance:
            response = client.request("POST", f"/build?{query}", data=read_chunks(tar, advance),
                                      headers={"Content-Type": "application/x-tar"}, stream=True)
        _print_build(response, quiet)


def _print_build(response: Any, quiet: bool) -> None:
    failed = None
    image_id = None
    for msg in _messages(response):
        if "error" in msg or "errorDetail" in msg:
            failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
        elif "aux" in msg:
            image_id = (msg["aux"] or {}).get("ID")
        elif "stream" in msg and not quiet:
            click.echo(msg["stream"], nl=False)
    response.close()
    if failed:
        raise ClientError(failed)
    if quiet and image_id:
        click.echo(image_id)


def _messages(response: Any) -> Iterator[dict[str, Any]]:
    yield from response.iter_json()
