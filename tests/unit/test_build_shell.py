"""Dockerfile variable substitution (core/build/shell.py) against Docker's documented
semantics (https://docs.docker.com/reference/dockerfile/#environment-replacement and the
shell lexer of moby/BuildKit)."""

from __future__ import annotations

import pytest

from dockyard.build import dockerfile as D
from dockyard.build import shell as S

ENV = {"SET": "value", "EMPTY": "", "SPACED": "a b", "N": "3"}


@pytest.mark.parametrize("word, expected", [
    ("$SET", "value"),
    ("${SET}", "value"),
    ("${SET}_x", "value_x"),
    ("$SET_x", ""),  # the name is SET_x, unset
    ("$UNSET", ""),
    ("pre-$SET-post", "pre-value-post"),
    # ${VAR:-word}: word when unset or empty
    ("${UNSET:-default}", "default"),
    ("${EMPTY:-default}", "default"),
    ("${SET:-default}", "value"),
    # ${VAR-word}: word only when unset
    ("${UNSET-default}", "default"),
    ("${EMPTY-default}", ""),
    # ${VAR:+word}: word when set and not empty, else empty
    ("${SET:+replaced}", "replaced"),
    ("${EMPTY:+replaced}", ""),
    ("${UNSET:+replaced}", ""),
    ("${EMPTY+replaced}", "replaced"),
    # the word is itself processed: nested variables, quotes, escapes
    ("${UNSET:-$SET}", "value"),
    ("${UNSET:-${EMPTY:-${N}}}", "3"),
    ("${SET:+x${N}y}", "x3y"),
    ("${UNSET:-'a}b'}", "a}b"),
    ('${UNSET:-"$SET and more"}', "value and more"),
    (r"${UNSET:-a\}b}", "a}b"),
    ("${UNSET:-}", ""),
    ("${UNSET:-a:b-c}", "a:b-c"),
    # escapes and quotes
    (r"\$SET", "$SET"),
    (r"\${SET}", "${SET}"),
    (r"\\$SET", "\\value"),
    ("'$SET'", "$SET"),
    ('"$SET"', "value"),
    (r'"\$SET"', "$SET"),
    (r'"a\b"', r"a\b"),  # inside double quotes only \" \$ \\ are escapes
    (r'"\""', '"'),
    (r"a\ b", "a b"),
    ("abc\\", "abc"),  # a trailing escape is dropped
    # a lone $ is literal
    ("$", "$"),
    ("a$ b", "a$ b"),
])
def test_process_word(word, expected):
    assert S.process(word, ENV) == expected


def test_the_escape_directive_character():
    assert S.process("`$SET", ENV, "`") == "$SET"
    assert S.process("${UNSET:-C:\\dir}", ENV, "`") == "C:\\dir"
    df = D.parse(b"# escape=`\nFROM x\nWORKDIR ${UNSET:-C:\\a}`$x\n")
    ins = df.stages[0].instructions[0]
    assert ins.escape == "`"
    assert D.expand(ins.args, ENV, ins.escape) == "C:\\a$x"


@pytest.mark.parametrize("word, message", [
    ("${UNSET:?}", "UNSET: is not allowed to be unset"),
    ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
    ("${UNSET?must be given}", "UNSET: must be given"),
    ("${SET", "missing '}'"),
    ("${SET:-abc", "missing '}'"),
    ("${", "missing '}'"),
    ("${}", "bad substitution"),
    ("${:-x}", "bad substitution"),
    ("${SET:=x}", "unsupported modifier (:=)"),
    ("${SET*x}", "unsupported modifier (*)"),
    ("'abc", "matching single-quote"),
    ('"abc', "matching double-quote"),
])
def test_bad_substitutions_fail_with_docker_messages(word, message):
    with pytest.raises(S.SubstitutionError) as err:
        S.process(word, ENV)
    assert message in err.value.message
    assert err.value.status == 400


def test_set_but_empty_passes_the_question_mark_without_colon():
    assert S.process("${EMPTY?x}", ENV) == ""
    assert S.process("${SET:?x}", ENV) == "value"


def test_split_happens_before_substitution():
    assert S.split("""a "b c" 'd e' f\\ g ${X:-"h i"}""") == ["a", '"b c"', "'d e'", "f\\ g", '${X:-"h i"}']
    # a value with spaces stays one word (COPY $SPACED /dst copies the file "a b")
    assert D.words("$SPACED ${UNSET:-/dst/}", ENV) == ["a b", "/dst/"]
    assert D.words("  ", ENV) == []


def test_env_and_label_use_the_values_before_the_instruction():
    ins = D.parse(b'FROM x\nENV A=${N:-0} B=${A:-unset} C="${SET:+on} x" D=\\$N\n').stages[0].instructions[0]
    assert D.key_values(ins, ENV) == [("A", "3"), ("B", "unset"), ("C", "on x"), ("D", "$N")]
    old_form = D.parse(b"FROM x\nLABEL name ${UNSET:-two words}\n").stages[0].instructions[0]
    assert D.key_values(old_form, ENV) == [("name", "two words")]


@pytest.mark.parametrize("text", ["plain", "$HOME and ${X:-y}", 'say "hi" \\ back\\slash', "multi\nline\ttab", ""])
def test_quote_round_trips_without_substitution(text):
    assert D.expand(D.quote(text), ENV) == text
    assert D.words(f"{D.quote(text)} b", ENV) == [text, "b"]
