"""cli/gotemplate.py against Go's text/template rules (expected outputs as Go 1.24 prints them,
docker's functions as docker CLI 28 defines them) and docker's table/tabwriter layout."""

import pytest

from dockyard_cli.gotemplate import MISSING, Struct, Template, TemplateError, go_float, sprintf, tabwriter
from dockyard_cli.templates import go_time

DATA = {
    "A": {"B": "x", "N": None},
    "L": ["a", "b", "c"],
    "M": {"k": 1, "j": "v"},
    "S": {"b": "2", "a": "1"},
    "E": [],
    "Z": "",
    "n": 3,
    "f": 1.5,
    "t": True,
    "Nil": None,
    "Nums": [1, 2, 3],
    "Html": "<a href='x'>&</a>",
}

CASES = [
    # fields, dot, $, variables
    ("{{.A.B}}", "x"),
    ("{{.A}}", "map[B:x N:<nil>]"),
    ("{{.L}} {{.Nums}} {{.E}}", "[a b c] [1 2 3] []"),
    ("{{.M}}", "map[j:v k:1]"),
    ("{{.Nope}}|{{.Nope.Deeper}}|{{.Nil}}", "<no value>|<no value>|<no value>"),
    ("{{$}}" , None),
    ("{{with .A}}{{$.n}}{{.B}}{{end}}", "3x"),
    ("{{$x := .A.B}}{{$x}}{{$x = \"y\"}}{{$x}}", "xy"),
    ("{{$x := 1}}{{if .t}}{{$x = 2}}{{end}}{{$x}}", "2"),
    # pipelines and parentheses
    ("{{.A.B | printf \"%s!\"}}", "x!"),
    ("{{\"abc\" | len | printf \"%03d\"}}", "003"),
    ("{{printf \"%s-%s\" (index .L 0) (index .L 2)}}", "a-c"),
    ("{{(index .M \"j\")}}", "v"),
    # if / else if / else, with, range
    ("{{if .Z}}a{{else if .E}}b{{else if .n}}c{{else}}d{{end}}", "c"),
    ("{{if and .t .n}}yes{{end}}{{if or .Z .E}}no{{else}}none{{end}}", "yesnone"),
    ("{{with .Z}}x{{else}}empty{{end}}", "empty"),
    ("{{with $v := .A.B}}{{$v}}{{.}}{{end}}", "xx"),
    ("{{range .L}}<{{.}}>{{end}}", "<a><b><c>"),
    ("{{range $i, $e := .L}}{{$i}}={{$e}} {{end}}", "0=a 1=b 2=c "),
    ("{{range $k, $v := .S}}{{$k}}:{{$v}};{{end}}", "a:1;b:2;"),
    ("{{range .E}}x{{else}}none{{end}}", "none"),
    ("{{range .L}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}", "a"),
    ("{{range .L}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}", "ac"),
    ("{{range 3}}{{.}}{{end}}", "012"),
    # trim markers and comments
    ("a  {{- .n -}}  b", "a3b"),
    ("a {{- /* c */ -}} b", "ab"),
    ("{{/* a comment */}}x", "x"),
    ("{{- \"\\n\" -}}\n\n{{.n}}", "\n3"),
    # literals
    ("{{\"a\\tb\\u00e9\\x41\"}}", "a\tbéA"),
    ("{{`raw\\n`}}", "raw\\n"),
    ("{{1.5}} {{0x1F}} {{1e3}} {{-2}} {{'a'}}", "1.5 31 1000 -2 97"),
    ("{{true}} {{false}} {{print nil}}", "true false <nil>"),
    # comparison and logic
    ("{{eq .n 3}} {{eq .A.B \"y\" \"x\"}} {{ne .n 4}}", "true true true"),
    ("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.0}}", "true true true false"),
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 5}} {{or 0 \"\"}} {{not .E}}", "0 2 5  true"),
    # len, index, slice
    ("{{len .L}} {{len .M}} {{len \"héllo\"}}", "3 2 6"),
    ("{{index .L 1}} {{index .M \"k\"}} {{index .S \"zz\"}}|{{index .M \"zz\"}}", "b 1 |<no value>"),
    ("{{slice .L 1}} {{slice .L 1 2}} {{slice \"abcdef\" 2 4}}", "[b c] [b] cd"),
    # print family and fmt verbs
    ("{{print 1 2 \"a\" \"b\" 3}}", "1 2ab3"),
    ("{{println \"a\" 1}}", "a 1\n"),
    ("{{printf \"%5.2f|%-5d|%05d|%x|%X|%o|%b\" .f .n .n 255 255 8 5}}", " 1.50|3    |00003|ff|FF|10|101"),
    ("{{printf \"%q %v %t %s\" \"a\\\"b\" .L .t .L}}", "\"a\\\"b\" [a b c] true [a b c]"),
    ("{{printf \"%d %s\" \"x\" 3}}", "%!d(string=x) %!s(int=3)"),
    ("{{printf \"%s %s\" \"x\"}}", "x %!s(MISSING)"),
    ("{{printf \"%s\" \"x\" 1}}", "x%!(EXTRA int=1)"),
    ("{{printf \"%v %v\" .M .Nil}}", "map[j:v k:1] <nil>"),
    ("{{printf \"%6s|%-6s|%.2s\" \"ab\" \"ab\" \"abcd\"}}", "    ab|ab    |ab"),
    ("{{printf \"%x\" \"hi\"}} {{printf \"%%\"}}", "6869 %"),
    ("{{printf \"%v %v %v %v\" 1e21 123456.0 123456789.0 0.000001}}", "1e+21 123456 1.23456789e+08 1e-06"),
    # html, js, urlquery
    ("{{html .Html}}", "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"),
    ("{{js .Html}}", "\\u003Ca href\\u003D\\'x\\'\\u003E\\u0026\\u003C/a\\u003E"),
    ("{{urlquery \"a b&c=d/é\"}}", "a+b%26c%3Dd%2F%C3%A9"),
    # docker's functions
    ("{{json .S}} {{json .L}} {{json .Z}} {{json .Html}}", "{\"a\":\"1\",\"b\":\"2\"} [\"a\",\"b\",\"c\"] \"\" \"<a href='x'>&</a>\""),
    ("{{join .L \", \"}}", "a, b, c"),
    ("{{split \"a,b,,c\" \",\"}} {{len (split \"a,b\" \",\")}}", "[a b  c] 2"),
    ("{{lower \"AbC\"}} {{upper \"abc\"}} {{title \"hello wORLD\"}}", "abc ABC Hello WORLD"),
    ("{{truncate \"abcdef\" 3}} {{truncate \"ab\" 3}}", "abc ab"),
    ("[{{pad \"x\" 2 1}}][{{pad \"\" 2 1}}]", "[  x ][]"),
    ("{{.A.B | upper | printf \"<%s>\"}}", "<X>"),
]


