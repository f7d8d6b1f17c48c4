"""The builder's pure parts: Dockerfile parsing and checks, .dockerignore rules, durations."""

from __future__ import annotations

import pytest

from dockyard.build import dockerfile as D
from dockyard.build.builder import parse_duration
from dockyard.build.ignore import Matcher
from dockyard.errors import InvalidArgument


def test_parse_stages_continuations_comments_and_escape():
    df = D.parse(b"# escape=`\nARG V=1\nFROM busybox AS Build\n# c\nRUN echo a `\n# inside\n   b\n"
                 b"COPY --from=build --chown=1:1 [\"a b\", \"/c/\"]\nFROM scratch\nCMD [\"x\"]\n")
    assert [a.args for a in df.meta_args] == ["V=1"]
    first, second = df.stages
    assert (first.base, first.name) == ("busybox", "build")
    run, copy = first.instructions
    assert run.cmd == "run" and run.args == "echo a    b" and run.line == 5
    assert copy.flags == {"from": "build", "chown": "1:1"} and copy.json_args() == ["a b", "/c/"]
    assert second.base == "scratch" and second.instructions[0].json_args() == ["x"]
    assert df.steps == 5


@pytest.mark.parametrize("text, message", [
    (b"FROM busybox\n\nBOGUS x\n", "Dockerfile parse error line 3: unknown instruction: BOGUS"),
    (b"FROM busybox\nRUN\n", "Dockerfile parse error line 2: RUN requires at least one argument"),
    (b"FROM busybox\nCOPY --mode=1 a b\n", "Dockerfile parse error line 2: Unknown flag: mode"),
    (b"FROM a b\n", "Dockerfile parse error line 1: FROM requires either one or three arguments"),
    (b"ENV A=1\nFROM busybox\n", "Dockerfile parse error line 1: ENV is not allowed before the first FROM"),
    (b"# only a comment\n", "the Dockerfile has no FROM instruction"),
])
def test_parse_errors_name_the_line(text, message):
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        D.parse(text)


def test_blank_lines_inside_a_continuation_are_skipped():
    df = D.parse(b"FROM busybox\nRUN echo a \\\n\n   b\nCMD x\n")
    run, cmd = df.stages[0].instructions
    assert (run.args, cmd.args, cmd.line) == ("echo a    b", "x", 5)


def test_key_values_and_words():
    ins = D.parse(b'FROM x\nENV A=1 B="two words" C=$A\n').stages[0].instructions[0]
    assert D.key_values(ins, {"A": "one"}) == [("A", "1"), ("B", "two words"), ("C", "one")]
    old = D.parse(b"FROM x\nENV NAME some value\n").stages[0].instructions[0]
    assert D.key_values(old, {}) == [("NAME", "some value")]
    assert D.words("${X}/a 'b c'", {"X": "p"}) == ["p/a", "b c"]


def test_dockerignore_rules():
    m = Matcher.from_text("# comment\n*.log\n!keep.log\n/build\n**/tmp\ndocs/*.md\n!docs/README.md\n")
    assert m.excluded("a.log") and not m.excluded("keep.log")
    assert m.excluded("build") and m.excluded("build/x/y")  # a parent excluded: all below
    assert m.excluded("tmp") and m.excluded("a/b/tmp") and m.excluded("a/tmp/f")
    assert m.excluded("docs/x.md") and not m.excluded("docs/README.md") and not m.excluded("docs/sub/x.md")
    assert not m.excluded("src/a.log")  # '*' does not cross '/'
    assert not Matcher.from_text("").excluded("anything")


def test_durations():
    assert parse_duration("1m30s", "x") == 90 * 10**9
    assert parse_duration("500ms", "x") == 5 * 10**8
    with pytest.raises(InvalidArgument):
        parse_duration("10", "x")


def test_onbuild_triggers_parse_and_forbidden_ones():
    df = D.parse(b"FROM busybox\nONBUILD RUN echo $HOME \\\n  && true\nonbuild COPY --chown=1:1 a /b\n")
    first, second = df.stages[0].instructions
    assert (first.cmd, first.args) == ("onbuild", "RUN echo $HOME   && true")
    assert second.args == "COPY --chown=1:1 a /b"
    triggers = D.parse_triggers([first.args, second.args])
    assert [t.cmd for t in triggers] == ["run", "copy"] and triggers[1].flags == {"chown": "1:1"}
    for line, message in (("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
                          ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
                          ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
                          ("ONBUILD BOGUS x", "unknown instruction: BOGUS")):
        with pytest.raises(D.ParseError, match="line 2: " + message.replace("(", r"\(")):
            D.parse(f"FROM busybox\n{line}\n".encode())
    with pytest.raises(InvalidArgument, match="FROM isn't allowed"):  # an image's config, checked again
        D.parse_triggers(["FROM busybox"])
