"""``sd_notify(3)``: tell the service manager how the daemon is doing (``Type=notify`` units).

A datagram to the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
namespace). Without that variable every call is a no-op, so the daemon runs the same outside
systemd. Errors are logged, never raised: a service manager that went away must not stop us.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("dockyard.sdnotify")


def notify(*lines: str) -> bool:
    """Send ``KEY=VALUE`` lines (``READY=1``, ``STOPPING=1``, ``STATUS=...``); True if sent."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr or not lines:
        return False
    if addr[0] == "@":
        target: str | bytes = b"\0" + addr[1:].encode()
    elif addr[0] == "/":
        target = addr
    else:
        log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract: not notifying", addr)
        return False
    payload = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(payload, target)
        return True
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", addr, exc)
        return False


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []), f"MAINPID={os.getpid()}")


def stopping(status: str = "") -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    return notify(f"STATUS={text}")
