"""``stats``: docker's formulas (CPU %, memory without page cache, go-units sizes) and the
live table."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Mapping

import click

from .client import Client, ClientError, q
from .docker_command import command
from .templates import render  # noqa: F401  (kept for callers)


def cpu_percent(s: Mapping[str, Any]) -> float:
    cpu, pre = s.get("cpu_stats") or {}, s.get("precpu_stats") or {}
    cpu_delta = ((cpu.get("cpu_usage") or {}).get("total_usage") or 0) - (
        (pre.get("cpu_usage") or {}).get("total_usage") or 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_used(mem: Mapping[str, Any]) -> int:
    """usage minus page cache: ``stats.cache`` on cgroup v1, ``inactive_file`` on v2."""
    usage = mem.get("usage") or 0
    stats = mem.get("stats") or {}
    if "cache" in stats and stats["cache"] < usage:
        return usage - stats["cache"]
    if "inactive_file" in stats and stats["inactive_file"] < usage:
        return usage - stats["inactive_file"]
    return usage


def _go_units(n: float, base: int, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while n >= base and i < len(units) - 1:
        n /= base
        i += 1
    return f"{n:.{precision}g}" + units[i]


def bytes_size(n: float) -> str:
    """go-units BytesSize: ``1.5MiB``."""
    return _go_units(n, 1024, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


def human_size3(n: float) -> str:
    """go-units HumanSizeWithPrecision(n, 3): ``1.23kB``."""
    return _go_units(n, 1000, ("B", "kB", "MB", "GB", "TB", "PB"), 3)


def stats_row(s: Mapping[str, Any], no_trunc: bool = False) -> dict[str, Any]:
    mem = s.get("memory_stats") or {}
    used, limit = memory_used(mem), mem.get("limit") or 0
    rx = sum((n.get("rx_bytes") or 0) for n in (s.get("networks") or {}).values())
    tx = sum((n.get("tx_bytes") or 0) for n in (s.get("networks") or {}).values())
    read = write = 0
    for e in (s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = (e.get("op") or "").lower()
        if op == "read":
            read += e.get("value") or 0
        elif op == "write":
            write += e.get("value") or 0
    cid = s.get("id") or ""
    return {
        "ID": cid if no_trunc else cid[:12],
        "Container": cid if no_trunc else cid[:12],
        "Name": (s.get("name") or "").lstrip("/"),
        "CPUPerc": f"{cpu_percent(s):.2f}%",
        "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
        "MemPerc": f"{(used / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size3(rx)} / {human_size3(tx)}",
        "BlockIO": f"{human_size3(read)} / {human_size3(write)}",
        "PIDs": str((s.get("pids_stats") or {}).get("current") or 0),
    }


STATS_HEADERS = {"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
                 "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


STATS_DEFAULT = "{{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def _stats_targets(client: Client, containers: tuple[str, ...], all_: bool) -> list[str]:
    if containers:
        return list(containers)
    items = client.get("/containers/json", params={"all": all_ or None})
    return [c["Id"] for c in items]


def _table_text(fmt: str | None, rows: list[dict[str, Any]]) -> str:
    from .templates import render_rows, row

    structs = [row("*container.statsContext", r) for r in rows]
    return render_rows(fmt, structs, STATS_HEADERS, STATS_DEFAULT).rstrip("\n")


def _print_stats(fmt: str | None, rows: list[dict[str, Any]]) -> None:
    click.echo(_table_text(fmt, rows))


@command("stats")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--format", "fmt", help="table (default), table TEMPLATE, json, or a template like '{{.Name}}'")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output")
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats(client: Client, all_: bool, fmt: str | None, no_stream: bool, no_trunc: bool,
          containers: tuple[str, ...]) -> None:
    """Display a live stream of container(s) resource usage statistics."""
    targets = _stats_targets(client, containers, all_)
    latest: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    lock = threading.Lock()

    def one_shot(ref: str) -> None:
        try:
            s = client.get(f"/containers/{q(ref)}/stats", params={"stream": 0})
            with lock:
                latest[ref] = s
        except ClientError as exc:
            with lock:
                errors[ref] = str(exc)

    def follow(ref: str) -> None:
        try:
            response = client.request("GET", f"/containers/{q(ref)}/stats", params={"stream": 1}, stream=True)
            try:
                for s in response.iter_json():
                    with lock:
                        latest[ref] = s
            finally:
                response.close()
        except (ClientError, OSError, ValueError) as exc:
            with lock:
                errors.setdefault(ref, str(exc))

    threads = [threading.Thread(target=one_shot if no_stream else follow, args=(t,), daemon=True) for t in targets]
    for t in threads:
        t.start()

    def rows() -> list[dict[str, Any]]:
        with lock:
            # docker: .Container is the name or id as the command line gave it
            return [dict(stats_row(latest[t], no_trunc), **({"Container": t} if containers else {}))
                    for t in targets if t in latest]

    if no_stream:
        for t in threads:
            t.join()
        for ref in targets:
            if ref in errors:
                click.echo(errors[ref], err=True)
        _print_stats(fmt, rows())
        if errors:
            sys.exit(1)
        return

    try:
        if sys.stdout.isatty() and (not fmt or fmt.startswith("table")):
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            with Live(Text(_table_text(fmt, rows())), console=Console(), auto_refresh=False) as live:
                while any(t.is_alive() for t in threads):
                    time.sleep(1)
                    live.update(Text(_table_text(fmt, rows())), refresh=True)
        else:
            while True:
                time.sleep(1)
                alive = any(t.is_alive() for t in threads)
                _print_stats(fmt, rows())
                click.echo()
                if not alive:
                    break
    except KeyboardInterrupt:
        return
    for ref in targets:
        if ref in errors and ref not in latest:
            click.echo(errors[ref], err=True)
