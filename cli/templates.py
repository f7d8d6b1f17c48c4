"""docker's ``--format`` for ps and stats: the ``table``/``json``/template choice (the rendering
is :func:`.output.render_template`)."""

from __future__ import annotations

import json
from typing import Any

import click

from .output import render_template as render, table


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def print_rows(fmt: str | None, rows: list[dict[str, Any]], headers: dict[str, str], default: str) -> None:
    """docker's formatting: ``table`` (default template), ``table TEMPLATE``, ``json`` (one
    object a line) or a bare template (no header)."""
    if fmt == "json":
        for r in rows:
            click.echo(json.dumps(r, separators=(",", ":"), ensure_ascii=False))
        return
    if fmt and not fmt.startswith("table"):
        for r in rows:
            click.echo(render(fmt, r))
        return
    template = (fmt[5:].strip() if fmt else "") or default
    columns = render(template, headers).split("\t")
    table(columns, [render(template, r).split("\t") for r in rows])
