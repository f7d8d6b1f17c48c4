"""Docker's detach keys: the key syntax and a scanner that finds the sequence in stdin."""

from __future__ import annotations

from ..errors import InvalidArgument

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"
# moby/term ToBytes: "ctrl-@" is 0, "ctrl-a" 1 ... "ctrl-z" 26, then ctrl-[ \ ] ^ _ (27-31)
_CTRL = ["ctrl-@", *(f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)),
         "ctrl-[", "ctrl-\\", "ctrl-]", "ctrl-^", "ctrl-_"]


def parse_detach_keys(text: str | None) -> bytes:
    """Docker's key syntax: comma-separated ``ctrl-<x>`` (x in a-z @ [ \\ ] ^ _), ``DEL`` or a
    single character. Empty or None means the default, ctrl-p,ctrl-q."""
    if not text:
        text = DEFAULT_DETACH_KEYS
    out = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            out += key.encode()
        elif key in _CTRL:
            out.append(_CTRL.index(key))
        elif key == "DEL":
            out.append(127)
        else:
            raise InvalidArgument(f"Invalid detach keys ({text}) provided")
    return bytes(out)


class DetachScanner:
    """Finds the detach sequence in stdin chunks. A chunk that ends with a prefix of the
    sequence holds those bytes back until the next chunk shows whether they complete it."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = 0  # how many bytes of ``keys`` are held back

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """The bytes to pass on, and whether the sequence was typed (the rest is dropped)."""
        keys = self.keys
        if not keys or (not self.held and keys[0] not in data):
            return data, False
        out = bytearray()
        for i, b in enumerate(data):
            if b == keys[self.held]:
                self.held += 1
                if self.held == len(keys):
                    self.held = 0
                    return bytes(out), True
                continue
            if self.held:  # not the sequence after all: give back what was held
                out += keys[:self.held]
                self.held = 0
                if b == keys[0]:
                    self.held = 1
                    continue
            out.append(b)
            if keys[0] not in data[i + 1:]:
                out += data[i + 1:]
                break
        return bytes(out), False
