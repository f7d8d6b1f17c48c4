"""CLI start-up: a built-in command does not import what it does not use (the daemon package,
the hook modules, tarfile, rich, ...); plugin commands still appear in ``--help`` and run.

Each check runs in a fresh interpreter, because this test process has imported everything."""

import json
import subprocess
import sys

# Modules a built-in command such as `dockyard ps` must not import before its request.
HEAVY = ("dockyard", "dockyard.plugins", "pluggy", "stevedore", "importlib.metadata", "tomllib",
         "dockyard_auth_tls", "tarfile", "shutil", "tempfile", "secrets", "rich", "aiohttp", "cryptography")

RESOLVE = """
import json, sys
import click
from dockyard_cli.main import cli, load_commands

load_commands()
ctx = click.Context(cli, info_name="dockyard")
found = {{}}
for name in {names!r}:
    cmd = cli.get_command(ctx, name)
    found[name] = cmd is not None and cmd.name
print(json.dumps({{"found": found, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""


def resolve(*names: str) -> dict:
    r = subprocess.run([sys.executable, "-c", RESOLVE.format(names=names, heavy=HEAVY)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_builtin_commands_import_nothing_heavy():
    out = resolve("ps", "version", "run", "images", "cp", "build", "login", "volume", "network", "container")
    assert all(out["found"].values()), out["found"]
    assert out["loaded"] == []


def test_an_unknown_name_loads_plugin_commands():
    out = resolve("ps", "tls")  # `dockyard tls` comes from the auth_tls plugin's register_commands
    assert out["found"] == {"ps": "ps", "tls": "tls"}
    assert "dockyard.plugins" in out["loaded"]


def test_help_lists_builtin_and_plugin_commands():
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    names = {line.split()[0] for line in r.stdout.split("Commands:", 1)[1].splitlines() if line.strip()}
    assert {"ps", "run", "container", "tls"} <= names


def test_no_such_command_is_still_an_error():
    r = subprocess.run([sys.executable, "-m", "dockyard_cli", "no-such-command"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "No such command 'no-such-command'" in r.stderr
