"""Image commands: images / image ls|inspect|history|tag|rm|prune|load|save|import, rmi, tag,
load, save, import, and ``system df``."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Any, BinaryIO, Iterator

import click

from .client import APIError, Client, ClientError, q
from .options import filter_dict
from .output import FORMAT_HELP, emit_json, human_duration, human_size, output, render_template, table
from .templates import print_inspect, print_rows


def register(cli: click.Group) -> None:
    for command in (images, rmi, tag, load, save, import_):
        cli.add_command(command)
    cli.add_command(image)
    system = cli.commands.get("system")
    if not isinstance(system, click.Group):
        system = click.Group("system", help="Manage Dockyard (system df, ...).")
        cli.add_command(system)
    system.add_command(df)


def short(image_id: str, no_trunc: bool = False) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


def ago(ts: float) -> str:
    return human_duration(time.time() - ts) + " ago" if ts else "N/A"


def split_repo_tag(ref: str) -> tuple[str, str]:
    if "@" in ref:
        return ref.split("@", 1)[0], "<none>"
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return repo, tag


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar on stderr when it is a terminal; otherwise a no-op updater."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def read_chunks(f: BinaryIO, advance: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := f.read(size):
        advance(len(chunk))
        yield chunk


# -- list, inspect, history -------------------------------------------------------------------


@click.command("images")
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images)")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter: dangling=true, label=k[=v], reference=, before=, since=")
@click.option("--format", "fmt", help=FORMAT_HELP)
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.pass_obj
def images(client: Client, repository: str | None, all_: bool, digests: bool, filters: tuple[str, ...],
           fmt: str | None, no_trunc: bool, quiet: bool) -> None:
    """List images."""
    f = filter_dict(filters)
    if repository:
        f.setdefault("reference", []).append(repository)
    items: list[dict[str, Any]] = client.get("/images/json", params={"all": all_ or None, "filters": f or None})
    if quiet:
        seen = []
        for i in items:
            if short(i["Id"], no_trunc) not in seen:
                seen.append(short(i["Id"], no_trunc))
        for s in seen:
            click.echo(s)
        return
    rows = [row for i in items for row in image_rows(i, digests, no_trunc)]
    default = "{{.Repository}}\t{{.Tag}}" + ("\t{{.Digest}}" if digests else "") + \
        "\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    print_rows(fmt, rows, IMAGE_HEADERS, default)


IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
                 "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}


def image_rows(i: dict[str, Any], digests: bool, no_trunc: bool = False) -> list[Any]:
    """docker's rows for one image (``formatter.imageFormat``): one per repository and tag
    (and per digest with ``--digests``), then one per repository known only by digest (tag
    ``<none>``); a dangling image is one ``<none>`` row."""
    tags = [t for t in i.get("RepoTags") or [] if t != "<none>:<none>"]
    refs = [d for d in i.get("RepoDigests") or [] if d != "<none>@<none>"]
    if not tags and not refs:
        return [image_row(i, "<none>", "<none>", "<none>", no_trunc)]
    by_repo: dict[str, list[str]] = {}
    for ref in tags:
        repo, tag = split_repo_tag(ref)
        by_repo.setdefault(repo, []).append(tag)
    digests_of: dict[str, list[str]] = {}
    for ref in refs:
        repo, _, digest = ref.partition("@")
        digests_of.setdefault(repo, []).append(digest)
    rows = []
    for repo, repo_tags in by_repo.items():
        repo_digests = digests_of.pop(repo, []) if digests else (digests_of.pop(repo, None) and [])
        for tag in repo_tags:
            rows += [image_row(i, repo, tag, d, no_trunc) for d in repo_digests or ["<none>"]]
    for repo, repo_digests in digests_of.items():  # known only by digest
        rows += [image_row(i, repo, "<none>", d, no_trunc) for d in (repo_digests if digests else [""])]
    return rows


def image_row(i: dict[str, Any], repo: str, tag: str, digest: str, no_trunc: bool = False) -> Any:
    """docker's ``*formatter.ImageContext`` for ``images --format``."""
    from .templates import go_time, row

    def na(key: str, size: bool = True) -> str:
        v = i.get(key)
        if v is None or v == -1:
            return "N/A"
        return human_size(v) if size else str(v)

    return row("*formatter.imageContext", {
        "Containers": na("Containers", size=False),
        "CreatedAt": go_time(i.get("Created") or 0),
        "CreatedSince": ago(i.get("Created") or 0),
        "Digest": digest,
        "ID": short(i["Id"], no_trunc),
        "Repository": repo,
        "SharedSize": na("SharedSize"),
        "Size": human_size(i.get("Size") or 0),
        "Tag": tag,
        "UniqueSize": "N/A" if i.get("SharedSize") in (None, -1) else human_size((i.get("Size") or 0) - i["SharedSize"]),
        "VirtualSize": human_size4(i.get("VirtualSize", i.get("Size")) or 0),
    })


