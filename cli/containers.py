"""Container commands: run, create, start, stop, kill, restart, rm, ps, logs, inspect, wait,
rename, pause, unpause, top, stats, diff, attach, update, and the ``container`` group
(``container ls|list|ps``, ``container rm|remove``, ``container prune``, ...), as docker has
them: the same flags, output and exit codes (125 for a usage or daemon error in run/create,
126/127 when the container's command cannot start, else the container's own exit code).

The commands live in modules named for what they do; this one only registers them:

* ``run``: run, create; ``create_flags``: their flags and the create body
* ``lifecycle``: start, attach, stop, restart, kill, rm, pause, unpause, wait, rename, update, prune
* ``sessions``: what run, start -a and attach share (attach stream, signal proxy, exit codes)
* ``ps``, ``logs``, ``stats``, ``inspection`` (container inspect, top, diff)
* ``templates``: docker's ``--format``; ``docker_command``: usage errors exit 125
"""

from __future__ import annotations

import click

from .create_flags import create_body, parse_env, parse_size
from .inspection import container_inspect, diff, top
from .lifecycle import attach, kill, pause, prune, rename, restart, rm, start, stop, unpause, update, wait
from .logs import logs, to_unix
from .ps import ps, ps_row
from .run import create, run
from .sessions import start_exit_code
from .stats import cpu_percent, memory_used, stats, stats_row
from .templates import render

# the helpers tests and other modules have imported from here
__all__ = ["container", "cpu_percent", "create_body", "memory_used", "parse_env", "parse_size", "ps_row", "register",
           "render", "start_exit_code", "stats_row", "to_unix"]

TOP_LEVEL = (run, create, start, stop, kill, restart, rm, ps, logs, wait, rename, pause, unpause, top,
             stats, diff, attach, update)


@click.group("container")
def container() -> None:
    """Manage containers."""


for _cmd in TOP_LEVEL + (prune,):
    container.add_command(_cmd)
container.add_command(container_inspect, "inspect")
container.add_command(ps, "ls")
container.add_command(ps, "list")
container.add_command(rm, "remove")


def register(cli: click.Group) -> None:
    for cmd in TOP_LEVEL:
        cli.add_command(cmd)
    cli.add_command(container)
