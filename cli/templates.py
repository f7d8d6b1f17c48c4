"""docker's ``--format`` for every list, inspect and version command: ``table`` (default
template), ``table TEMPLATE`` (header from docker's header names, tabwriter columns), ``json``
(one object a line, docker's field names) or a bare Go template, run by :mod:`.gotemplate`.

List rows are :class:`~.gotemplate.Struct` objects named as docker's formatter contexts
(``*formatter.ContainerContext``...): a field docker does not have is an execution error, as in
docker. Errors go to stderr with docker's wording and exit 1."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any, Callable, NoReturn

import click

from .gotemplate import HEADER_FUNCS, MISSING, Struct, Template, TemplateError, docker_format, format_rows
from .output import render_template as render, table  # noqa: F401  (render: kept for callers)


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def labels_text(labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))


def row(type_name: str, fields: dict[str, Any], labels: dict[str, str] | None = None) -> Struct:
    """A docker formatter context: its fields and, when it has labels, the ``.Label "k"`` method."""
    methods: dict[str, Callable[..., Any]] = {}
    if labels is not None:
        methods["Label"] = lambda name: (labels or {}).get(name, "")
    return Struct(type_name, fields, methods)


def header_struct(headers: dict[str, str]) -> Struct:
    """What docker's header template runs on: header names; ``.Label "k"`` prints ``k``."""
    return Struct("formatter.SubHeaderContext", dict(headers), {"Label": lambda name: name})


def go_time(value: str | float | int | None) -> str:
    """Go's time.Time.String() in UTC: ``2026-12-06 09:03:12.472838059 +0000 UTC``."""
    if value is None or value == "":
        return "0001-01-01 00:00:00 +0000 UTC"
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
    text = str(value)
    frac = ""
    base = text
    if "." in text:
        base, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        rest_tz = rest[len(digits):]
        frac = digits.rstrip("0")
        text = base + rest_tz
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return str(value)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


PARSING = ("template parsing error: ", "template parsing error: ")


def render_rows(fmt: str | None, rows: list[Any], headers: dict[str, str], default: str,
                errors: tuple[str, str] = PARSING) -> str:
    """A list command's output text, as docker's formatter prints it. ``errors``: the prefixes
    docker's command puts before a parse and an execution error (ps: ``failed to parse template: ``)."""
    if fmt == "json":
        from .gotemplate import go_json

        return "".join(go_json(r) + "\n" for r in rows)
    is_table, src = docker_format(fmt or "table", default)
    try:
        t = Template(src)
    except TemplateError as exc:
        fail(f"{errors[0]}{exc}")
    try:
        body = "".join(t.execute(r) + "\n" for r in rows)
        if is_table:
            from .gotemplate import tabwriter

            body = tabwriter(Template(src, HEADER_FUNCS).execute(header_struct(headers)) + "\n" + body)
    except TemplateError as exc:
        fail(f"{errors[1]}{exc}")
    return body


def print_rows(fmt: str | None, rows: list[Any], headers: dict[str, str], default: str,
               errors: tuple[str, str] = PARSING) -> None:
    click.echo(render_rows(fmt, rows, headers, default, errors), nl=False)


def ps_preprocess(fmt: str, empty_row: Struct) -> bool:
    """docker ps runs the --format template once on an empty container (to see whether ``.Size``
    is used, then asks the daemon for sizes): its parse or execution error is the command's error.
    Returns whether the template uses ``.Size``."""
    import re

    try:
        Template(fmt).execute(empty_row)
    except TemplateError as exc:
        prefix = "failed to execute template: " if "executing" in str(exc) else "failed to parse template: "
        fail(f"{prefix}{exc}")
    return re.search(r"\.Size\b", fmt) is not None


def print_inspect(fmt: str | None, results: list[Any], default_json: Callable[[list[Any]], None] | None = None,
                  root_type: str | None = None) -> None:
    """docker inspect: an indented JSON array by default, ``--format json`` one compact array,
    else the template once per object (on the raw JSON: a missing key is an error there)."""
    import json

    if not fmt:
        if default_json:
            default_json(results)
        else:
            click.echo(json.dumps(results, indent=4, ensure_ascii=False) if results else "[]")
        return
    if fmt == "json":
        from .gotemplate import go_json

        click.echo(go_json(results, sort_maps=False))
        return
    src = fmt.replace("\\t", "\t").replace("\\n", "\n")
    try:
        t = Template(src)
    except TemplateError as exc:
        fail(f"template parsing error: {exc}", 64)
        return
    for r in results:
        try:
            try:  # docker: the Go struct first, then (on a field error) the raw JSON object
                click.echo(t.execute(r, missing_key_error=True, root_type=root_type, go_names=True))
            except TemplateError:
                click.echo(t.execute(r, missing_key_error=True, root_type=root_type))
        except TemplateError as exc:
            click.echo(getattr(exc, "partial", ""))  # docker ends the object's line before the error
            fail(f"template parsing error: {exc}")


def print_one(fmt: str, data: Any, name: str = "") -> None:
    """A single object's template (``version``, ``info``): Go's errors name the template."""
    src = fmt.replace("\\t", "\t").replace("\\n", "\n")
    try:
        t = Template(src, name=name)
    except TemplateError as exc:
        fail(f"template parsing error: {exc}", 64)
        return
    try:
        click.echo(t.execute(data))
    except TemplateError as exc:
        click.echo(getattr(exc, "partial", ""))
        fail(str(exc))


__all__ = ["MISSING", "Struct", "ellipsis", "format_rows", "print_rows", "print_inspect", "print_one", "row", "go_time"]
