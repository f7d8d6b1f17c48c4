"""Container states: which API actions each allows (one table, one check: ``require``, youki's
``can_*``) and the moves between them (``MOVES``; ``transition`` is the one place a container's
status changes)."""

from __future__ import annotations

import enum
from typing import NamedTuple, Protocol

from .errors import InvalidState, NotModified


class State(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


S = State
# action -> states that allow it
ALLOWED: dict[str, set[State]] = {
    "start": {S.CREATED, S.EXITED},
    "stop": {S.RUNNING, S.PAUSED, S.RESTARTING},
    "kill": {S.RUNNING, S.RESTARTING},
    "pause": {S.RUNNING},
    "unpause": {S.PAUSED},
    "restart": {S.CREATED, S.RUNNING, S.EXITED, S.RESTARTING},
    "remove": {S.CREATED, S.EXITED, S.DEAD},
    "exec": {S.RUNNING},
    "update": {S.CREATED, S.RUNNING, S.PAUSED, S.EXITED, S.RESTARTING},
    "rename": {S.CREATED, S.RUNNING, S.PAUSED, S.EXITED, S.RESTARTING, S.DEAD},
    "commit": {S.CREATED, S.RUNNING, S.PAUSED, S.EXITED},
    "attach": {S.CREATED, S.RUNNING, S.PAUSED, S.EXITED, S.RESTARTING},
}
# what Docker answers 304 for instead of 409
NOT_MODIFIED = {("start", S.RUNNING), ("stop", S.EXITED), ("stop", S.CREATED)}

MESSAGES = {
    ("kill", S.PAUSED): "Container {id} is paused. Unpause the container before stopping or killing",
    "kill": "Cannot kill container: {id}: Container {id} is not running",
    "pause": "Container {id} is not running",
    ("pause", S.PAUSED): "Container {id} is already paused",
    "unpause": "Container {id} is not paused",
    "remove": ("You cannot remove a {state} container {id}. "
               "Stop the container before attempting removal or force remove"),
    "exec": "Container {id} is not running",
    ("exec", S.PAUSED): "Container {id} is paused, unpause the container before exec",
    ("start", S.PAUSED): "cannot start a paused container, try unpause instead",
    ("start", S.REMOVING): "container is marked for removal and cannot be started",
    ("start", S.DEAD): "container {id} is dead and cannot be started",
}


def require(state: State, action: str, cid: str) -> None:
    """Raise unless ``action`` is allowed in ``state``: NotModified (304) or InvalidState (409)."""
    if state in ALLOWED[action]:
        return
    if (action, state) in NOT_MODIFIED:
        raise NotModified(f"container {cid} is already {'started' if action == 'start' else 'stopped'}")
    template = MESSAGES.get((action, state)) or MESSAGES.get(action) or f"cannot {action} a {{state}} container"
    raise InvalidState(template.format(id=cid, state=state.value), object_id=cid, state=state.value, action=action)


class Move(NamedTuple):
    sources: frozenset[State]  # the states it may start from
    target: State
    event: str | None  # the container event that announces it (None: the verb's own event, or none)


_ANY = frozenset(State)
# action -> the move it makes; a container's status changes only through transition()
MOVES: dict[str, Move] = {
    # its process runs: a start, a restart, the restart policy's next try
    "start": Move(frozenset({S.CREATED, S.EXITED, S.RESTARTING}), S.RUNNING, "start"),
    # start-up reconciliation: a process an interrupted start left running is the container's
    "adopt": Move(frozenset({S.CREATED, S.EXITED, S.RESTARTING, S.RUNNING}), S.RUNNING, None),
    # its process ended (also one that ended while the daemon was down, found at start-up)
    "die": Move(frozenset({S.CREATED, S.RUNNING, S.PAUSED, S.RESTARTING, S.EXITED}), S.EXITED, "die"),
    "pause": Move(frozenset({S.RUNNING}), S.PAUSED, "pause"),
    "unpause": Move(frozenset({S.PAUSED}), S.RUNNING, "unpause"),
    # a stop of a paused container thaws it first, so its process receives the stop signal
    "thaw": Move(frozenset({S.PAUSED}), S.RUNNING, None),
    # the restart policy waits (back-off) before the next start
    "schedule-restart": Move(frozenset({S.EXITED}), S.RESTARTING, None),
    # stop, kill, rm or a failed try end that wait: no process ran
    "cancel-restart": Move(frozenset({S.RESTARTING}), S.EXITED, None),
    # the intent of rm (whatever ran was stopped first; a half-done removal is finished)
    "remove": Move(_ANY, S.REMOVING, None),
}


class HasStatus(Protocol):
    id: str
    status: str
    oom_killed: bool


def check(c: HasStatus, action: str) -> Move:
    """The move ``action`` makes from ``c``'s state, or InvalidState (409) if it may not."""
    move, state = MOVES[action], State(c.status)
    if state not in move.sources:
        template = (MESSAGES.get((action, state)) or MESSAGES.get(action)
                    or f"cannot {action} a {{state}} container {{id}}")
        raise InvalidState(template.format(id=c.id, state=state.value), object_id=c.id, state=state.value,
                           action=action)
    return move


def transition(c: HasStatus, action: str) -> tuple[str, ...]:
    """Move ``c`` to the state ``action`` leads to (InvalidState if its state does not allow
    it) and return the events that announce it, in order: the caller saves the record, then
    emits them (``ContainerService.transition`` does both). An OOM kill is announced before
    the ``die``, as Docker does."""
    move = check(c, action)
    c.status = move.target.value
    if move.event is None:
        return ()
    return ("oom", move.event) if action == "die" and c.oom_killed else (move.event,)
