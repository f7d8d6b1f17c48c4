"""Files in and out of containers: ``cp``, ``export``, ``commit``."""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

import click

from .client import APIError, Client, ClientError, q

if TYPE_CHECKING:
    import tarfile


class CopyError(ClientError):
    pass


def split_target(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path (``./a:b`` too) -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


def path_stat(client: Client, container: str, path: str) -> dict[str, Any] | None:
    """The daemon's ``X-Docker-Container-Path-Stat`` for a path, or None when it does not exist."""
    try:
        r = client.request("HEAD", f"/containers/{q(container)}/archive", params={"path": path})
    except APIError as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(base64.b64decode(r.headers.get("X-Docker-Container-Path-Stat", "e30=")))


def _safe_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Refuse what could write outside the destination: absolute names, ``..``, devices, and
    hard links to outside; symlinks are kept as links (extraction never follows them)."""
    for m in tar:
        parts = Path(m.name).parts
        if m.name.startswith("/") or ".." in parts:
            raise CopyError(f"refusing archive member {m.name!r}: it would escape the destination")
        if m.isdev():
            raise CopyError(f"refusing device node {m.name!r}")
        if m.islnk() and (m.linkname.startswith("/") or ".." in Path(m.linkname).parts):
            raise CopyError(f"refusing hard link {m.name!r} -> {m.linkname!r}")
        yield m


def copy_from(client: Client, container: str, src: str, dest: str) -> None:
    response = client.request("GET", f"/containers/{q(container)}/archive", params={"path": src}, stream=True)
    try:
        if dest == "-":
            for chunk in response.iter_chunks():
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        target = Path(dest)
        into_dir = target.is_dir()
        parent = target if into_dir else target.parent
        if not parent.is_dir():
            raise CopyError(f"no such directory: {parent}")
        import shutil  # here, not at the top, like every import only one command needs: start-up
        import tarfile
        import tempfile

        with tempfile.TemporaryDirectory(dir=parent, prefix=".dockyard-cp-") as tmp:
            with tarfile.open(fileobj=response.raw, mode="r|") as tar:
                for member in _safe_members(tar):
                    tar.extract(member, tmp, set_attrs=not member.issym())
            (top,) = os.listdir(tmp) or [None]  # the archive holds one top-level entry
            if top is None:
                raise CopyError(f"{container}:{src} is empty")
            final = target / top if into_dir else target
            if final.is_dir() and not final.is_symlink() and (Path(tmp) / top).is_dir():
                shutil.copytree(Path(tmp) / top, final, symlinks=True, dirs_exist_ok=True)
            else:
                os.replace(Path(tmp) / top, final)
    finally:
        response.close()


def _tar_stream(src: Path, arcname: str) -> Iterator[bytes]:
    """A tar of ``src`` named ``arcname``, produced in chunks while it is sent."""
    import tarfile

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a small child writes the tar; the CLI process stays single-threaded
        os.close(read_fd)
        try:
            with os.fdopen(write_fd, "wb") as out, tarfile.open(fileobj=out, mode="w|") as tar:
                tar.add(str(src), arcname=arcname)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        while chunk := f.read(1 << 16):
            yield chunk
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise CopyError(f"could not read {src}")


def copy_to(client: Client, src: str, container: str, dest: str) -> None:
    source = Path(src)
    if not source.exists() and not source.is_symlink():
        raise CopyError(f'lstat {src}: no such file or directory')
    stat = path_stat(client, container, dest)
    if stat is not None and stat.get("mode", 0) & (1 << 31):  # an existing directory: copy into it
        directory, name = dest, source.name
    else:
        directory, name = os.path.dirname(dest.rstrip("/")) or "/", os.path.basename(dest.rstrip("/"))
    client.request("PUT", f"/containers/{q(container)}/archive", params={"path": directory},
                   data=_tar_stream(source, name), headers={"Content-Type": "application/x-tar"})


@click.command("cp")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp(client: Client, src: str, dest: str) -> None:
    """Copy files between a container and the local filesystem.

    dockyard cp CONTAINER:SRC_PATH DEST_PATH|-    /    dockyard cp SRC_PATH CONTAINER:DEST_PATH
    """
    (src_c, src_p), (dest_c, dest_p) = split_target(src), split_target(dest)
    if bool(src_c) == bool(dest_c):
        raise click.UsageError("copying between containers or between local paths is not supported: "
                               "one side must be CONTAINER:PATH")
    if src_c:
        copy_from(client, src_c, src_p, dest_p)
    else:
        copy_to(client, src_p, dest_c, dest_p)  # type: ignore[arg-type]


@click.command("export")
@click.argument("container")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout")
@click.pass_obj
def export(client: Client, container: str, output: str | None) -> None:
    """Export a container's filesystem as a tar archive."""
    if output is None and sys.stdout.isatty():
        raise click.UsageError("cowardly refusing to write a tar to a terminal: use -o or redirect stdout")
    response = client.request("GET", f"/containers/{q(container)}/export", stream=True)
    out: BinaryIO = open(output, "wb") if output else sys.stdout.buffer
    try:
        for chunk in response.iter_chunks():
            out.write(chunk)
    finally:
        response.close()
        if output:
            out.close()


@click.command("commit")
@click.argument("container")
@click.argument("repository", required=False)
@click.option("-a", "--author", help='Author (e.g. "Jane <jane@example.com>")')
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction to the image")
@click.option("-m", "--message", help="Commit message")
@click.option("-p/--no-pause", "--pause/--no-pause", default=True, help="Pause the container while committing")
@click.pass_obj
def commit(client: Client, container: str, repository: str | None, author: str | None,
           changes: tuple[str, ...], message: str | None, pause: bool) -> None:
    """Create a new image from a container's changes."""
    repo, tag = None, None
    if repository:
        repo, _, tag = repository.rpartition(":") if ":" in repository.rsplit("/", 1)[-1] else (repository, "", "")
    result = client.post("/commit", params={
        "container": container, "repo": repo, "tag": tag or None, "author": author, "comment": message,
        "pause": pause, "changes": "\n".join(changes) or None,
    }, body={})
    click.echo(result["Id"])


COMMANDS = (cp, export, commit)


def register(cli: click.Group) -> None:
    for cmd in COMMANDS:
        cli.add_command(cmd)
    group = cli.commands.get("container")
    if isinstance(group, click.Group):
        for cmd in COMMANDS:
            group.add_command(cmd)
