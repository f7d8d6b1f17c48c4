"""A Dockerfile as a list of instructions, read with ``dockerfile-parse``.

``dockerfile-parse`` (Red Hat's maintained parser) handles line continuations, comments
inside continued instructions and the ``# escape=`` directive; this module checks what it
leaves to the builder (unknown instructions, missing arguments, bad flags, bad JSON) and
reports every error with its line number, as Docker does: ``Dockerfile parse error line 3:
unknown instruction: BOGUS``.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from dockerfile_parse import DockerfileParser

from ..errors import InvalidArgument
from . import shell

INSTRUCTIONS = {
    "from", "run", "cmd", "label", "maintainer", "expose", "env", "add", "copy", "entrypoint",
    "volume", "user", "workdir", "arg", "onbuild", "stopsignal", "healthcheck", "shell",
}
# flags each instruction accepts (``--name=value``)
FLAGS = {
    "from": {"platform"}, "copy": {"from", "chown", "chmod"}, "add": {"chown", "chmod"},
    "healthcheck": {"interval", "timeout", "start-period", "retries", "start-interval"},
    "run": set(),
}
_FLAG = re.compile(r"--([a-z-]+)(?:=(\S*))?$")


class ParseError(InvalidArgument):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"Dockerfile parse error line {line}: {message}")
        self.line = line


@dataclass
class Instruction:
    cmd: str  # lower case: "copy"
    value: str  # the arguments as written, continuations joined, flags included
    line: int  # 1-based first line
    original: str  # "COPY --from=a /x /y", what a build step prints
    flags: dict[str, str] = field(default_factory=dict)
    args: str = ""  # value without the flags
    escape: str = "\\"  # the ``# escape=`` directive's character

    def json_args(self) -> list[str] | None:
        """The exec (JSON) form's strings, or None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None  # Docker, too, falls back to the shell form
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None
        return value


@dataclass
class Stage:
    index: int
    base: str  # as written (variables not yet expanded)
    name: str  # "AS name", lower case, or ""
    from_instruction: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    meta_args: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]

    @property
    def steps(self) -> int:
        return sum(1 + len(s.instructions) for s in self.stages)


def _split_flags(ins: Instruction) -> None:
    rest = ins.value.lstrip()
    allowed = FLAGS.get(ins.cmd, set())
    while rest.startswith("--"):
        word, _, tail = rest.partition(" ")
        m = _FLAG.match(word)
        if m is None or m.group(1) not in allowed:
            name = word[2:].split("=", 1)[0]
            raise ParseError(ins.line, f"Unknown flag: {name}")
        if m.group(2) is None:
            raise ParseError(ins.line, f"Missing a value on flag: {word}")
        ins.flags[m.group(1)] = m.group(2)
        rest = tail.lstrip()
    ins.args = rest


def _escape(text: str) -> str:
    """The ``# escape=`` parser directive's character (``\\`` by default)."""
    m = re.match(r"(?:\s*#[^\n]*\n)*?\s*#\s*escape\s*=\s*(\S)", text, re.I)
    return m.group(1) if m else "\\"


def _blank_continuations(text: str) -> str:
    """Docker skips empty lines inside a continued instruction; dockerfile-parse would end the
    instruction there. Such lines become comments (which it skips), so line numbers stay."""
    escape = _escape(text)
    lines = text.split("\n")
    continued = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if continued and not stripped:
            lines[i] = "#"
            continue
        if stripped.startswith("#"):
            continue
        continued = line.rstrip().endswith(escape)
    return "\n".join(lines)


