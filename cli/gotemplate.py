"""Go's text/template, as docker's ``--format`` runs it: a lexer, a parser and an executor.

Data are Python values decoded from JSON (dicts are Go maps: a missing key prints ``<no value>``)
and :class:`Struct` rows (docker's formatter contexts: a missing field is an execution error, and
methods such as ``.Label "k"`` take arguments). Functions are Go's builtins plus docker's
(``json join split lower upper title truncate pad``). Errors are :class:`TemplateError` with Go's
text (``template: :1: function "foo" not defined``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable
from urllib.parse import quote_plus


class TemplateError(Exception):
    pass


class _Missing:
    """Go's invalid reflect.Value: a map's missing key."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


class Struct:
    """A Go struct (docker's formatter context): fixed fields, methods with arguments."""

    def __init__(self, type_name: str, fields: dict[str, Any], methods: dict[str, Callable[..., Any]] | None = None,
                 json: dict[str, Any] | None = None):
        self.type_name = type_name
        self.fields = fields
        self.methods = methods or {}
        self.json = json

    def to_json(self) -> dict[str, Any]:
        """docker's contexts marshal a map of their fields (sorted keys); ``json`` overrides."""
        if self.json is not None:
            return self.json
        return {k: self.fields[k] for k in sorted(self.fields)}


# -- printing as Go's fmt ----------------------------------------------------------------------


def go_float(f: float, verb: str = "g", prec: int = -1) -> str:
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if math.isnan(f):
        return "NaN"
    if verb == "g" and prec < 0:
        r = repr(float(f))
        if "e" in r or "E" in r:
            mant, exp = r.split("e")
        else:
            mant, exp = r, None
        # shortest digits, then %e when exp < -4 || exp >= 6 (strconv's eprec for the shortest form)
        digits = f"{abs(f):.17e}"
        s = repr(abs(float(f)))
        m = re.match(r"^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$", s)
        assert m
        ip, fp, ex = m.group(1), m.group(2) or "", int(m.group(3) or 0)
        ds = (ip + fp).lstrip("0")
        if not ds:
            return "-0" if math.copysign(1, f) < 0 else "0"
        # decimal exponent of the first significant digit
        lead = len(ip) - 1 + ex if ip.strip("0") else ex - (len(fp) - len(fp.lstrip("0"))) - 1
        ds = ds.rstrip("0") or "0"
        sign = "-" if f < 0 else ""
        if lead < -4 or lead >= 6:
            mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
            return f"{sign}{mant}e{'-' if lead < 0 else '+'}{abs(lead):02d}"
        del digits, mant, exp, r
        if lead >= len(ds) - 1:
            return sign + ds + "0" * (lead - len(ds) + 1)
        if lead >= 0:
            return sign + ds[: lead + 1] + "." + ds[lead + 1:]
        return sign + "0." + "0" * (-lead - 1) + ds
    if prec < 0:
        prec = 6
    if verb == "f":
        return f"{f:.{prec}f}"
    if verb == "e":
        s = f"{f:.{prec}e}"
        return s
    return f"{f:.{prec}g}"


def go_v(value: Any, top: bool = True) -> str:
    """``%v``."""
    if value is MISSING:
        return "<no value>" if top else "<nil>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_v(v, False) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_v(k, False)}:{go_v(v, False)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "]"
    if isinstance(value, Struct):
        return "{" + " ".join(go_v(v, False) for v in value.fields.values()) + "}"
    return str(value)


def template_str(value: Any) -> str:
    """What ``{{pipeline}}`` prints."""
    if value is MISSING or value is None:
        return "<no value>"
    return go_v(value)


def go_type(value: Any) -> str:
    if isinstance(value, Struct):
        return value.type_name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "interface {}"


def go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\a":
            out.append("\\a")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\v":
            out.append("\\v")
        elif o < 0x20 or o == 0x7f:
            out.append(f"\\x{o:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def _pad(s: str, width: int | None, flags: str, numeric: bool = False) -> str:
    if width is None or len(s) >= width:
        return s
    if "-" in flags:
        return s + " " * (width - len(s))
    if "0" in flags and numeric:
        sign = s[0] if s[:1] in "+-" else ""
        return sign + "0" * (width - len(s)) + s[len(sign):]
    return " " * (width - len(s)) + s


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, arg: Any) -> str:
    def bad() -> str:
        if arg is None or arg is MISSING:
            return f"%!{verb}(<nil>)"
        return f"%!{verb}({go_type(arg)}={go_v(arg, False)})"

    if isinstance(arg, (list, tuple)) and verb not in "vTq" and not (verb in "xX" and False):
        return "[" + " ".join(_fmt_one(verb, flags, width, prec, a) for a in arg) + "]"
    if verb == "T":
        return _pad(go_type(arg) if arg is not None else "<nil>", width, flags)
    if verb == "v":
        if isinstance(arg, float) and prec is not None:
            return _pad(go_float(arg, "g", prec), width, flags, True)
        s = go_v(arg, False)
        if "+" in flags and isinstance(arg, (int, float)) and not isinstance(arg, bool) and arg >= 0:
            s = "+" + s
        return _pad(s, width, flags, isinstance(arg, (int, float)) and not isinstance(arg, bool))
    if verb == "s":
        if isinstance(arg, str):
            s = arg if prec is None else arg[:prec]
            return _pad(s, width, flags)
        if isinstance(arg, (bool, int, float)) or arg is None:
            return bad()
        s = go_v(arg, False)
        return _pad(s if prec is None else s[:prec], width, flags)
    if verb == "q":
        if isinstance(arg, str):
            return _pad(go_quote(arg), width, flags)
        if isinstance(arg, int) and not isinstance(arg, bool):
            return _pad("'" + chr(arg) + "'", width, flags)
        if isinstance(arg, (list, tuple)):
            return "[" + " ".join(_fmt_one(verb, flags, None, prec, a) for a in arg) + "]"
        return bad()
    if verb == "t":
        if isinstance(arg, bool):
            return _pad("true" if arg else "false", width, flags)
        return bad()
    if verb in "dboxXc":
        if isinstance(arg, bool) or not isinstance(arg, int):
            if verb in "xX" and isinstance(arg, str):
                h = arg.encode().hex()
                return _pad(h.upper() if verb == "X" else h, width, flags)
            if verb in "xX" and isinstance(arg, float):
                return bad()
            return bad()
        if verb == "c":
            return _pad(chr(arg), width, flags)
        base = {"d": "d", "b": "b", "o": "o", "x": "x", "X": "X"}[verb]
        s = format(abs(arg), base)
        if prec is not None:
            s = s.rjust(prec, "0")
        if "#" in flags and verb in "xX":
            s = ("0x" if verb == "x" else "0X") + s
        if "#" in flags and verb == "o":
            s = "0" + s
        if arg < 0:
            s = "-" + s
        elif "+" in flags:
            s = "+" + s
        elif " " in flags:
            s = " " + s
        return _pad(s, width, flags, prec is None)
    if verb in "feEgG":
        if isinstance(arg, bool) or not isinstance(arg, (int, float)):
            return bad()
        if isinstance(arg, int):
            return f"%!{verb}(int={arg})"
        if verb in "gG" and prec is None:
            s = go_float(arg)
        else:
            p = 6 if prec is None else prec
            s = format(arg, f".{p}{verb}")
        if "+" in flags and arg >= 0:
            s = "+" + s
        return _pad(s, width, flags, True)
    return f"%!{verb}({go_type(arg)}={go_v(arg, False)})"


