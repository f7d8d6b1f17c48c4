"""Docker's client configuration: ``$DOCKER_CONFIG`` and the context store, as the docker CLI
reads and writes them, so a context made by either CLI works with the other.

- ``$DOCKER_CONFIG`` (default ``~/.docker``) ``/config.json``: ``currentContext``;
- ``contexts/meta/<sha256(name)>/meta.json``: ``{"Name", "Metadata": {"Description"},
  "Endpoints": {"docker": {"Host", "SkipTLSVerify"}}}``;
- ``contexts/tls/<sha256(name)>/docker/{ca,cert,key}.pem``: the endpoint's TLS material.

The daemon address is chosen as docker chooses it: ``--host`` > ``--context`` > ``DOCKER_HOST``
(``DOCKYARD_HOST`` first) > ``DOCKER_CONTEXT`` > ``currentContext`` > the default context.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from .client import DEFAULT_HOST, ClientError, TLSConfig

DEFAULT = "default"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def config_dir() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def config_path() -> Path:
    return config_dir() / "config.json"


def read_config() -> dict[str, Any]:
    try:
        value = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ClientError(f"{config_path()}: invalid JSON: {exc}") from None
    return value if isinstance(value, dict) else {}


def write_config(value: dict[str, Any]) -> None:
    """Atomically, the directory 0700 and the file 0600, tab-indented as docker writes it."""
    import tempfile

    d = config_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".config.json.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(value, f, indent="\t")
        os.chmod(tmp, 0o600)
        os.replace(tmp, config_path())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def context_id(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def meta_dir(name: str) -> Path:
    return config_dir() / "contexts" / "meta" / context_id(name)


def tls_dir(name: str) -> Path:
    return config_dir() / "contexts" / "tls" / context_id(name)


def default_host() -> str:
    return os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


@dataclass
class Context:
    name: str
    host: str
    description: str = ""
    skip_tls_verify: bool = False
    tls_files: tuple[str, ...] = ()
    stored: bool = True

    def tls(self) -> TLSConfig | None:
        """The endpoint's TLS, from the store (None: the environment and flags decide)."""
        if not self.stored or not (self.tls_files or self.skip_tls_verify):
            return None
        d = tls_dir(self.name) / "docker"

        def pick(f: str) -> str | None:
            return str(d / f) if f in self.tls_files else None

        return TLSConfig(verify=not self.skip_tls_verify, cacert=pick("ca.pem"), cert=pick("cert.pem"),
                         key=pick("key.pem"))

    def inspect(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"Description": self.description} if self.description else {}
        material = {"docker": list(self.tls_files)} if self.tls_files else {}
        storage = ({"MetadataPath": str(meta_dir(self.name)), "TLSPath": str(tls_dir(self.name))} if self.stored
                   else {"MetadataPath": "<IN MEMORY>", "TLSPath": "<IN MEMORY>"})
        return {"Name": self.name, "Metadata": meta,
                "Endpoints": {"docker": {"Host": self.host, "SkipTLSVerify": self.skip_tls_verify}},
                "TLSMaterial": material, "Storage": storage}


def default_context() -> Context:
    return Context(DEFAULT, default_host(), "Current DOCKER_HOST based configuration", stored=False)


def load(name: str) -> Context:
    if name == DEFAULT:
        return default_context()
    path = meta_dir(name) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(f'context "{name}" does not exist') from None
    except ValueError as exc:
        raise ClientError(f"context {name!r}: {path}: invalid JSON: {exc}") from None
    endpoint = ((meta.get("Endpoints") or {}).get("docker") or {})
    tls = tls_dir(name) / "docker"
    files = tuple(f for f in TLS_FILES if (tls / f).is_file())
    return Context(meta.get("Name") or name, endpoint.get("Host") or DEFAULT_HOST,
                   (meta.get("Metadata") or {}).get("Description") or "", bool(endpoint.get("SkipTLSVerify")), files)


