""".dockerignore, with the rules of moby's ``patternmatcher``: patterns are cleaned paths
relative to the context (a leading ``/`` is dropped), ``*`` and ``?`` do not cross ``/``,
``**`` matches any number of directories, ``!pattern`` re-includes; the last pattern that
matches a path decides, and a path whose parent directory is excluded is excluded too.

Used by the daemon (on the received context) and by the ``dockyard build`` client (when it
tars the context), so both agree.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass


@dataclass
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/" : zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                if body.startswith("^"):
                    body = "!" + body[1:]
                body = body.replace("\\", "\\\\")
                out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out) + "$", re.S)


def parse(text: str) -> list[Pattern]:
    """The patterns of a .dockerignore file (comments and blank lines skipped)."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = posixpath.normpath(line).lstrip("/") if line else line
        if line in ("", "."):
            continue
        patterns.append(Pattern(line, exclusion, _compile(line)))
    return patterns


class Matcher:
    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns

    @classmethod
    def from_text(cls, text: str) -> "Matcher":
        return cls(parse(text))

    def excluded(self, path: str) -> bool:
        """Whether the context-relative ``path`` (``a/b/c``) is left out."""
        if not self.patterns:
            return False
        path = posixpath.normpath(path).lstrip("/")
        parts = path.split("/")
        parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:  # cannot change the outcome
                continue
            if p.regex.match(path) or any(p.regex.match(parent) for parent in parents):
                matched = not p.exclusion
        return matched

    def may_contain_exceptions(self) -> bool:
        """Whether an excluded directory must still be walked (an ``!`` pattern may re-include
        something below it)."""
        return any(p.exclusion for p in self.patterns)
