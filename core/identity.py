"""Who is calling, and what the authorization hooks decided.

Transports fill a :class:`Peer` per connection; ``authenticate_request`` hooks turn it
into an :class:`Identity`; ``authorize_request`` hooks answer with a :class:`Decision`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Peer:
    """What the transport knows about the other end of a connection."""

    transport: str
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    address: str | None = None
    cert: dict[str, Any] | None = None


@dataclass(frozen=True)
class Identity:
    """The principal a request runs as. ``name`` is what audit records show."""

    name: str
    kind: str = "anonymous"  # "unix", "tls", "anonymous", or a plugin's own kind
    uid: int | None = None
    gid: int | None = None
    pid: int | None = None
    groups: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


ANONYMOUS = Identity(name="anonymous")


@dataclass(frozen=True)
class Decision:
    """An authorization answer. ``rule`` names what decided, for the audit trail."""

    allow: bool
    message: str = ""
    rule: str = ""

    @classmethod
    def deny(cls, message: str, rule: str = "") -> "Decision":
        return cls(False, message, rule)

    @classmethod
    def permit(cls, rule: str = "") -> "Decision":
        return cls(True, "", rule)