def parse(data: bytes) -> Dockerfile:
    """Parse and check a Dockerfile; :class:`ParseError` names the offending line."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument("Dockerfile parse error: the Dockerfile is not UTF-8 text") from None
    parser = DockerfileParser(fileobj=io.BytesIO(_blank_continuations(text).encode()))
    escape = _escape(text)
    meta: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        word = item["instruction"]
        if word == "COMMENT":
            continue
        line = item["startline"] + 1
        cmd = word.lower()
        if cmd not in INSTRUCTIONS:
            raise ParseError(line, f"unknown instruction: {word}")
        first = item["content"].lstrip().split(None, 1)[0] if item["content"].strip() else word
        ins = Instruction(cmd=cmd, value=item["value"].strip(), line=line,
                          original=f"{first} {item['value'].strip()}".rstrip(), escape=escape)
        if not ins.value:
            raise ParseError(line, f"{word} requires at least one argument" if cmd != "from"
                             else "FROM requires either one or three arguments")
        _split_flags(ins)
        if cmd == "from":
            words = ins.args.split()
            if len(words) == 3 and words[1].lower() == "as":
                name = words[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9_.-]*", name):
                    raise ParseError(line, f"invalid name for build stage: {words[2]!r}, name can't start "
                                           "with a number or contain symbols")
            elif len(words) == 1:
                name = ""
            else:
                raise ParseError(line, "FROM requires either one or three arguments")
            stages.append(Stage(len(stages), words[0], name, ins))
            continue
        if cmd == "onbuild":
            check_trigger(ins.args, line)
        if not stages:
            if cmd != "arg":
                raise ParseError(line, f"{word} is not allowed before the first FROM (only ARG is)")
            meta.append(ins)
            continue
        stages[-1].instructions.append(ins)
    if not stages:
        raise InvalidArgument("Dockerfile parse error: the Dockerfile has no FROM instruction "
                              "(file with no instructions)")
    return Dockerfile(meta, stages)


def check_trigger(expression: str, line: int) -> None:
    """What moby's parser refuses as an ``ONBUILD`` trigger."""
    word = expression.strip().split(None, 1)[0].upper() if expression.strip() else ""
    if not word:
        raise ParseError(line, "ONBUILD requires at least one argument")
    if word == "ONBUILD":
        raise ParseError(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if word in ("MAINTAINER", "FROM"):
        raise ParseError(line, f"{word} isn't allowed as an ONBUILD trigger")
    if word.lower() not in INSTRUCTIONS:
        raise ParseError(line, f"unknown instruction: {word}")


def parse_triggers(triggers: list[str]) -> list[Instruction]:
    """The ``OnBuild`` triggers of a base image, as instructions of the stage that uses it
    (checked again: an image's config may have been written by anyone)."""
    out: list[Instruction] = []
    for trigger in triggers:
        word = trigger.strip().split(None, 1)[0].upper() if trigger.strip() else ""
        if word == "ONBUILD":
            raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
        if word in ("MAINTAINER", "FROM"):
            raise InvalidArgument(f"{word} isn't allowed as an ONBUILD trigger")
        out += parse(f"FROM scratch\n{trigger}\n".encode()).stages[0].instructions
    return out


# -- words and variables ------------------------------------------------------------------------


def expand(text: str, env: dict[str, str], escape: str = "\\") -> str:
    """Docker's word processing for one value: variables (``$VAR``, ``${VAR:-word}``, ...)
    substituted, quotes and escapes removed (:mod:`.shell`)."""
    return shell.process(text, env, escape)


def quote(text: str) -> str:
    """``text`` as a double-quoted word that :func:`expand` turns back into ``text`` exactly
    (no substitution): for the ``--label`` values the builder adds as a LABEL step."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def words(text: str, env: dict[str, str], escape: str = "\\") -> list[str]:
    """Whitespace-separated words, each then processed (COPY sources, EXPOSE, ...): a
    variable's value does not split into more words, as in Docker."""
    return [shell.process(w, env, escape) for w in shell.split(text, escape)]


def key_values(ins: Instruction, env: dict[str, str]) -> list[tuple[str, str]]:
    """``ENV``/``LABEL`` pairs: ``a=1 b="two words"`` or the old ``name value`` form."""
    esc = ins.escape
    raw = shell.split(ins.args, esc)
    if not raw:
        raise ParseError(ins.line, f"{ins.cmd.upper()} requires at least one argument")
    if "=" not in raw[0]:
        key, _, value = ins.args.partition(" ")
        if not value.strip():
            raise ParseError(ins.line, f"{ins.cmd.upper()} must have two arguments")
        return [(expand(key, env, esc), expand(value.strip(), env, esc))]
    out = []
    for word in raw:
        if "=" not in word:
            raise ParseError(ins.line, f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        k, _, v = word.partition("=")
        k = expand(k, env, esc)
        if not k:
            raise ParseError(ins.line, f"{ins.cmd.upper()} names can not be blank")
        out.append((k, expand(v, env, esc)))
    return out


def command(ins: Instruction, shell: list[str]) -> list[str]:
    """RUN/CMD/ENTRYPOINT: the exec form as is, the shell form wrapped in the stage's SHELL
    (neither form gets the builder's variable substitution, as in Docker)."""
    exec_form = ins.json_args()
    if exec_form is not None:
        return exec_form
    return [*shell, ins.args]