@pytest.mark.parametrize("src,expected", [c for c in CASES if c[1] is not None], ids=[c[0] for c in CASES if c[1] is not None])
def test_go_rules(src, expected):
    assert Template(src).execute(DATA) == expected


def test_dollar_prints_the_whole_map_sorted():
    out = Template("{{$}}").execute({"b": [1, "x"], "a": {"c": True}, "n": None})
    assert out == "map[a:map[c:true] b:[1 x] n:<nil>]"


ERRORS = [
    # parse errors: Go's text, line only
    ("{{foo}}", "template: :1: function \"foo\" not defined"),
    ("{{.A | nope}}", "template: :1: function \"nope\" not defined"),
    ("x\n{{if .A}}", "template: :2: unexpected EOF"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{$y}}", "template: :1: undefined variable \"$y\""),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{.A", "template: :1: unclosed action"),
    # execution errors: line:column, the node, Go's reason
    ("{{.A.B.C}}", "template: :1:4: executing \"\" at <.A.B.C>: can't evaluate field C in type string"),
    ("{{.A.N.X}}", "template: :1:4: executing \"\" at <.A.N.X>: nil pointer evaluating interface {}.X"),
    ("{{index .L 5}}", "template: :1:2: executing \"\" at <index .L 5>: error calling index: index out of range: 5"),
    ("{{slice .L 2 1}}", "template: :1:2: executing \"\" at <slice .L 2 1>: error calling slice: index out of range: 2"),
    ("{{len 3}}", "template: :1:2: executing \"\" at <len 3>: error calling len: len of type int"),
    ("{{lt 1 \"a\"}}", "template: :1:2: executing \"\" at <lt 1 \"a\">: error calling lt: incompatible types for comparison"),
    ("{{join .L}}", "template: :1:2: executing \"\" at <join>: wrong number of args for join: want 2 got 1"),
    ("{{upper .n}}", "template: :1:2: executing \"\" at <upper .n>: error calling upper: wrong type for value; expected string; got int"),
]