def names() -> list[str]:
    root = config_dir() / "contexts" / "meta"
    out = []
    if root.is_dir():
        for d in root.iterdir():
            try:
                out.append(json.loads((d / "meta.json").read_text())["Name"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return sorted(out)


def current_name(flag: str | None = None) -> str:
    """The context in use, as docker resolves it (without --host)."""
    if flag:
        return flag
    if os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST"):
        return DEFAULT
    return os.environ.get("DOCKER_CONTEXT") or read_config().get("currentContext") or DEFAULT


def resolve(host: str | None, context: str | None) -> tuple[str | None, TLSConfig | None, str]:
    """(host, TLS from the context or None, the context's name) for the Client."""
    if host and context:
        raise ClientError("conflicting options: either specify --host or --context, not both")
    if host:
        return host, None, DEFAULT
    name = current_name(context)
    if name == DEFAULT:
        return None, None, DEFAULT
    ctx = load(name)
    return ctx.host, ctx.tls(), name


# -- commands ---------------------------------------------------------------------------------------


@click.group("context")
def context() -> None:
    """Manage contexts."""


@context.command("ls")
@click.option("--format", "fmt", help="json, or a Go template")
@click.option("-q", "--quiet", is_flag=True, help="Only show context names")
@click.pass_context
def ls(ctx: click.Context, fmt: str | None, quiet: bool) -> None:
    """List contexts."""
    current = current_name((ctx.find_root().params or {}).get("context"))
    contexts = [default_context()] + [load(n) for n in names() if n != DEFAULT]
    if quiet:
        for c in contexts:
            click.echo(c.name)
        return
    rows = [{"Current": c.name == current, "Description": c.description, "DockerEndpoint": c.host, "Error": "",
             "Name": c.name} for c in contexts]
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, separators=(",", ":")))
        return
    if fmt:
        from .output import render_template

        for r in rows:
            click.echo(render_template(fmt, r))
        return
    table = [("NAME", "DESCRIPTION", "DOCKER ENDPOINT", "ERROR")] + [
        (r["Name"] + (" *" if r["Current"] else ""), r["Description"], r["DockerEndpoint"], "") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        click.echo("   ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "   " + row[3])


context.add_command(ls, "list")


@context.command("show")
@click.pass_context
def show(ctx: click.Context) -> None:
    """Print the name of the current context."""
    click.echo(current_name((ctx.find_root().params or {}).get("context")))


@context.command("use")
@click.argument("name")
def use(name: str) -> None:
    """Set the current docker context."""
    load(name)  # it must exist
    config = read_config()
    if name == DEFAULT:
        config.pop("currentContext", None)
    else:
        config["currentContext"] = name
    write_config(config)
    click.echo(name)
    click.echo(f'Current context is now "{name}"', err=True)


def _docker_opts(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ClientError(f"unable to parse docker endpoint: invalid field {part!r}")
        if key not in ("host", "ca", "cert", "key", "skip-tls-verify", "from"):
            raise ClientError(f"unable to create docker endpoint config: unrecognized config key: {key}")
        out[key] = value
    return out


@context.command("create")
@click.argument("name")
@click.option("--description", default="", help="Description of the context")
@click.option("--docker", "docker_spec", default="", help="set the docker endpoint (host=...,ca=...,cert=...,key=...,skip-tls-verify=...)")
@click.option("--from", "from_", help="create context from a named context")
def create(name: str, description: str, docker_spec: str, from_: str | None) -> None:
    """Create a context."""
    if not NAME_RE.match(name):
        raise ClientError(f'context name "{name}" is invalid, names are validated against regexp '
                          f'"{NAME_RE.pattern}"')
    if name == DEFAULT or (meta_dir(name) / "meta.json").exists():
        raise ClientError(f'context "{name}" already exists')
    opts = _docker_opts(docker_spec) if docker_spec else {}
    base = load(opts.get("from") or from_ or current_name()) if (not opts.get("host") or from_) else None
    host = opts.get("host") or (base.host if base else default_host())
    skip = opts.get("skip-tls-verify", "false").lower() in ("1", "true", "t")
    tls_src = {"ca.pem": opts.get("ca"), "cert.pem": opts.get("cert"), "key.pem": opts.get("key")}
    if base and base.stored and not any(tls_src.values()):
        tls_src = {f: str(tls_dir(base.name) / "docker" / f) for f in base.tls_files}
        skip = skip or base.skip_tls_verify
    materials = {f: Path(p).read_bytes() for f, p in tls_src.items() if p}
    meta = {"Name": name, "Metadata": {"Description": description} if description else {},
            "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip}}}
    d = meta_dir(name)
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    (d / "meta.json").write_text(json.dumps(meta, separators=(",", ":")))
    if materials:
        t = tls_dir(name) / "docker"
        t.mkdir(mode=0o700, parents=True, exist_ok=True)
        for f, data in materials.items():
            (t / f).write_bytes(data)
            os.chmod(t / f, 0o600)
    click.echo(name)
    click.echo(f'Successfully created context "{name}"', err=True)


@context.command("update")
@click.argument("name")
@click.option("--description", default=None, help="Description of the context")
@click.option("--docker", "docker_spec", default="", help="set the docker endpoint (host=...,ca=...,cert=...,key=...,skip-tls-verify=...)")
def update(name: str, description: str | None, docker_spec: str) -> None:
    """Update a context."""
    if name == DEFAULT:
        raise ClientError('context "default" cannot be updated')
    path = meta_dir(name) / "meta.json"
    load(name)  # it must exist
    meta = json.loads(path.read_text())
    if description is not None:
        meta["Metadata"] = {**(meta.get("Metadata") or {}), "Description": description}
    if docker_spec:
        opts = _docker_opts(docker_spec)
        endpoint = meta.setdefault("Endpoints", {}).setdefault("docker", {})
        if "host" in opts:
            endpoint["Host"] = opts["host"]
        if "skip-tls-verify" in opts:
            endpoint["SkipTLSVerify"] = opts["skip-tls-verify"].lower() in ("1", "true", "t")
        t = tls_dir(name) / "docker"
        for f, key in (("ca.pem", "ca"), ("cert.pem", "cert"), ("key.pem", "key")):
            if opts.get(key):
                t.mkdir(mode=0o700, parents=True, exist_ok=True)
                (t / f).write_bytes(Path(opts[key]).read_bytes())
                os.chmod(t / f, 0o600)
    path.write_text(json.dumps(meta, separators=(",", ":")))
    click.echo(name)
    click.echo(f'Successfully updated context "{name}"', err=True)


@context.command("rm")
@click.argument("names_", metavar="CONTEXT...", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a context in use")
@click.pass_context
def rm(ctx: click.Context, names_: tuple[str, ...], force: bool) -> None:
    """Remove one or more contexts."""
    import shutil

    failed = False
    current = read_config().get("currentContext")
    for name in names_:
        if name == DEFAULT:
            click.echo(f'context "{name}" cannot be removed', err=True)
            failed = True
            continue
        if not (meta_dir(name) / "meta.json").exists():
            click.echo(f'context "{name}" does not exist', err=True)
            failed = True
            continue
        if name == current:
            if not force:
                click.echo(f'context "{name}" is in use, set -f flag to force remove', err=True)
                failed = True
                continue
            config = read_config()
            config.pop("currentContext", None)
            write_config(config)
        shutil.rmtree(meta_dir(name), ignore_errors=True)
        shutil.rmtree(tls_dir(name), ignore_errors=True)
        click.echo(name)
    if failed:
        ctx.exit(1)


context.add_command(rm, "remove")


@context.command("inspect")
@click.argument("names_", metavar="[CONTEXT]...", nargs=-1)
@click.option("-f", "--format", "fmt", help="a Go template")
@click.pass_context
def inspect(ctx: click.Context, names_: tuple[str, ...], fmt: str | None) -> None:
    """Display detailed information on one or more contexts (the current one by default)."""
    wanted = names_ or (current_name((ctx.find_root().params or {}).get("context")),)
    items = [load(n).inspect() for n in wanted]
    if fmt and fmt != "json":
        from .output import render_template

        for i in items:
            click.echo(render_template(fmt, i))
        return
    click.echo(json.dumps(items, indent=4))


def register(cli: click.Group) -> None:
    cli.add_command(context)
