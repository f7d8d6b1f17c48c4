"""Rendering: tables for people, JSON for scripts (``--format json``), Go-template-like
``--format '{{.Field}}'`` for docker habits."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, Sequence

import click

FORMAT_HELP = "Output: table (default), json, or a template like '{{.ID}} {{.Name}}'"


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


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


def render_template(template: str, row: Any) -> str:
    """``template`` run by Go's text/template rules (:mod:`.gotemplate`), with ``\\t``/``\\n``
    replaced as docker does. Raises :class:`.gotemplate.TemplateError` with Go's message."""
    from .gotemplate import Template

    return Template(template.replace("\\t", "\t").replace("\\n", "\n")).execute(row)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain, docker-like table: columns padded with three spaces, no borders."""
    rows = [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [len(c) for c in columns]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r)]
    for r in [list(columns), *rows]:
        line = "   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
        click.echo(line)


def output(fmt: str | None, items: list[dict[str, Any]], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    if fmt == "json":
        emit_json(items)
    elif fmt and fmt != "table":
        from .gotemplate import TemplateError

        try:
            for item in items:
                click.echo(render_template(fmt, item))
        except TemplateError as exc:
            click.echo(f"template parsing error: {exc}", err=True)
            raise SystemExit(1) from None
    else:
        table(columns, rows)


def human_duration(seconds: float) -> str:
    """The daemon's ``2 hours`` style; imported here, not at the top, because importing the
    ``dockyard`` package (drivers, pluggy) costs every command's start-up."""
    from dockyard.util import human_duration as daemons

    return daemons(seconds)


def human_size(n: float) -> str:
    """Docker's decimal sizes: 1.23MB."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}TB"


def prune_report(kind: str, deleted: list[str], space_reclaimed: int) -> None:
    """What docker prints after a container or volume prune: ``Deleted <kind>:`` and one id
    or name a line (when any), then the space reclaimed."""
    if deleted:
        click.echo(f"Deleted {kind}:")
        for item in deleted:
            click.echo(item)
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(space_reclaimed)}")


def err(message: str) -> None:
    click.echo(message, err=True)