def sprintf(fmt: str, *args: Any) -> str:
    out: list[str] = []
    i = 0
    argi = 0
    pos = 0
    while True:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _VERB_RE.match(fmt, j)
        if not m:
            out.append("%!(NOVERB)")
            break
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        pos = m.end()
        if verb == "%":
            out.append("%")
            continue
        w: int | None = None
        p: int | None = None
        if width == "*":
            w = args[argi] if argi < len(args) else None
            argi += 1
        elif width:
            w = int(width)
        if prec == "*":
            p = args[argi] if argi < len(args) else None
            argi += 1
        elif prec is not None:
            p = int(prec)
        elif "." in m.group(0):
            p = 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, w, p, args[argi]))
        argi += 1
        i += 1
    if argi < len(args):
        extra = ", ".join(f"{go_type(a)}={go_v(a, False)}" if a is not None else "<nil>" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def sprint(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i > 0 and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_v(a, False))
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(go_v(a, False) for a in args) + "\n"


# -- functions ---------------------------------------------------------------------------------


def truth(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, Struct):
        return True
    return bool(v)


def _basic_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if v is None or v is MISSING:
        return "nil"
    return "other"


def f_eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise TemplateError("missing argument for comparison")
    ka = _basic_kind(a)
    for b in bs:
        kb = _basic_kind(b)
        if ka == "other" or kb == "other":
            if ka == "nil" or kb == "nil":
                if a is b or (a in (None, MISSING) and b in (None, MISSING)):
                    return True
                continue
            raise TemplateError("error calling eq: non-comparable type " + go_v(a, False) + ": " + go_type(a))
        if ka != kb and not ({ka, kb} <= {"int", "float"}):
            if "nil" in (ka, kb):
                if ka == kb:
                    return True
                continue
            raise TemplateError("error calling eq: incompatible types for comparison")
        if a == b:
            return True
    return False


def _cmp(name: str, a: Any, b: Any) -> int:
    ka, kb = _basic_kind(a), _basic_kind(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        if ka == "bool" or kb == "bool":
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        raise TemplateError(f"error calling {name}: invalid type for comparison")
    if ka != kb and not ({ka, kb} <= {"int", "float"}):
        raise TemplateError(f"error calling {name}: incompatible types for comparison")
    return (a > b) - (a < b)


def f_len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, dict)):
        return len(v)
    if v is None or v is MISSING:
        raise TemplateError("error calling len: len of nil pointer")
    raise TemplateError(f"error calling len: len of type {go_type(v)}")


def _as_int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TemplateError(f"error calling {what}: cannot index slice/array with type {go_type(v)}")
    return v


def _string_map(d: dict[Any, Any]) -> bool:
    """A JSON object that Go would type map[string]string (labels, options): a missing key is "" for index."""
    return all(isinstance(v, str) for v in d.values())


def f_index(item: Any, *indexes: Any) -> Any:
    for ix in indexes:
        if item is None:
            return ""  # a null labels map: docker indexes the typed (nil) map[string]string
        if item is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(ix, str):
                raise TemplateError(f"error calling index: value has type {go_type(ix)}; should be string")
            item = item.get(ix, "" if _string_map(item) else MISSING)
        elif isinstance(item, (list, tuple, str)):
            i = _as_int(ix, "index")
            if i < 0 or i >= len(item):
                raise TemplateError(f"error calling index: index out of range: {i}")
            item = item[i] if not isinstance(item, str) else item.encode()[i]
        else:
            raise TemplateError(f"error calling index: can't index item of type {go_type(item)}")
    return item


def f_slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, (list, tuple, str)):
        raise TemplateError(f"error calling slice: can't slice item of type {go_type(item)}")
    if len(indexes) > 3 or (len(indexes) == 3 and isinstance(item, str)):
        raise TemplateError(f"error calling slice: too many slice indexes: {len(indexes)}")
    n = len(item.encode() if isinstance(item, str) else item)
    idx = [_as_int(i, "slice") for i in indexes]
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else n
    if lo < 0 or hi > n or lo > hi:
        raise TemplateError(f"error calling slice: index out of range: {hi if hi > n else lo}")
    if isinstance(item, str):
        return item.encode()[lo:hi].decode(errors="replace")
    return list(item[lo:hi])


def html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\ufffd"))