def human_size4(n: float) -> str:
    """go-units HumanSize: four significant digits (docker's VirtualSize)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return f"{n}PB"


@click.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Template like '{{.Id}}', or json")
@click.pass_obj
def inspect(client: Client, names: tuple[str, ...], fmt: str | None) -> None:
    """Show detailed information on one or more images."""
    results, failed = [], False
    for name in names:
        try:
            results.append(client.get(f"/images/{q(name)}/json"))
        except APIError as exc:
            click.echo(f"Error response from daemon: {exc.message}", err=True)
            failed = True
    print_inspect(fmt, results)
    if failed:
        sys.exit(1)


@click.command("history")
@click.argument("name")
@click.option("-H", "--human/--no-human", default=True, help="Sizes and dates in human-readable form")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "fmt", help=FORMAT_HELP)
@click.pass_obj
def history(client: Client, name: str, human: bool, no_trunc: bool, quiet: bool, fmt: str | None) -> None:
    """Show the history of an image."""
    items: list[dict[str, Any]] = client.get(f"/images/{q(name)}/history")
    if quiet:
        for h in items:
            click.echo(short(h["Id"], no_trunc) if h["Id"] != "<missing>" else "<missing>")
        return
    from dockyard.timestamps import rfc3339_seconds

    from .templates import row

    rows = []
    for h in items:
        created_by = (h.get("CreatedBy") or "").replace("\t", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created_at = rfc3339_seconds(int(h.get("Created") or 0) * 1_000_000_000)
        rows.append(row("*image.historyContext", {
            "Comment": h.get("Comment") or "",
            "CreatedAt": created_at,
            "CreatedBy": created_by,
            "CreatedSince": ago(h.get("Created") or 0) if human else created_at,
            "ID": short(h["Id"], no_trunc) if h["Id"] != "<missing>" else "<missing>",
            "Size": human_size(h.get("Size") or 0) if human else str(h.get("Size") or 0),
        }))
    print_rows(fmt, rows, {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
                           "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"},
               "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}")


# -- tag, rm, prune ---------------------------------------------------------------------------


@click.command("tag")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("target")
@click.pass_obj
def tag(client: Client, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    repo, t = split_repo_tag(target)
    client.request("POST", f"/images/{q(source)}/tag", params={"repo": repo, "tag": t})


@click.command("rmi")
@click.argument("names", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.pass_obj
def rmi(client: Client, names: tuple[str, ...], force: bool, no_prune: bool) -> None:
    """Remove one or more images."""
    failed = False
    for name in names:
        try:
            records = client.delete(f"/images/{q(name)}", params={"force": force or None,
                                                                  "noprune": no_prune or None})
        except APIError as exc:
            click.echo(f"Error response from daemon: {exc.message}", err=True)
            failed = True
            continue
        for r in records or []:
            for key in ("Untagged", "Deleted"):
                if key in r:
                    click.echo(f"{key}: {r[key]}")
    if failed:
        sys.exit(1)


@click.command("prune")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("--filter", "filters", multiple=True, help="Filter: until=<time>, label=k[=v]")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.pass_obj
def prune(client: Client, all_: bool, filters: tuple[str, ...], force: bool) -> None:
    """Remove unused images."""
    if not force:
        what = "all images without at least one container associated to them" if all_ else "all dangling images"
        if not click.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            return
    f = filter_dict(filters)
    if all_:
        f["dangling"] = ["false"]
    result = client.post("/images/prune", params={"filters": f or None})
    deleted = result.get("ImagesDeleted") or []
    if deleted:
        click.echo("Deleted Images:")
        for r in deleted:
            for key in ("Untagged", "Deleted"):
                if key in r:
                    click.echo(f"{key.lower()}: {r[key]}")
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}")


# -- load, save, import -----------------------------------------------------------------------


def _print_stream(response: Any) -> None:
    failed = None
    for msg in response.iter_json():
        if "error" in msg or "errorDetail" in msg:
            failed = (msg.get("errorDetail") or {}).get("message") or msg.get("error")
        elif "stream" in msg:
            click.echo(msg["stream"], nl=False)
        elif "status" in msg and "progressDetail" not in msg:
            click.echo(msg["status"])
    response.close()
    if failed:
        raise ClientError(failed)


@click.command("load")
@click.option("-i", "--input", "input_", type=click.Path(exists=True, dir_okay=False, allow_dash=True),
              help="Read from a tar archive file (default: stdin)")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.pass_obj
def load(client: Client, input_: str | None, quiet: bool) -> None:
    """Load an image from a tar archive (docker save format or OCI layout, maybe compressed)."""
    if input_ in (None, "-"):
        if sys.stdin.isatty():
            raise ClientError("requested load from stdin, but stdin is empty; use -i FILE or a redirect")
        f: BinaryIO = sys.stdin.buffer
        total = None
    else:
        f = open(input_, "rb")
        total = os.fstat(f.fileno()).st_size
    try:
        with progress_bar("Loading", total) as advance:
            response = client.request("POST", "/images/load", params={"quiet": "1"},
                                      data=read_chunks(f, advance),
                                      headers={"Content-Type": "application/x-tar"}, stream=True)
            if quiet:
                for msg in response.iter_json():
                    if "error" in msg:
                        raise ClientError(msg["error"])
                response.close()
            else:
                _print_stream(response)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


@click.command("save")
@click.argument("names", nargs=-1, required=True)
@click.option("-o", "--output", "output_", type=click.Path(dir_okay=False), help="Write to a file (default: stdout)")
@click.pass_obj
def save(client: Client, names: tuple[str, ...], output_: str | None) -> None:
    """Save one or more images to a tar archive (docker save + OCI layout)."""
    if output_ is None and sys.stdout.isatty():
        raise ClientError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    query = "&".join(f"names={q(n)}" for n in names)
    response = client.request("GET", f"/images/get?{query}", stream=True)
    tmp = None
    if output_ is not None:
        tmp = f"{output_}.tmp-{os.getpid()}"
        out: BinaryIO = open(tmp, "wb")
    else:
        out = sys.stdout.buffer
    try:
        with progress_bar("Saving", None) as advance:
            for chunk in response.iter_chunks(1 << 20):
                out.write(chunk)
                advance(len(chunk))
        response.close()
        out.flush()
        if tmp is not None:
            out.close()
            os.replace(tmp, output_)  # type: ignore[arg-type]
            tmp = None
    finally:
        if tmp is not None:
            out.close()
            os.unlink(tmp)


@click.command("import")
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("reference", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction (CMD, ENV, ...)")
@click.option("-m", "--message", default="", help="Commit message for the imported image")
@click.option("--platform", help="Set the platform (linux/amd64)")
@click.pass_obj
def import_(client: Client, source: str, reference: str | None, changes: tuple[str, ...], message: str,
            platform: str | None) -> None:
    """Import a root filesystem tarball (FILE or - for stdin) as an image."""
    from urllib.parse import urlencode

    params: list[tuple[str, str]] = [("fromSrc", "-")]
    if reference:
        repo, t = split_repo_tag(reference)
        params += [("repo", repo), ("tag", t)]
    params += [(k, v) for k, v in (("message", message), ("platform", platform)) if v]
    params += [("changes", c) for c in changes]
    query = urlencode(params)
    if source == "-":
        f: BinaryIO = sys.stdin.buffer
        total = None
    elif "://" in source:
        raise ClientError("importing from a URL is not supported: download the file first")
    else:
        f = open(source, "rb")
        total = os.fstat(f.fileno()).st_size
    try:
        with progress_bar("Importing", total) as advance:
            response = client.request("POST", f"/images/create?{query}", data=read_chunks(f, advance),
                                      headers={"Content-Type": "application/x-tar"}, stream=True)
            _print_stream(response)
    finally:
        if f is not sys.stdin.buffer:
            f.close()


# -- the image group and system df -----------------------------------------------------------


@click.group("image")
def image() -> None:
    """Manage images."""


for _cmd, _name in ((images, "ls"), (inspect, "inspect"), (history, "history"), (tag, "tag"), (rmi, "rm"),
                    (prune, "prune"), (load, "load"), (save, "save"), (import_, "import")):
    image.add_command(_cmd, _name)
image.add_command(images, "list")


@click.command("df")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.option("--format", "fmt", help=FORMAT_HELP)
@click.pass_obj
def df(client: Client, verbose: bool, fmt: str | None) -> None:
    """Show disk usage."""
    d = client.get("/system/df")
    if fmt == "json":
        return emit_json(d)
    imgs = d.get("Images") or []
    active = [i for i in imgs if (i.get("Containers") or 0) > 0]
    total = d.get("LayersSize") or 0
    reclaimable = total - sum(i.get("Size", 0) - max(i.get("SharedSize", 0), 0) for i in active)
    containers = d.get("Containers") or []
    volumes = d.get("Volumes") or []
    cache = d.get("BuildCache") or []
    pct = f" ({100 * reclaimable // total}%)" if total else ""
    rows = [
        ("Images", len(imgs), len(active), human_size(total), human_size(max(reclaimable, 0)) + pct),
        ("Containers", len(containers), sum(1 for c in containers if c.get("State") == "running"),
         human_size(sum(c.get("SizeRw") or 0 for c in containers)), human_size(0)),
        ("Local Volumes", len(volumes), 0,
         human_size(sum((v.get("UsageData") or {}).get("Size", 0) for v in volumes)), human_size(0)),
        ("Build Cache", len(cache), 0, human_size(0), human_size(0)),
    ]
    if fmt:
        for r in rows:
            click.echo(render_template(fmt, dict(zip(("Type", "TotalCount", "Active", "Size", "Reclaimable"), r))))
        return
    table(("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"), rows)
    if verbose:
        click.echo("\nImages space usage:\n")
        irows = []
        for i in imgs:
            for t in i.get("RepoTags") or ["<none>:<none>"]:
                repo, tg = split_repo_tag(t) if t != "<none>:<none>" else ("<none>", "<none>")
                shared = max(i.get("SharedSize", 0), 0)
                irows.append((repo, tg, short(i["Id"]), ago(i.get("Created") or 0), human_size(i.get("Size", 0)),
                              human_size(shared), human_size(i.get("Size", 0) - shared), i.get("Containers", 0)))
        table(("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"), irows)
