"""Container states and which actions each allows: one table, one check (youki's ``can_*``)."""

from __future__ import annotations

import enum

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
    "remove": "You cannot remove a {state} container {id}. Stop the container before attempting removal or force remove",
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
