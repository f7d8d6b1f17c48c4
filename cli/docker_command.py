"""The click command class of the container commands (and the ``command`` decorator that uses it)."""

from __future__ import annotations

from typing import Any, Callable

import click


class DockerCommand(click.Command):
    """Usage errors (unknown flag, bad value) exit 125 like docker's, not click's 2."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            exc.exit_code = 125
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 125
            raise


def command(name: str, **kw: Any) -> Callable[[Callable[..., Any]], click.Command]:
    return click.command(name, cls=DockerCommand, **kw)
