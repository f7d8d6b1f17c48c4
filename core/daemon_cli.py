"""``dockyardd``'s command line, parsed by click.

:func:`dockyard.daemon.main` imports this module, lets click parse (``--help``, ``--version``,
usage errors and the root check exit here, as they always did), and then unloads click and
this module before the daemon runs: an idle daemon does not keep a parser it used once
(1 MB of its idle memory, issue 18). Nothing else in the daemon imports click.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from . import config as cfg
from .daemon import DEFAULT_CONFIG_FILE

#: (flags, config file) of the last parse
_parsed: list[tuple[dict[str, Any], Path | None]] = []

FLAG_FIELDS = {
    "host": "hosts", "data_root": "data_root", "exec_root": "exec_root", "pidfile": "pidfile",
    "group": "group", "debug": "debug", "log_level": "log_level", "log_format": "log_format",
    "storage_driver": "storage_driver", "runtime": "runtime", "cgroups": "cgroups",
    "insecure_tcp": "insecure_tcp", "live_restore": "live_restore", "log_opt": "log_opts",
    "log_driver": "log_driver",
    "tls": "tls", "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert",
    "tlskey": "tlskey", "userns_remap": "userns_remap", "cgroup_parent": "cgroup_parent",
    "exec_opt": "exec_opts", "ipv6": "ipv6", "fixed_cidr_v6": "fixed_cidr_v6",
    "metrics_addr": "metrics_addr",
    "bip": "bip", "dns": "dns", "dns_search": "dns_search", "dns_opt": "dns_opts",
    "default_shm_size": "default_shm_size", "default_ulimit": "default_ulimits",
}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-H", "--host", multiple=True, metavar="URL",
              help="Address to listen on: unix:///path, tcp://host:port, fd:// (systemd socket activation) "
                   f"(repeatable; default {cfg.DEFAULT_HOST})")
@click.option("--data-root", type=click.Path(path_type=Path), help="Persistent state (default /var/lib/dockyard)")
@click.option("--exec-root", type=click.Path(path_type=Path), help="Runtime state (default /run/dockyard)")
@click.option("-p", "--pidfile", type=click.Path(path_type=Path), help="Pid file (default <exec-root>/dockyardd.pid)")
@click.option("--config-file", type=click.Path(path_type=Path),
              help=f"TOML config (default {DEFAULT_CONFIG_FILE} if present)")
@click.option("-G", "--group", help="Group that owns the Unix socket (default: dockyard, if it exists)")
@click.option("-D", "--debug", is_flag=True, default=None, help="Debug logging and access log")
@click.option("-l", "--log-level", type=click.Choice(cfg.LOG_LEVELS), help="Log level (default info)")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log line format (default text)")
@click.option("-s", "--storage-driver", help="Storage driver (default: first usable of overlay, vfs)")
@click.option("--runtime", "--default-runtime", "runtime",
              help="Default runtime: a runtime driver (native, oci) or a name one serves (runc; default native)")
@click.option("--cgroups", help="cgroups driver: auto, v1, v2 (default auto)")
@click.option("--insecure-tcp", is_flag=True, default=None, help="Allow plain TCP on non-loopback addresses")
@click.option("--live-restore/--no-live-restore", default=None,
              help="Keep containers running while the daemon is down (default on)")
@click.option("--tls", is_flag=True, default=None, help="Use TLS on tcp:// addresses; implied by --tlsverify")
@click.option("--tlsverify", is_flag=True, default=None,
              help="Use TLS and verify client certificates against --tlscacert")
@click.option("--tlscacert", type=click.Path(path_type=Path),
              help="Trust client certificates signed by this CA (default /etc/dockyard/ca.pem)")
@click.option("--tlscert", type=click.Path(path_type=Path),
              help="Server TLS certificate (default /etc/dockyard/cert.pem)")
@click.option("--tlskey", type=click.Path(path_type=Path), help="Server TLS key (default /etc/dockyard/key.pem)")
@click.option("--userns-remap", metavar="default|USER[:GROUP]",
              help="Run containers in a user namespace mapped to the subordinate ids of USER (default: dockremap)")
@click.option("--cgroup-parent", metavar="PATH",
              help="Parent cgroup of containers without --cgroup-parent (cgroupfs: <PATH>/<id> in every hierarchy)")
@click.option("--exec-opt", multiple=True, metavar="KEY=VALUE",
              help="Runtime options: native.cgroupdriver=cgroupfs (systemd is refused: not implemented)")
@click.option("--ipv6", is_flag=True, default=None, help="IPv6 on the default bridge network")
@click.option("--fixed-cidr-v6", metavar="SUBNET",
              help="IPv6 subnet of the default bridge (with --ipv6; default: a /64 of a unique-local /48)")
@click.option("--metrics-addr", metavar="HOST:PORT",
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (needs the dockyard-metrics plugin)")
@click.option("--log-opt", multiple=True, metavar="KEY=VALUE",
              help="Default container log options (max-size, max-file)")
@click.option("--log-driver", metavar="NAME", help="Default container log driver (json-file, local, none)")
@click.option("--bip", metavar="CIDR", help="Default bridge's address and prefix (e.g. 192.168.200.1/24)")
@click.option("--dns", multiple=True, metavar="IP", help="DNS server of containers without --dns")
@click.option("--dns-search", multiple=True, metavar="DOMAIN", help="Search domain of containers without --dns-search")
@click.option("--dns-opt", multiple=True, metavar="OPT", help="resolv.conf option of containers without --dns-option")
@click.option("--default-shm-size", metavar="SIZE", help="/dev/shm size of containers without --shm-size (default 64m)")
@click.option("--default-ulimit", multiple=True, metavar="NAME=SOFT[:HARD]",
              help="ulimit of containers that do not set it")
@click.version_option(__version__, "-v", "--version", prog_name="dockyardd")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, **params: Any) -> None:
    """dockyardd: the Dockyard container engine daemon (Docker Engine API)."""
    from click.core import ParameterSource

    # after click has parsed the arguments: --help and --version (eager) work for any user, as dockerd's
    if os.geteuid() != 0:
        click.echo("dockyardd: error: the daemon must run as root", err=True)
        sys.exit(1)
    flags: dict[str, Any] = {}
    for param, value in params.items():
        source = ctx.get_parameter_source(param)
        if source != ParameterSource.COMMANDLINE or value is None or value == ():
            continue
        if param == "log_opt":
            value = dict(item.partition("=")[::2] for item in value)
        flags[FLAG_FIELDS[param]] = list(value) if param in ("host", "exec_opt") else value
    _parsed.append((flags, config_file))


def parse(argv: list[str] | None = None) -> tuple[dict[str, Any], Path | None]:
    """The flags given on the command line (by config field) and the ``--config-file``.
    Exits like any click program for ``--help``, ``--version`` and bad usage."""
    _parsed.clear()
    try:
        cli.main(args=argv, prog_name="dockyardd")  # standalone: ends with sys.exit(0)
    except SystemExit as exc:
        if not _parsed or exc.code not in (0, None):
            raise
    return _parsed.pop()
