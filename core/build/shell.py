"""The Dockerfile's shell-like word processing: quotes, escapes and variable substitution.

What Docker's builders do to the arguments of ENV, ADD, COPY, WORKDIR, EXPOSE, VOLUME, USER,
LABEL, STOPSIGNAL, ARG and FROM (moby's ``shell_parser.go``, BuildKit's ``shell/lex.go``):

* ``'...'`` is literal; ``"..."`` keeps everything but ``$`` substitutions, and the escape
  character there escapes only ``"``, ``$`` and itself; outside quotes it escapes any
  character (``\\$HOME`` is the text ``$HOME``); a trailing lone escape is dropped.
* ``$NAME`` and ``${NAME}`` are the variable's value, empty when unset; a ``$`` not followed
  by a name is literal.
* ``${NAME:-word}`` is ``word`` when NAME is unset or empty, ``${NAME-word}`` only when unset;
  ``${NAME:+word}`` is ``word`` when NAME is set and not empty (``${NAME+word}``: set), else
  empty; ``${NAME:?msg}``/``${NAME?msg}`` fail the build with ``NAME: msg``. ``word`` is
  itself processed (quotes, escapes, nested variables), up to the matching ``}``.

Splitting an instruction into words happens before substitution (as in Docker's parser), so a
variable's value never splits into more words: :func:`split` cuts on whitespace outside
quotes and escapes and keeps them for :func:`process`.
"""

from __future__ import annotations

from ..errors import InvalidArgument


class SubstitutionError(InvalidArgument):
    """A malformed or failing ``${...}`` (the message is Docker's)."""


def process(word: str, env: dict[str, str], escape: str = "\\") -> str:
    """One word with its quotes and escapes removed and its variables substituted."""
    lexer = _Lexer(word, env, escape)
    return lexer.until(None)


def split(text: str, escape: str = "\\") -> list[str]:
    """Whitespace-separated words, quotes and escapes kept (left for :func:`process`)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    in_word = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == escape and quote == '"' and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = ""
        elif ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            in_word = True
            current.append(ch)
            if ch == escape and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch in "'\"":
                quote = ch
        i += 1
    if in_word:
        words.append("".join(current))
    return words


class _Lexer:
    def __init__(self, word: str, env: dict[str, str], escape: str) -> None:
        self.word = word
        self.env = env
        self.escape = escape
        self.pos = 0

    def _peek(self) -> str:
        return self.word[self.pos] if self.pos < len(self.word) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += 1 if ch else 0
        return ch

    def until(self, stop: str | None) -> str:
        """Process up to ``stop`` (consumed) or, for None, the end of the word."""
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                if stop is not None:
                    raise SubstitutionError(f"syntax error: missing '{stop}' in {self.word}")
                return "".join(out)
            if ch == stop:
                self._next()
                return "".join(out)
            if ch == "'":
                out.append(self._single_quoted())
            elif ch == '"':
                out.append(self._double_quoted())
            elif ch == "$":
                out.append(self._dollar())
            else:
                self._next()
                if ch == self.escape:
                    ch = self._next()  # "" at the end: a trailing escape is dropped
                out.append(ch)

    def _single_quoted(self) -> str:
        self._next()
        end = self.word.find("'", self.pos)
        if end < 0:
            raise SubstitutionError("unexpected end of statement while looking for matching single-quote")
        text, self.pos = self.word[self.pos:end], end + 1
        return text

    def _double_quoted(self) -> str:
        self._next()
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise SubstitutionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self._next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self._next()
            if ch == self.escape:
                nxt = self._peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _name(self) -> str:
        start = self.pos
        if self._peek().isdigit():
            while self._peek().isdigit():
                self._next()
            return self.word[start:self.pos]
        while self._peek() and (self._peek().isalnum() or self._peek() == "_"):
            self._next()
        return self.word[start:self.pos]

    def _dollar(self) -> str:
        self._next()  # the $
        if self._peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self._next()  # the {
        if not self._peek():
            raise SubstitutionError(f"syntax error: missing '}}' in {self.word}")
        name = self._name()
        if not name:
            raise SubstitutionError(f"syntax error: bad substitution in {self.word}")
        ch = self._next()
        if ch == "}":
            return self.env.get(name, "")
        if not ch:
            raise SubstitutionError(f"syntax error: missing '}}' in {self.word}")
        modifier, null_is_unset = ch, False
        if ch == ":":
            modifier, null_is_unset = self._next(), True
        if modifier not in ("-", "+", "?"):
            raise SubstitutionError(f"unsupported modifier ({ch if ch != ':' else ':' + modifier}) "
                                    f"in substitution: {self.word}")
        word = self.until("}")
        is_set = name in self.env
        empty = null_is_unset and self.env.get(name) == ""
        if modifier == "-":
            return word if not is_set or empty else self.env[name]
        if modifier == "+":
            return "" if not is_set or empty else word
        if not is_set:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be unset'}")
        if empty:
            raise SubstitutionError(f"{name}: {word or 'is not allowed to be empty'}")
        return self.env[name]
