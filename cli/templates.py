"""docker's ``--format``: Go-template-like rendering (``{{.A.B}}``, ``{{json .A}}``) with Go's
printing of values, and the ``table``/``json``/template choice of ``ps`` and ``stats``."""

from __future__ import annotations

import json
import re
from typing import Any

import click

from .output import table


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


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


def render(template: str, row: Any) -> str:
    """``{{.A.B}}``, ``{{json .A}}``, ``{{.}}``, with Go's printing of values."""

    def lookup(path: str) -> Any:
        value = row
        for part in path.strip().strip(".").split("."):
            if part:
                value = value.get(part) if isinstance(value, dict) else None
        return value

    def repl(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(lookup(expr[5:]), separators=(",", ":"))
        value = lookup(expr)
        return "" if value is None and expr != "." else go_str(value)

    return re.sub(r"\{\{-?(.*?)-?\}\}", repl, template).replace("\\t", "\t").replace("\\n", "\n")


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
