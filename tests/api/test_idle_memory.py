"""An idle daemon keeps only what serving needs (issue 18, idle PSS): what only some requests
need is imported by them, the command-line parser is gone once parsed, and libnftables'
contexts (a copy of the ruleset each) are freed and the library unloaded once start-up is over.

A real ``dockyardd`` (its own ``main()``, run through a wrapper that lists ``sys.modules`` on
request) on a temporary socket, with the default bridge when the host allows it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from dockyard.testing.daemon import DaemonProcess

# Imported by a running daemon only when a request (or flag) needs them: the parser that read
# the command line, the tar code (load, save, cp, commit, build), the vfs driver beside overlay
LAZY = ("click", "dockyard.daemon_cli", "difflib", "tarfile", "dockyard.layers.unpack", "dockyard.layers.export",
        "dockyard.layers.tarsplit", "dockyard.layers.copy_storage", "dockyard_storage_overlay.vfs")
# The daemon serves HTTP with its own server (dockyard.http): aiohttp and what it drags in (~11 MB
# PSS) are for the registry client (pull, push, login) only. (``email`` itself is still there:
# importlib.metadata parses distributions' metadata with it for entry-point discovery.)
NOT_AT_IDLE = ("aiohttp", "yarl", "multidict", "attr", "propcache", "aiosignal", "frozenlist", "aiohappyeyeballs",
               "email.headerregistry", "http.cookies", "http.client",
               "urllib.request", "dockyard.http.websocket")

WRAPPER = """
import gc, json, os, sys, threading, time
from pathlib import Path

ask = Path(os.environ["DY_IDLE_ASK"])

def answer():
    while True:
        while not ask.exists():
            time.sleep(0.05)
        nft = sys.modules.get("dockyard.nftables")
        contexts = sum(1 for o in gc.get_objects() if nft and type(o) is nft.Nft and o._ctx is not None)
        out = ask.with_suffix(".json")
        if os.environ.get("DY_IDLE_MALLOC_STATS"):
            import ctypes
            sys.stderr.flush()
            ctypes.CDLL(None).malloc_stats()  # "Arena N:" per glibc malloc arena, to the daemon's log
        out.with_suffix(".tmp").write_text(json.dumps({"modules": sorted(sys.modules), "nft_contexts": contexts,
                                                       "nft_loaded": nft is not None}))
        os.rename(out.with_suffix(".tmp"), out)
        ask.unlink()

sys.argv[0] = "dockyardd"
from dockyard import daemon

run = daemon.run

def run_and_answer(config):  # the thread starts where the daemon's first would (after main's set-up)
    threading.Thread(target=answer, daemon=True).start()
    run(config)

daemon.run = run_and_answer
daemon.main(sys.argv[1:])
"""


class ListingDaemon(DaemonProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-c", WRAPPER, *super().command()[3:]]  # without "-m dockyard"

    def listing(self) -> dict:
        ask = self.base / "ask"
        out = ask.with_suffix(".json")
        out.unlink(missing_ok=True)
        ask.touch()
        deadline = time.monotonic() + 30
        while not out.exists():
            assert time.monotonic() < deadline, "the daemon did not answer"
            time.sleep(0.05)
        return json.loads(out.read_text())


@pytest.fixture
def idle_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    base = tmp_path / "d"
    d = ListingDaemon(base, env={"DY_IDLE_ASK": str(base / "ask"), "DY_IDLE_MALLOC_STATS": "1"})
    d.start()
    yield d
    d.stop()


def test_an_idle_daemon_has_not_imported_what_only_some_requests_need(idle_daemon: ListingDaemon) -> None:
    modules = set(idle_daemon.listing()["modules"])
    assert "dockyard.daemon" in modules and "dockyard.http.server" in modules  # it is the daemon
    assert sorted(m for m in LAZY if m in modules) == []
    assert sorted(m for m in NOT_AT_IDLE if m in modules) == []


def test_an_idle_daemon_keeps_no_nftables_context_nor_the_library(idle_daemon: ListingDaemon) -> None:
    # the default bridge's start-up ran nft batches (when the bridge driver runs here); the
    # janitor's first look after start-up frees the contexts and unloads libnftables: polled,
    # not timed
    deadline = time.monotonic() + 60
    while True:
        listing = idle_daemon.listing()
        if not listing["nft_loaded"]:
            pytest.skip("no nftables user here (the bridge driver cannot run)")
        maps = Path(f"/proc/{idle_daemon.proc.pid}/maps").read_text()
        if listing["nft_contexts"] == 0 and "libnftables" not in maps:
            break
        assert time.monotonic() < deadline, \
            f"{listing['nft_contexts']} nftables contexts kept at idle, libnftables mapped: {'libnftables' in maps}"
        time.sleep(0.2)
    assert idle_daemon.ping()  # and nftables still works for what comes next (a new network)
    from dockyard_cli.client import UnixHTTPConnection

    conn = UnixHTTPConnection(str(idle_daemon.socket), timeout=60)
    conn.request("POST", "/networks/create", body=json.dumps({"Name": "dy-idle-net"}),
                 headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 201, body
    conn.request("DELETE", "/networks/dy-idle-net")
    r = conn.getresponse()
    assert r.status == 204, r.read()
    conn.close()


def test_the_daemons_threads_share_one_malloc_arena(idle_daemon: ListingDaemon) -> None:
    # start-up ran work in executor threads (the networks' reconcile, the janitor's trim): with
    # glibc's default each got an arena of its own, keeping what was freed in it
    import re

    idle_daemon.listing()
    arenas = set(re.findall(r"^Arena (\d+):", idle_daemon.log(), re.M))
    assert arenas == {"0"}, idle_daemon.log()[-2000:]
    assert len(list(Path(f"/proc/{idle_daemon.proc.pid}/task").iterdir())) > 1  # threads there are

# Imported at their first use, not by an idle daemon (issue 18, idle memory; commits "idle: ..."):
FIRST_USE = (
    # the typed request model (msgspec, ~1 MB): the handlers that decode a body, the json-file reader
    "msgspec", "dockyard.api.models", "dockyard.api.schema",
    # a config file (tomllib), auth_tls's policy and audit log: read at start-up only when configured
    "tomllib", "dockyard_auth_tls.policy", "dockyard_auth_tls.audit",
    # the seccomp compiler and its syscall tables: the first container spec that has a filter
    "dockyard.runtime.seccomp", "dockyard.runtime.seccomp_syscalls",
    # docker cp, export and commit: the tar code, the mount view and its worker threads; gzip streams
    "dockyard.containers.archive", "dockyard.containers.fsview", "dockyard.containers.fsworkers", "gzip",
    # --userns-remap's mapping code: a daemon started without the flag has no use for it
    "dockyard.userns",
    # the embedded DNS (the first container with a resolver), log forwarding and syslog (the first
    # container with such a log driver), exec's sendfile/splice path (the first exec)
    "dockyard.networks.dns", "dockyard.containers.logforward", "dockyard.containers.syslog",
    "dockyard.api.zerocopy",
)


def test_an_idle_daemon_has_not_imported_what_their_first_use_imports(idle_daemon: ListingDaemon) -> None:
    from dockyard.daemon import DEFAULT_CONFIG_FILE

    modules = set(idle_daemon.listing()["modules"])
    read_config = DEFAULT_CONFIG_FILE.exists()  # a host with a config file: tomllib read it at start
    assert sorted(m for m in FIRST_USE if m in modules and not (m == "tomllib" and read_config)) == []
