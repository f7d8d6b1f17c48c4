"""The container state machine: lifecycle.transition is the one place a status changes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dockyard
from dockyard.containers.record import Container
from dockyard.errors import InvalidState
from dockyard.lifecycle import MOVES, State, transition

CORE = Path(dockyard.__file__).resolve().parent


def _container(status: str, oom: bool = False) -> Container:
    return Container(id="c0ffee" * 10 + "abcd", name="n", image="busybox", image_id="sha256:x", config={},
                     host_config={}, status=status, oom_killed=oom)


def test_a_legal_move_changes_the_status_and_names_its_events() -> None:
    c = _container("created")
    assert transition(c, "start") == ("start",) and c.status == "running"
    assert transition(c, "pause") == ("pause",) and c.status == "paused"
    assert transition(c, "thaw") == () and c.status == "running"
    c.oom_killed = True
    assert transition(c, "die") == ("oom", "die") and c.status == "exited"  # Docker's order
    assert transition(c, "schedule-restart") == () and c.status == "restarting"
    assert transition(c, "cancel-restart") == () and c.status == "exited"
    assert transition(c, "remove") == () and c.status == "removing"


@pytest.mark.parametrize(("status", "action", "message"), [
    ("exited", "pause", "is not running"),
    ("paused", "pause", "is already paused"),
    ("running", "unpause", "is not paused"),
    ("removing", "start", "marked for removal"),
    ("running", "schedule-restart", "cannot schedule-restart a running container"),
    ("removing", "die", "cannot die a removing container"),
])
def test_an_illegal_move_is_a_409_and_changes_nothing(status: str, action: str, message: str) -> None:
    c = _container(status)
    with pytest.raises(InvalidState, match=message) as err:
        transition(c, action)
    assert c.status == status and err.value.status == 409
    assert (err.value.state, err.value.action, err.value.object_id) == (status, action, c.id)


def test_every_move_leads_to_a_state() -> None:
    assert all(isinstance(m.target, State) and m.sources <= set(State) for m in MOVES.values())


NOT_CONTAINERS = {"h", "err"}  # a healthcheck's status, an error response's status


def test_no_status_is_assigned_outside_the_transition() -> None:
    """``c.status = ...`` (or a tuple assignment naming ``.status``) appears only in
    lifecycle.transition: every other module changes a container's state through it."""
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        if path.name == "lifecycle.py" or "/testing/" in str(path):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else [])
            for target in targets:
                for t in ast.walk(target):
                    if isinstance(t, ast.Attribute) and t.attr == "status" and ast.unparse(t.value) not in NOT_CONTAINERS:
                        offenders.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert offenders == []
