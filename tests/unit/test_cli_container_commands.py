"""The container commands after their split into modules: every one registered at the top
level and under ``container`` with docker's aliases, and the helpers that now serve two callers."""

import click
from click.testing import CliRunner

from dockyard_cli import containers
from dockyard_cli.docker_command import DockerCommand
from dockyard_cli.output import prune_report
from dockyard_cli.stats import bytes_size, human_size3

TOP_LEVEL = {"attach", "create", "diff", "kill", "logs", "pause", "ps", "rename", "restart", "rm", "run", "start",
             "stats", "stop", "top", "unpause", "update", "wait"}


def test_registration():
    cli = click.Group("dockyard")
    containers.register(cli)
    assert set(cli.commands) == TOP_LEVEL | {"container"}
    group = cli.commands["container"]
    assert set(group.commands) == TOP_LEVEL | {"prune", "inspect", "ls", "list", "remove"}
    assert group.commands["ls"] is group.commands["list"] is cli.commands["ps"]
    assert group.commands["remove"] is cli.commands["rm"]
    assert all(isinstance(c, DockerCommand) for c in group.commands.values())


def test_usage_errors_exit_125():
    r = CliRunner().invoke(containers.container, ["stop", "--no-such-flag", "c1"])
    assert r.exit_code == 125


def test_go_units_sizes():
    assert [bytes_size(n) for n in (0, 1023, 1024, 1536, 5 * 2**20, 2**60)] == \
        ["0B", "1023B", "1KiB", "1.5KiB", "5MiB", "1024PiB"]
    assert [human_size3(n) for n in (0, 999, 1000, 1234, 1.5e6, 2e15)] == ["0B", "999B", "1kB", "1.23kB", "1.5MB", "2PB"]


def test_prune_report(capsys):
    prune_report("Containers", ["a1", "b2"], 2_500_000)
    prune_report("Volumes", [], 0)
    assert capsys.readouterr().out == "Deleted Containers:\na1\nb2\n\nTotal reclaimed space: 2.5MB\nTotal reclaimed space: 0B\n"


def test_one_go_template_renderer_for_every_format_option():
    """images, volumes, system and ps/stats share one renderer that prints values as Go's
    text/template does (docker's --format), e.g. for ``dockyard images --format``."""
    from dockyard_cli.output import render_template
    from dockyard_cli.templates import render

    assert render is render_template
    row = {"Name": "v", "Dangling": True, "Labels": {"b": "2", "a": "1"}, "Tags": ["x", "y"], "Size": None}
    assert render_template("{{.Name}}\\t{{.Dangling}}", row) == "v\ttrue"
    assert render_template("{{.Labels}} {{.Tags}}", row) == "map[a:1 b:2] [x y]"
    assert render_template("{{json .Labels}}", row) == '{"a":"1","b":"2"}'  # Go sorts a map's keys
    # Go's text/template on a map: a null or missing key prints <no value> (docker prints it too)
    assert render_template("{{.Size}}|{{.Nope.Deeper}}", row) == "<no value>|<no value>"