def js_escape(s: str) -> str:
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or not ch.isprintable():
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _eval_args_str(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


# Go struct field names whose JSON name differs (docker inspect runs the template on the Go struct first)
GO_FIELD_NAMES = {"ID": "Id", "APIVersion": "ApiVersion", "CPUShares": "CpuShares", "CPUPeriod": "CpuPeriod",
                  "CPUQuota": "CpuQuota", "IPAddress": "IPAddress"}


JSON_ONLY_NAMES = set(GO_FIELD_NAMES.values()) - set(GO_FIELD_NAMES)


# keys whose JSON objects Go types as maps (marshalled with sorted keys); other objects are structs
MAP_KEYS = {"Labels", "Options", "DriverOpts", "Details", "Sysctls", "StorageOpt", "Tmpfs", "Annotations",
            "ExposedPorts", "Volumes", "Ports", "Networks", "LogConfig.Config", "Config.Labels", "Data"}


def to_json_value(v: Any, key: str | None = None, top: bool = True, sort_maps: bool = True) -> Any:
    """Plain JSON data for ``v``. Go marshals maps with sorted keys: the value itself when it is a
    string map (``json .Config.Labels``), and objects under :data:`MAP_KEYS` names."""
    if isinstance(v, Struct):
        return {k: to_json_value(x, k, False, sort_maps) for k, x in v.to_json().items()}
    if v is MISSING:
        return None
    if isinstance(v, dict):
        sort = sort_maps and bool(v) and ((top and _string_map(v)) or key in MAP_KEYS)
        items = sorted(v.items()) if sort else v.items()
        return {k: to_json_value(x, k, False, sort_maps) for k, x in items}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x, None, False, sort_maps) for x in v]
    return v


def go_json(v: Any, escape_html: bool = True, sort_maps: bool = True) -> str:
    """Go's encoding/json: compact; ``<>&`` as \\u003c... unless escape_html is off; ``sort_maps``
    off: the daemon's order kept (docker re-marshals inspect's raw JSON)."""
    s = json.dumps(to_json_value(v, sort_maps=sort_maps), separators=(",", ":"), ensure_ascii=False)
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if escape_html:
        s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return s


def docker_json(v: Any) -> str:
    """docker's ``json`` function (SetEscapeHTML(false)); a formatter context marshals itself
    with json.Marshal, which escapes HTML."""
    return go_json(v, escape_html=isinstance(v, Struct))


def _need_str(name: str, v: Any, pos: int = 1) -> str:
    if not isinstance(v, str):
        raise TemplateError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def f_join(a: Any, sep: Any) -> str:
    if not isinstance(a, (list, tuple)) or not all(isinstance(x, str) for x in a):
        raise TemplateError(f"wrong type for value; expected []string; got {go_type(a)}")
    return _need_str("join", sep).join(a)


def f_title(s: Any) -> str:
    s = _need_str("title", s)
    out, prev = [], " "
    for ch in s:
        out.append(ch.upper() if not (prev.isalnum() or prev in "_'") else ch)
        prev = ch
    return "".join(out)


def f_truncate(s: Any, n: Any) -> str:
    s = _need_str("truncate", s)
    b = s.encode()
    return s if len(b) < n else b[:n].decode(errors="replace")


def f_pad(s: Any, prefix: Any, suffix: Any) -> str:
    s = _need_str("pad", s)
    return s if s == "" else " " * prefix + s + " " * suffix


FUNCS: dict[str, Callable[..., Any]] = {
    "and": None,  # type: ignore[dict-item]  (short-circuit, evaluated by the executor)
    "or": None,  # type: ignore[dict-item]
    "not": lambda v: not truth(v),
    "eq": f_eq,
    "ne": lambda a, b: not f_eq(a, b),
    "lt": lambda a, b: _cmp("lt", a, b) < 0,
    "le": lambda a, b: _cmp("le", a, b) <= 0,
    "gt": lambda a, b: _cmp("gt", a, b) > 0,
    "ge": lambda a, b: _cmp("ge", a, b) >= 0,
    "len": f_len,
    "index": f_index,
    "slice": f_slice,
    "print": sprint,
    "printf": lambda f, *a: sprintf(_need_str("printf", f), *a),
    "println": sprintln,
    "html": lambda *a: html_escape(_eval_args_str(a)),
    "js": lambda *a: js_escape(_eval_args_str(a)),
    "urlquery": lambda *a: quote_plus(_eval_args_str(a), safe="~"),
    "call": None,  # type: ignore[dict-item]
    # docker's (cli/templates.basicFunctions)
    "json": docker_json,
    "split": lambda s, sep: _need_str("split", s).split(_need_str("split", sep)) if sep != "" else list(s),
    "join": f_join,
    "title": f_title,
    "lower": lambda s: _need_str("lower", s).lower(),
    "upper": lambda s: _need_str("upper", s).upper(),
    "pad": f_pad,
    "truncate": f_truncate,
}

# docker's HeaderFunctions: rendering a table header, functions pass the header name through
HEADER_FUNCS: dict[str, Callable[..., Any]] = {
    "json": lambda v: v, "split": lambda v, _s: v, "join": lambda v, _s: v, "title": lambda v: v,
    "lower": lambda v: v, "upper": lambda v: v, "truncate": lambda v, _n: v, "pad": lambda v, _a, _b: v,
}

_ARITY = {"not": (1, 1), "eq": (1, None), "ne": (2, 2), "lt": (2, 2), "le": (2, 2), "gt": (2, 2), "ge": (2, 2),
          "len": (1, 1), "index": (1, None), "slice": (1, None), "printf": (1, None), "json": (1, 1),
          "split": (2, 2), "join": (2, 2), "title": (1, 1), "lower": (1, 1), "upper": (1, 1), "pad": (3, 3),
          "truncate": (2, 2), "and": (1, None), "or": (1, None)}


