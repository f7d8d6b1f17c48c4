"""No task exception is ever left unobserved (issue 14, finding 3): ``dockyard.tasks.spawn``
logs a background task's exception at once, and the test fixtures fail a test whose daemon
logged asyncio's "Task exception was never retrieved"."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
from pathlib import Path

import pytest

from dockyard.tasks import spawn
from dockyard.testing.daemon import DaemonProcess
from dockyard.testing.pytest_plugin import check_task_errors

UNOBSERVED = "Task exception was never retrieved"


def test_spawn_logs_the_exception_and_asyncio_has_nothing_to_report(caplog):
    async def fails() -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        task = spawn(fails(), "writing a record")
        await asyncio.sleep(0.01)
        assert task.done()
        del task
        gc.collect()

    caplog.set_level(logging.DEBUG)
    asyncio.run(main())
    gc.collect()
    messages = [r.getMessage() for r in caplog.records]
    assert any(m == "background task writing a record failed" for m in messages), messages
    assert not any(UNOBSERVED in m for m in messages)


def test_a_bare_task_is_what_the_fixture_catches(caplog):
    """The failure mode itself, so the check below is known to look for the right words."""
    async def fails() -> None:
        raise OSError(28, "No space left on device")

    async def main() -> None:
        asyncio.ensure_future(fails())
        await asyncio.sleep(0.01)
        gc.collect()

    caplog.set_level(logging.DEBUG)
    asyncio.run(main())
    gc.collect()
    assert any(UNOBSERVED in r.getMessage() for r in caplog.records)


def test_fixture_check_fails_on_an_unobserved_task_exception(tmp_path: Path):
    daemon = DaemonProcess(tmp_path)
    daemon.base.mkdir(parents=True, exist_ok=True)
    daemon.log_path.write_text("2026-01-01 INFO dockyard.daemon: ready\n")
    check_task_errors(daemon)  # a clean log passes
    daemon.log_path.write_text(
        "2026-01-01 ERROR   asyncio: Task exception was never retrieved\n"
        "future: <Task finished name='Task-9' coro=<ContainerService._watch() done>\n"
        "OSError: [Errno 28] No space left on device\n")
    with pytest.raises(pytest.fail.Exception, match="never retrieved"):
        check_task_errors(daemon)


def test_no_fire_and_forget_task_outside_the_helper():
    """Every ensure_future/create_task in core and the plugins is either awaited where it is
    made or goes through dockyard.tasks.spawn: the remaining ones are listed and checked."""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(["grep", "-rn", "--include=*.py", "-E", r"ensure_future\(|create_task\(",
                          "core", "plugins"], cwd=root, capture_output=True, text=True).stdout
    sites = sorted(line.split(":", 2)[0] + ":" + line.split(":", 2)[2].strip()
                   for line in out.splitlines() if "/build/" not in line and "core/tasks.py" not in line)
    awaited = ("task = asyncio.ensure_future(svc.wait(", "task = asyncio.ensure_future(run(progress))",
               "getter = asyncio.ensure_future(queue.get())", "out_task = asyncio.ensure_future(output)",
               "in_task = asyncio.ensure_future(stdin)", "tasks = [asyncio.ensure_future(one(",
               "producer = asyncio.ensure_future(asyncio.to_thread(produce))",
               "unpacking = asyncio.ensure_future(asyncio.to_thread(unpack))",
               "download = asyncio.ensure_future(client.stream_blob(",
               "write = asyncio.ensure_future(asyncio.to_thread(store.write_atomic",  # persist: shielded, awaited
               "spawning = asyncio.ensure_future(asyncio.to_thread(",  # native: shielded, awaited or reaped
               "task = asyncio.ensure_future(result)",  # daemon._on_event: logged by _log_task_error
               "starting = asyncio.ensure_future(svc.start(e))",  # api/exec: awaited, or by the hijack's cleanup
               "writing = asyncio.ensure_future(asyncio.to_thread(run))",  # api/images save: shielded, awaited
               # shielded and awaited; when the handler is cancelled (a client hung up) a done
               # callback reads the result and closes (save's plan) or undoes (a mount) it
               "planning = asyncio.ensure_future(asyncio.to_thread(svc.save_archive, targets))",
               "mounting = asyncio.ensure_future(_mount(svc, c))")
    unknown = [s for s in sites if not any(a in s for a in awaited)]
    assert unknown == [], "use dockyard.tasks.spawn for a task nobody awaits:\n" + "\n".join(unknown)