@pytest.mark.parametrize("src,message", ERRORS, ids=[e[0] for e in ERRORS])
def test_go_errors(src, message):
    with pytest.raises(TemplateError) as exc:
        Template(src).execute(DATA)
    assert str(exc.value) == message


def test_struct_fields_methods_and_missing_field():
    row = Struct("*formatter.ContainerContext", {"ID": "abc", "Names": "web"}, {"Label": lambda k: {"a": "1"}.get(k, "")})
    assert Template('{{.ID}} {{.Names}} {{.Label "a"}}|{{.Label "b"}}|').execute(row) == "abc web 1||"
    assert Template("{{json .}}").execute(row) == '{"ID":"abc","Names":"web"}'
    with pytest.raises(TemplateError) as exc:
        Template("{{.ID}} {{.Nope}}").execute(row)
    assert str(exc.value) == ("template: :1:10: executing \"\" at <.Nope>: can't evaluate field Nope in type "
                              "*formatter.ContainerContext")
    assert getattr(exc.value, "partial") == "abc "


def test_missing_key_error_mode_is_docker_inspect():
    data = {"Id": "abc", "Config": {"Labels": {"a": "1"}}}
    t = Template("{{.Config.Labels.zz}}|{{index .Config.Labels \"zz\"}}|")
    assert t.execute(data, missing_key_error=True) == "<no value>||"  # labels: a Go map[string]string
    assert Template("{{.ID}}").execute(data, missing_key_error=True, go_names=True) == "abc"
    with pytest.raises(TemplateError, match='map has no entry for key "Nope"'):
        Template("{{.Nope}}").execute(data, missing_key_error=True)


def test_go_float_and_sprintf_edges():
    assert [go_float(x) for x in (1.0, 0.5, 123456789.0, 1e21, 1e-5, -2.5, 123456.0)] == \
        ["1", "0.5", "1.23456789e+08", "1e+21", "1e-05", "-2.5", "123456"]
    assert sprintf("%5.1f|%+d|%8.3e", 3.14159, 5, 1234.5) == "  3.1|+5|1.234e+03"
    assert sprintf("%v", MISSING) == "<nil>"


def test_tabwriter_as_docker_minwidth_10_padding_3():
    text = "CONTAINER ID\tNAMES\tX\nabc\tn1\ty\nabcdefghijklmn\tn2\t\n"
    assert tabwriter(text) == (
        "CONTAINER ID     NAMES     X\n"
        "abc              n1        y\n"
        "abcdefghijklmn   n2        \n")


def test_go_time():
    assert go_time("2026-12-06T09:03:12.472838059Z") == "2026-12-06 09:03:12.472838059 +0000 UTC"
    assert go_time("2026-12-06T09:03:12Z") == "2026-12-06 09:03:12 +0000 UTC"
    assert go_time(1700000000) == "2023-11-14 22:13:20 +0000 UTC"