# -- lexer -------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"""
    (?P<space>[ \t\r\n]+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<number>[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)i?)
  | (?P<field>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<dot>\.)
  | (?P<variable>\$[A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
""", re.X)

_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"', "'": "'"}


def unquote(s: str) -> str:
    """A Go interpreted string literal (without its quotes)."""
    out, i = [], 0
    while i < len(s):
        ch = s[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        c = s[i + 1]
        if c in _ESC:
            out.append(_ESC[c])
            i += 2
        elif c == "x":
            out.append(bytes([int(s[i + 2:i + 4], 16)]).decode("latin-1"))
            i += 4
        elif c == "u":
            out.append(chr(int(s[i + 2:i + 6], 16)))
            i += 6
        elif c == "U":
            out.append(chr(int(s[i + 2:i + 10], 16)))
            i += 10
        elif c in "01234567":
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            raise ValueError("invalid syntax")
    return "".join(out)


class Tok:
    __slots__ = ("kind", "text", "pos")

    def __init__(self, kind: str, text: str, pos: int):
        self.kind, self.text, self.pos = kind, text, pos


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _col_of(src: str, pos: int) -> int:
    return pos - (src.rfind("\n", 0, pos) + 1)


# -- nodes -------------------------------------------------------------------------------------


class Node:
    pos = 0


class Text(Node):
    def __init__(self, text: str):
        self.text = text


class Action(Node):
    def __init__(self, pipe: "Pipe", pos: int):
        self.pipe, self.pos = pipe, pos


class Pipe(Node):
    def __init__(self, decls: list[str], assign: bool, cmds: list["Cmd"], pos: int):
        self.decls, self.assign, self.cmds, self.pos = decls, assign, cmds, pos


class Cmd(Node):
    def __init__(self, args: list[Node], pos: int):
        self.args, self.pos = args, pos
        if args:
            self.pos = args[0].pos

    def __str__(self) -> str:
        return " ".join(str(a) for a in self.args)


class Field(Node):
    def __init__(self, names: list[str], pos: int):
        self.names, self.pos = names, pos

    def __str__(self) -> str:
        return "." + ".".join(self.names)


class Var(Node):
    def __init__(self, name: str, names: list[str], pos: int):
        self.name, self.names, self.pos = name, names, pos

    def __str__(self) -> str:
        return self.name + "".join("." + n for n in self.names)


class Chain(Node):
    def __init__(self, node: Node, names: list[str], pos: int):
        self.node, self.names, self.pos = node, names, pos

    def __str__(self) -> str:
        return str(self.node) + "".join("." + n for n in self.names)


class Dot(Node):
    def __init__(self, pos: int):
        self.pos = pos

    def __str__(self) -> str:
        return "."


class Const(Node):
    def __init__(self, value: Any, text: str, pos: int):
        self.value, self.text, self.pos = value, text, pos

    def __str__(self) -> str:
        return self.text


class Ident(Node):
    def __init__(self, name: str, pos: int):
        self.name, self.pos = name, pos

    def __str__(self) -> str:
        return self.name


class PipeArg(Node):
    def __init__(self, pipe: Pipe, pos: int):
        self.pipe, self.pos = pipe, pos

    def __str__(self) -> str:
        return "(" + " | ".join(" ".join(str(a) for a in c.args) for c in self.pipe.cmds) + ")"


class Branch(Node):
    def __init__(self, kind: str, pipe: Pipe, body: list[Node], else_body: list[Node] | None, pos: int):
        self.kind, self.pipe, self.body, self.else_body, self.pos = kind, pipe, body, else_body, pos


class Ctl(Node):
    def __init__(self, kind: str, pos: int):
        self.kind, self.pos = kind, pos


# -- parser ------------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Template:
    def __init__(self, src: str, funcs: dict[str, Callable[..., Any]] | None = None, name: str = ""):
        self.src = src
        self.name = name
        self.funcs = dict(FUNCS)
        if funcs:
            self.funcs.update(funcs)
        self.root = _Parser(self).parse()

    def execute(self, data: Any, funcs: dict[str, Callable[..., Any]] | None = None,
                missing_key_error: bool = False, root_type: str | None = None, go_names: bool = False) -> str:
        """``missing_key_error``: Go's ``missingkey=error`` (docker inspect's raw-JSON pass), except on
        string-valued maps (labels, options: Go structs type them map[string]string)."""
        ex = _Exec(self, data, dict(self.funcs, **(funcs or {})))
        ex.go_names = go_names
        try:
            return ex.run(self.root, data, missing_key_error, root_type)
        except TemplateError as exc:
            exc.partial = "".join(ex.out)  # type: ignore[attr-defined]  (what Go wrote before failing)
            raise


class _Parser:
    def __init__(self, t: Template):
        self.t = t
        self.src = t.src
        self.items: list[tuple[str, Any, int]] = []  # ("text", str, pos) | ("action", [Tok], pos)
        self.i = 0
        self.vars: list[list[str]] = [["$"]]
        self.range_depth = 0

    def error(self, msg: str, pos: int) -> TemplateError:
        return TemplateError(f"template: {self.t.name}:{_line_of(self.src, pos)}: {msg}")

    # split text/actions with trim markers
    def lex(self) -> None:
        src, pos, n = self.src, 0, len(self.src)
        trim_next = False
        while pos <= n:
            j = src.find("{{", pos)
            if j < 0:
                text = src[pos:]
                if trim_next:
                    text = text.lstrip(" \t\r\n")
                if text:
                    self.items.append(("text", text, pos))
                break
            text = src[pos:j]
            if trim_next:
                text = text.lstrip(" \t\r\n")
            start = j + 2
            if src.startswith("-", start) and start + 1 < n and src[start + 1] in " \t\r\n":
                text = text.rstrip(" \t\r\n")
                start += 2
            if text:
                self.items.append(("text", text, pos))
            # comment
            k = start
            while k < n and src[k] in " \t\r\n":
                k += 1
            if src.startswith("/*", k if start != j + 2 else start):
                cstart = k if start != j + 2 else start
                end = src.find("*/", cstart + 2)
                if end < 0:
                    raise self.error("unclosed comment", j)
                rest = end + 2
                m = re.match(r"[ \t\r\n]+-\}\}|\}\}", src[rest:])
                if not m:
                    raise self.error("comment ends before closing delimiter", j)
                trim_next = m.group(0) != "}}"
                pos = rest + m.end()
                continue
            toks, pos, trim_next = self.lex_action(start, j)
            self.items.append(("action", toks, j))

    def lex_action(self, pos: int, open_pos: int) -> tuple[list[Tok], int, bool]:
        src, n = self.src, len(self.src)
        toks: list[Tok] = []
        depth = 0
        while True:
            if pos >= n:
                raise self.error("unclosed action", open_pos)
            if src.startswith("}}", pos) and depth == 0:
                return toks, pos + 2, False
            m = re.match(r"[ \t\r\n]+-\}\}", src[pos:])
            if m and depth == 0:
                return toks, pos + m.end(), True
            m = _TOKEN_RE.match(src, pos)
            if not m:
                if src.startswith("}}", pos):
                    raise self.error("unclosed left paren", open_pos)
                raise self.error(f"unexpected {src[pos]!r} in command" if src[pos] not in "}" else
                                 "unexpected \"}\" in operand", open_pos)
            kind = m.lastgroup or ""
            text = m.group(0)
            if kind == "space":
                if "\n" in text or "\r" in text:
                    pass
                toks.append(Tok("space", text, pos))
            else:
                if kind == "lparen":
                    depth += 1
                elif kind == "rparen":
                    depth -= 1
                    if depth < 0:
                        raise self.error("unexpected right paren", open_pos)
                # a number followed by a letter (e.g. 3k) is an error in Go; fields after ) are chains
                toks.append(Tok(kind, text, pos))
            pos = m.end()

    def parse(self) -> list[Node]:
        self.lex()
        body, end = self.parse_list(top=True)
        return body

    def parse_list(self, top: bool = False) -> tuple[list[Node], tuple[str, list[Tok], int] | None]:
        nodes: list[Node] = []
        while self.i < len(self.items):
            kind, val, pos = self.items[self.i]
            self.i += 1
            if kind == "text":
                nodes.append(Text(val))
                continue
            toks = [t for t in val if t.kind != "space"]
            if not toks:
                raise self.error("missing value for command", pos)
            head = toks[0]
            if head.kind == "ident" and head.text in ("end", "else"):
                if top:
                    raise self.error(f"unexpected {{{{{head.text}}}}}", pos)
                return nodes, (head.text, val, pos)
            if head.kind == "ident" and head.text in ("if", "range", "with"):
                nodes.append(self.parse_branch(head.text, val, pos))
                continue
            if head.kind == "ident" and head.text in ("break", "continue"):
                if not self.range_depth:
                    raise self.error(f"{{{{{head.text}}}}} outside {{{{range}}}}", pos)
                nodes.append(Ctl(head.text, pos))
                continue
            if head.kind == "ident" and head.text in ("define", "template", "block"):
                raise self.error(f"{head.text} is not supported in --format", pos)
            nodes.append(Action(self.parse_pipe(val, pos, "command"), pos))
        if not top:
            raise self.error("unexpected EOF", len(self.src))
        return nodes, None

    def parse_branch(self, kind: str, toks: list[Tok], pos: int) -> Branch:
        # skip the keyword
        idx = next(i for i, t in enumerate(toks) if t.kind != "space") + 1
        self.vars.append(list(self.vars[-1]))
        pipe = self.parse_pipe(toks[idx:], pos, kind, decl_ok=True, range_=(kind == "range"))
        if kind == "range":
            self.range_depth += 1
        body, end = self.parse_list()
        if kind == "range":
            self.range_depth -= 1
        else_body = None
        assert end
        if end[0] == "else":
            rest = [t for t in end[1] if t.kind != "space"][1:]
            if rest and rest[0].kind == "ident" and rest[0].text in ("if", "with") and kind in ("if", "with"):
                # {{else if ...}}: a nested branch that consumes our {{end}}
                if rest[0].text != kind:
                    raise self.error(f"expected end; found {{{{else {rest[0].text}}}}}", end[2]) if False else \
                        None  # Go allows "else with" only inside with, "else if" only inside if
                idx2 = next(i for i, t in enumerate(end[1]) if t.kind == "ident" and t.text == rest[0].text)
                self.vars.pop()
                self.vars.append(list(self.vars[-1]))
                nested = self.parse_branch_after_else(rest[0].text, end[1][idx2 + 1:], end[2])
                self.vars.pop()
                return Branch(kind, pipe, body, [nested], pos)
            if rest:
                raise self.error(f"unexpected {rest[0].text!r} in else" if False else "unexpected input after else", end[2])
            self.vars.pop()
            self.vars.append(list(self.vars[-1]))
            else_body, end = self.parse_list()
            assert end
            if end[0] != "end":
                raise self.error("expected end; found {{else}}", end[2])
        self.vars.pop()
        rest = [t for t in end[1] if t.kind != "space"][1:]
        if rest:
            raise self.error(f"unexpected {rest[0].text} in end", end[2])
        return Branch(kind, pipe, body, else_body, pos)

    def parse_branch_after_else(self, kind: str, toks: list[Tok], pos: int) -> Branch:
        self.vars.append(list(self.vars[-1]))
        pipe = self.parse_pipe(toks, pos, kind, decl_ok=True)
        body, end = self.parse_list()
        assert end
        else_body = None
        if end[0] == "else":
            rest = [t for t in end[1] if t.kind != "space"][1:]
            if rest and rest[0].kind == "ident" and rest[0].text == kind:
                idx2 = next(i for i, t in enumerate(end[1]) if t.kind == "ident" and t.text == kind)
                nested = self.parse_branch_after_else(kind, end[1][idx2 + 1:], end[2])
                self.vars.pop()
                return Branch(kind, pipe, body, [nested], pos)
            else_body, end = self.parse_list()
            assert end
            if end[0] != "end":
                raise self.error("expected end; found {{else}}", end[2])
        self.vars.pop()
        return Branch(kind, pipe, body, else_body, pos)

    def parse_pipe(self, toks: list[Tok], pos: int, context: str, decl_ok: bool = True,
                   range_: bool = False) -> Pipe:
        toks = [t for t in toks if t.kind != "space"] if not any(t.kind == "space" for t in toks) else toks
        # declarations: $x := / $x = / $i, $e :=
        sig = [t for t in toks if t.kind != "space"]
        decls: list[str] = []
        assign = False
        k = 0
        if sig and sig[0].kind == "variable":
            if len(sig) > 1 and sig[1].kind in ("declare", "assign"):
                decls, assign, k = [sig[0].text], sig[1].kind == "assign", 2
            elif range_ and len(sig) > 3 and sig[1].kind == "comma" and sig[2].kind == "variable" and \
                    sig[3].kind in ("declare", "assign"):
                decls, assign, k = [sig[0].text, sig[2].text], sig[3].kind == "assign", 4
            elif len(sig) > 1 and sig[1].kind == "comma":
                raise self.error("too many declarations in " + context, pos)
        if decls:
            for d in decls:
                if assign:
                    if d not in self.vars[-1]:
                        raise self.error(f"undefined variable \"{d}\"", pos)
                else:
                    self.vars[-1].append(d)
            # drop the declaration tokens, keep spacing info for the rest
            seen = 0
            cut = 0
            for idx, t in enumerate(toks):
                if t.kind != "space":
                    seen += 1
                    if seen == k:
                        cut = idx + 1
                        break
            toks = toks[cut:]
        p = _TokStream(toks)
        cmds = self.parse_cmds(p, pos, context, top=True)
        if not cmds:
            raise self.error(f"missing value for {context}", pos)
        return Pipe(decls, assign, cmds, pos)

    def parse_cmds(self, p: "_TokStream", pos: int, context: str, top: bool) -> list[Cmd]:
        cmds: list[Cmd] = []
        args: list[Node] = []
        while True:
            t = p.peek_nonspace()
            if t is None or t.kind == "rparen":
                break
            if t.kind == "pipe":
                p.next_nonspace()
                if not args:
                    raise self.error("missing value for command", pos)
                cmds.append(Cmd(args, pos))
                args = []
                continue
            if args and not p.had_space() and t.kind not in ("pipe", "rparen"):
                pass
            args.append(self.parse_operand(p, pos))
        if args:
            cmds.append(Cmd(args, pos))
        elif cmds:
            raise self.error("missing value for command", pos)
        for i, c in enumerate(cmds):
            first = c.args[0]
            if i > 0 and isinstance(first, Const):
                raise self.error(f"non executable command in pipeline stage {i + 1}", pos)
            if len(c.args) > 1 and not isinstance(first, (Ident, Field, Var, Chain)):
                raise self.error(f"can't give argument to non-function {first}", pos)
        return cmds

    def parse_operand(self, p: "_TokStream", pos: int) -> Node:
        t = p.next_nonspace()
        assert t is not None
        node: Node
        if t.kind == "field":
            names = [t.text[1:]]
            at = t.pos
            while (n := p.peek()) is not None and n.kind == "field":
                if len(names) == 1:
                    at = n.pos  # Go positions a chain at its second field
                p.next()
                names.append(n.text[1:])
            return Field(names, at)
        if t.kind == "variable":
            if t.text not in self.vars[-1]:
                raise self.error(f"undefined variable \"{t.text}\"", pos)
            names = []
            at = t.pos
            while (n := p.peek()) is not None and n.kind == "field":
                if not names:
                    at = n.pos
                p.next()
                names.append(n.text[1:])
            return Var(t.text, names, at)
        if t.kind == "dot":
            node = Dot(t.pos)
        elif t.kind == "string":
            try:
                node = Const(unquote(t.text[1:-1]), t.text, t.pos)
            except (ValueError, IndexError):
                raise self.error(f"invalid syntax: {t.text}", pos) from None
        elif t.kind == "raw":
            node = Const(t.text[1:-1].replace("\r", ""), t.text, t.pos)
        elif t.kind == "char":
            try:
                v = unquote(t.text[1:-1])
            except (ValueError, IndexError):
                raise self.error(f"malformed character constant: {t.text}", pos) from None
            if len(v) != 1:
                raise self.error(f"malformed character constant: {t.text}", pos)
            node = Const(ord(v), t.text, t.pos)
        elif t.kind == "number":
            node = Const(self.number(t.text, pos), t.text, t.pos)
        elif t.kind == "lparen":
            inner = self.parse_cmds(p, pos, "parenthesized pipeline", top=False)
            close = p.next_nonspace()
            if close is None or close.kind != "rparen":
                raise self.error("unclosed left paren", pos)
            if not inner:
                raise self.error("missing value for parenthesized pipeline", pos)
            node = PipeArg(Pipe([], False, inner, t.pos), t.pos)
        elif t.kind == "ident":
            if t.text == "true":
                node = Const(True, "true", t.pos)
            elif t.text == "false":
                node = Const(False, "false", t.pos)
            elif t.text == "nil":
                node = Const(None, "nil", t.pos)
            else:
                if t.text not in self.t.funcs:
                    raise self.error(f"function \"{t.text}\" not defined", pos)
                return Ident(t.text, t.pos)
        else:
            raise self.error(f"unexpected {t.text!r} in operand" if t.kind != "rparen" else
                             "unexpected right paren", pos)
        names = []
        while (n := p.peek()) is not None and n.kind == "field":
            p.next()
            names.append(n.text[1:])
        if names:
            if isinstance(node, Const) and node.value is None:
                raise self.error("nil is not a command", pos)
            if isinstance(node, Const):
                raise self.error(f"unexpected . after term {node.text!r}", pos)
            return Chain(node, names, t.pos)
        return node

    def number(self, text: str, pos: int) -> Any:
        s = text.replace("_", "")
        try:
            if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", s):
                return int(s, 16)
            if re.fullmatch(r"[+-]?0[bB][01]+", s):
                return int(s, 2)
            if re.fullmatch(r"[+-]?0[oO][0-7]+", s):
                return int(s, 8)
            if re.fullmatch(r"[+-]?0[0-7]+", s):
                return int(s, 8)
            if re.fullmatch(r"[+-]?\d+", s):
                return int(s)
            f = float(s)
            return int(f) if f.is_integer() and "e" not in s.lower() and False else f
        except ValueError:
            raise self.error(f"bad number syntax: \"{text}\"", pos) from None


class _TokStream:
    def __init__(self, toks: list[Tok]):
        self.toks = toks
        self.i = 0

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> Tok | None:
        t = self.peek()
        self.i += 1
        return t

    def peek_nonspace(self) -> Tok | None:
        j = self.i
        while j < len(self.toks) and self.toks[j].kind == "space":
            j += 1
        return self.toks[j] if j < len(self.toks) else None

    def next_nonspace(self) -> Tok | None:
        while self.i < len(self.toks) and self.toks[self.i].kind == "space":
            self.i += 1
        return self.next()

    def had_space(self) -> bool:
        return self.i > 0 and self.toks[self.i - 1].kind == "space"


# -- executor ----------------------------------------------------------------------------------


class _Exec:
    def __init__(self, t: Template, data: Any, funcs: dict[str, Callable[..., Any]]):
        self.t = t
        self.out: list[str] = []
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.funcs = funcs
        self.node: Node | None = None
        self.missing_key_error = False
        self.go_names = False
        self.root: Any = None
        self.root_type: str | None = None

    def error(self, msg: str, node: Node | None = None) -> TemplateError:
        node = node or self.node
        src = self.t.src
        pos = node.pos if node else 0
        where = f"{_line_of(src, pos)}:{_col_of(src, pos)}"
        return TemplateError(f"template: {self.t.name}:{where}: executing \"{self.t.name}\" at <{node}>: {msg}")

    def run(self, root: list[Node], data: Any, missing_key_error: bool, root_type: str | None) -> str:
        self.missing_key_error = missing_key_error
        self.root, self.root_type = data, root_type
        self.walk_list(root, data)
        return "".join(self.out)

    def walk_list(self, nodes: list[Node], dot: Any) -> None:
        for n in nodes:
            self.walk(n, dot)

    def walk(self, n: Node, dot: Any) -> None:
        if isinstance(n, Text):
            self.out.append(n.text)
        elif isinstance(n, Action):
            v = self.eval_pipe(n.pipe, dot)
            if not n.pipe.decls:
                self.out.append(template_str(v))
        elif isinstance(n, Branch):
            mark = len(self.vars)
            try:
                if n.kind == "range":
                    self.walk_range(n, dot)
                else:
                    v = self.eval_pipe(n.pipe, dot)
                    if truth(v):
                        self.walk_list(n.body, v if n.kind == "with" else dot)
                    elif n.else_body is not None:
                        self.walk_list(n.else_body, dot)
            finally:
                del self.vars[mark:]
        elif isinstance(n, Ctl):
            raise _Break() if n.kind == "break" else _Continue()

    def walk_range(self, n: Branch, dot: Any) -> None:
        v = self.eval_pipe(n.pipe, dot, declare=False)
        if isinstance(v, dict):
            items = sorted(v.items(), key=lambda kv: kv[0])
        elif isinstance(v, (list, tuple)):
            items = list(enumerate(v))
        elif isinstance(v, int) and not isinstance(v, bool):
            items = [(i, i) for i in range(v)]
        elif v is None or v is MISSING:
            items = []
        else:
            raise self.error(f"range can't iterate over {go_v(v, False)}", n.pipe.cmds[0].args[0])
        if not items:
            if n.else_body is not None:
                self.walk_list(n.else_body, dot)
            return
        mark = len(self.vars)
        for k, e in items:
            del self.vars[mark:]
            if len(n.pipe.decls) == 1:
                self.set_var(n.pipe.decls[0], e, n.pipe.assign)
            elif len(n.pipe.decls) == 2:
                self.set_var(n.pipe.decls[0], k, n.pipe.assign)
                self.set_var(n.pipe.decls[1], e, n.pipe.assign)
            try:
                self.walk_list(n.body, e)
            except _Break:
                break
            except _Continue:
                continue

    def set_var(self, name: str, value: Any, assign: bool) -> None:
        if assign:
            for i in range(len(self.vars) - 1, -1, -1):
                if self.vars[i][0] == name:
                    self.vars[i] = (name, value)
                    return
        self.vars.append((name, value))

    def get_var(self, name: str) -> Any:
        for n, v in reversed(self.vars):
            if n == name:
                return v
        raise self.error(f"undefined variable: {name}")

    def eval_pipe(self, pipe: Pipe, dot: Any, declare: bool = True) -> Any:
        value: Any = MISSING
        final = None
        for i, cmd in enumerate(pipe.cmds):
            value = self.eval_cmd(cmd, dot, final if i > 0 else None, has_final=i > 0)
            final = value
        if declare:
            for d in pipe.decls:
                self.set_var(d, value, pipe.assign)
        return value

    def eval_cmd(self, cmd: Cmd, dot: Any, final: Any, has_final: bool) -> Any:
        first = cmd.args[0]
        self.node = first
        if isinstance(first, Field):
            return self.eval_field_chain(dot, dot, first, first.names, cmd.args, final, has_final)
        if isinstance(first, Chain):
            base = self.eval_arg(first.node, dot)
            return self.eval_field_chain(dot, base, first, first.names, cmd.args, final, has_final)
        if isinstance(first, Var):
            v = self.get_var(first.name)
            if first.names:
                return self.eval_field_chain(dot, v, first, first.names, cmd.args, final, has_final)
            if len(cmd.args) > 1 or has_final:
                raise self.error(f"can't give argument to non-function {first}", first)
            return v
        if isinstance(first, Ident):
            return self.eval_call(first, cmd.args[1:], dot, final, has_final, cmd)
        if has_final:
            raise self.error(f"can't give argument to non-function {first}", first)
        return self.eval_arg(first, dot)

    def eval_arg(self, n: Node, dot: Any) -> Any:
        self.node = n
        if isinstance(n, Dot):
            return dot
        if isinstance(n, Const):
            return n.value
        if isinstance(n, Field):
            return self.eval_field_chain(dot, dot, n, n.names, [n], None, False)
        if isinstance(n, Var):
            v = self.get_var(n.name)
            return self.eval_field_chain(dot, v, n, n.names, [n], None, False) if n.names else v
        if isinstance(n, Chain):
            base = self.eval_arg(n.node, dot)
            return self.eval_field_chain(dot, base, n, n.names, [n], None, False)
        if isinstance(n, PipeArg):
            mark = len(self.vars)
            v = self.eval_pipe(n.pipe, dot)
            del self.vars[mark:]
            return v
        if isinstance(n, Ident):
            return self.eval_call(n, [], dot, None, False)
        raise self.error(f"can't handle {n}", n)

    def eval_call(self, ident: Ident, arg_nodes: list[Node], dot: Any, final: Any, has_final: bool,
                  cmd: Node | None = None) -> Any:
        name = ident.name
        where = cmd or ident  # Go reports a call's error at its whole command
        fn = self.funcs.get(name)
        nargs = len(arg_nodes) + (1 if has_final else 0)
        lo, hi = _ARITY.get(name, (0, None))
        if name in ("print", "println", "html", "js", "urlquery"):
            lo = 0
        if nargs < lo or (hi is not None and nargs > hi):
            if name in ("and", "or") and nargs == 0:
                raise self.error(f"wrong number of args for {name}: want at least 1 got 0", ident)
            want = f"at least {lo}" if hi is None else str(lo)
            raise self.error(f"wrong number of args for {name}: want {want} got {nargs}", ident)
        if name in ("and", "or"):
            nodes = list(arg_nodes)
            v: Any = None
            for i, a in enumerate(nodes):
                v = self.eval_arg(a, dot)
                if (name == "and") != truth(v):
                    return v
            if has_final:
                v = final
            return v
        args = [self.eval_arg(a, dot) for a in arg_nodes]
        if has_final:
            args.append(final)
        self.node = ident
        try:
            return fn(*args)  # type: ignore[misc]
        except TemplateError as exc:
            msg = str(exc)
            if not msg.startswith("error calling"):
                msg = f"error calling {name}: {msg}"
            raise self.error(msg, where) from None
        except (TypeError, ValueError, IndexError, KeyError, UnicodeError) as exc:
            raise self.error(f"error calling {name}: {exc}", where) from None

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, names: list[str], args: list[Node],
                         final: Any, has_final: bool) -> Any:
        n = len(names)
        for i in range(n - 1):
            receiver = self.eval_field(dot, names[i], node, [], None, False, receiver)
        return self.eval_field(dot, names[-1], node, args, final, has_final, receiver)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any, has_final: bool,
                   receiver: Any) -> Any:
        has_args = len(args) > 1 or has_final
        if receiver is MISSING:
            return MISSING
        if isinstance(receiver, Struct):
            if name in receiver.methods:
                margs = [self.eval_arg(a, dot) for a in args[1:]]
                if has_final:
                    margs.append(final)
                try:
                    return receiver.methods[name](*margs)
                except TypeError:
                    raise self.error(f"wrong number of args for {name}: want 1 got {len(margs)}", node) from None
            if name in receiver.fields:
                if has_args:
                    raise self.error(f"{name} has arguments but cannot be invoked as function", node)
                return receiver.fields[name]
            raise self.error(f"can't evaluate field {name} in type {receiver.type_name}", node)
        if isinstance(receiver, dict):
            if has_args:
                raise self.error(f"{name} is not a method but has arguments", node)
            if self.go_names:  # docker's first pass, on the Go struct: .ID is JSON's "Id", .Id is no field
                if name not in receiver and GO_FIELD_NAMES.get(name) in receiver:
                    name = GO_FIELD_NAMES[name]
                elif name in JSON_ONLY_NAMES and name in receiver:
                    raise self.error(f"can't evaluate field {name} in type {go_type(receiver)}", node)
            if name not in receiver and self.root_type and receiver is self.root:
                raise self.error(f"can't evaluate field {name} in type {self.root_type}", node)
            if name not in receiver and self.missing_key_error and not _string_map(receiver):
                raise self.error(f"map has no entry for key \"{name}\"", node)
            return receiver.get(name, MISSING)
        if receiver is None:
            raise self.error(f"nil pointer evaluating interface {{}}.{name}", node)
        raise self.error(f"can't evaluate field {name} in type {go_type(receiver)}", node)


def render(src: str, data: Any, funcs: dict[str, Callable[..., Any]] | None = None) -> str:
    return Template(src, funcs).execute(data)


# -- docker's formatter: table / json / template, tabwriter ------------------------------------


def tabwriter(text: str, minwidth: int = 10, tabwidth: int = 1, padding: int = 3) -> str:
    """Go's text/tabwriter with docker's settings (NewWriter(out, 10, 1, 3, ' ', 0))."""
    lines = [line.split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def cell_w(c: str) -> int:
        return len(c)

    def write_lines(l0: int, l1: int) -> None:
        for li in range(l0, l1):
            cells = lines[li]
            buf = []
            for j, c in enumerate(cells):
                if j < len(widths):
                    buf.append(c + " " * (widths[j] - cell_w(c)))
                else:
                    buf.append(c)
            out.append("".join(buf))

    def fmt(l0: int, l1: int) -> None:
        column = len(widths)
        this = l0
        while this < l1:
            line = lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            write_lines(l0, this)
            l0 = this
            width = minwidth
            while this < l1:
                line = lines[this]
                if column >= len(line) - 1:
                    break
                w = cell_w(line[column]) + padding
                if w > width:
                    width = w
                this += 1
            widths.append(width)
            fmt(l0, this)
            widths.pop()
            l0 = this
        write_lines(l0, l1)

    fmt(0, len(lines))
    return "\n".join(out)


def docker_format(fmt: str, default_table: str) -> tuple[bool, str]:
    """docker's Context.preFormat: (is_table, final template)."""
    if fmt == "json":
        return False, "{{json .}}"
    is_table = fmt.startswith("table")
    if fmt == "table" or not fmt:
        return True, default_table
    final = fmt[len("table"):] if is_table else fmt
    final = final.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return is_table, final


def format_rows(fmt: str | None, rows: list[Any], headers: dict[str, str], default_table: str) -> str:  # pragma: no cover
    """What docker prints for a list command's ``--format``: each row through the template plus a
    newline; a table gets the header (the same template run on the header names) and tabwriter."""
    is_table, src = docker_format(fmt or "table", default_table)
    try:
        t = Template(src)
    except TemplateError as exc:
        raise TemplateError(f"template parsing error: {exc}") from None
    body = "".join(t.execute(r) + "\n" for r in rows)
    if not is_table:
        return body
    header = Template(src, HEADER_FUNCS).execute(dict(headers))
    return tabwriter(header + "\n" + body)
