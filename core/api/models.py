"""The typed request model: every JSON body is decoded once, here at the API edge, into the
msgspec Structs of ``schema.py`` (generated from Docker's v1.44 spec by scripts/gen_models.py).

Docker's rules (Go's encoding/json), mirrored:

* a value of the wrong type is a 400 naming the field, in Go's words:
  ``json: cannot unmarshal number into Go struct field HostConfig.CpusetCpus of type string``;
* ``null`` is accepted everywhere (Go leaves the zero value); a ``null`` body is an empty object;
* unknown fields are ignored; integers are 64-bit (larger ones are a 400, never stored).

The seam: a handler calls ``await parse(request, T)`` and gets a ``T``. Services that still take
dicts get ``plain(value)``, the dict re-encoded *from the validated Struct* (only the fields the
client sent, with their checked types), so nothing wrongly typed can reach a service or a record.
The next step is services taking the Structs themselves (``req.HostConfig.CpusetCpus``).

Responses: ``render_inspect`` makes a container's inspect answer conform to the spec's types
whatever an older record holds (``CpusetCpus: 0`` stored by an old daemon), so the Go client
never fails to unmarshal it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, TypeVar

import msgspec
from ..http import web
from msgspec import UNSET, UnsetType

from ..errors import InvalidArgument
from . import schema
from .util import query_int  # noqa: F401  (here before util had it)
from .schema import (CommitRequest, ContainerCreateRequest, ContainerUpdateRequest, EndpointSettings, ExecConfig,
                     ExecStartConfig, NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest,
                     VolumeCreateRequest)

__all__ = [
    "CommitRequest", "ContainerCreateRequest", "ContainerUpdateRequest", "EndpointSettings", "ExecConfig",
    "ExecStartConfig", "NetworkConnectRequest", "NetworkCreateRequest", "NetworkDisconnectRequest",
    "VolumeCreateRequest", "UNSET", "UnsetType", "decode", "parse", "plain", "render_inspect", "query_int",
]

T = TypeVar("T")

# msgspec's names for JSON types -> Go's words ("cannot unmarshal <got> into ... of type <want>")
_GOT = {"int": "number", "float": "number", "str": "string", "bool": "bool", "array": "array",
        "object": "object", "null": "null"}
_WANT = {"str": "string", "int": "int64", "float": "float64", "bool": "bool", "array": "array",
         "object": "object"}
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`(?:, got `(?P<got>[^`]+)`)?"
                       r"(?P<rest>.*?)(?: - at `(?P<at>[^`]+)`)?$")


@lru_cache(maxsize=None)
def _decoder(typ: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(typ)


def _field(at: str) -> str:
    """``$.HostConfig.Mounts[0].Type`` -> ``HostConfig.Mounts[0].Type``."""
    return at[2:] if at.startswith("$.") else at.lstrip("$")


def _go_type(want: str) -> str:
    parts = [p.strip() for p in want.split("|") if p.strip() != "null"]
    return " or ".join(_WANT.get(p, p) for p in parts) or "null"


_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[[^\]]*\]")


def _go_name(t: Any) -> str | None:
    """Go's name for a msgspec type (``uint16``, ``[]string``, ``map[string]string``...)."""
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        names = [_go_name(x) for x in t.types if not isinstance(x, mi.NoneType)]
        return " or ".join(n for n in names if n) or None
    if isinstance(t, mi.StrType):
        return "string"
    if isinstance(t, mi.BoolType):
        return "bool"
    if isinstance(t, mi.FloatType):
        return "float64"
    if isinstance(t, mi.IntType):
        if t.ge == 0:
            return {255: "uint8", 65535: "uint16", (1 << 32) - 1: "uint32"}.get(t.le or 0, "uint64")  # 0: no bound
        return "int32" if t.le == (1 << 31) - 1 else "int64"
    if isinstance(t, mi.ListType):
        return f"[]{_go_name(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"map[string]{_go_name(t.value_type)}"
    if isinstance(t, mi.StructType):
        return "struct {}" if t.cls is schema.Empty else t.cls.__name__.split("_")[-1]
    return None


def _type_at(typ: type, at: str) -> Any:
    """The msgspec type info at a msgspec error path (``$.HostConfig.Mounts[0].Type``)."""
    mi = msgspec.inspect
    t: Any = _struct_info(typ)
    for m in _TOKEN.finditer(at):
        while isinstance(t, mi.UnionType):  # step into the non-null member that has children
            t = next((x for x in t.types if isinstance(x, (mi.StructType, mi.ListType, mi.DictType))), None)
        if m.group(1) is not None:
            if isinstance(t, mi.StructType):
                t = _struct_info(t.cls)
            fields = {f.encode_name: f.type for f in getattr(t, "fields", ())}
            t = fields.get(m.group(1))
        elif isinstance(t, mi.ListType):
            t = t.item_type
        elif isinstance(t, mi.DictType):
            t = t.value_type
        else:
            return None
        if t is None:
            return None
    return t


def _message(exc: msgspec.ValidationError, typ: type) -> str:
    text = str(exc)
    m = _EXPECTED.match(text)
    if m is None:
        msg, sep, at = text.partition(" - at `")
        if not sep:
            return f"json: {text}"
        return f"json: {msg[:1].lower()}{msg[1:]} in Go struct field {_field(at.rstrip('`'))}"
    at = m.group("at")
    field = _field(at) if at else ""
    want = _go_type(m.group("want"))
    if at:
        try:
            want = _go_name(_type_at(typ, at)) or want
        except Exception:  # naming the type is a nicety: never let it hide the 400
            pass
    got = m.group("got")
    if got is None:  # a bound: "Expected `int` <= 9223372036854775807"
        rest = m.group("rest").strip()
        overflow = rest.endswith(("9223372036854775807", "-9223372036854775808"))
        why = "the number overflows a 64-bit integer" if overflow else f"out of range ({rest})"
        return f"json: cannot unmarshal number into Go struct field {field} of type {want}: {why}" if field \
            else f"json: {text}"
    got = _GOT.get(got, got)
    if not field:
        return f"json: cannot unmarshal {got} into Go value of type {typ.__name__}"
    return f"json: cannot unmarshal {got} into Go struct field {field} of type {want}"


def decode(raw: bytes | str, typ: type[T]) -> T:
    """``raw`` JSON as a ``typ``; anything malformed or wrongly typed is Docker's 400."""
    if isinstance(raw, str):
        raw = raw.encode()
    if not raw.strip() or raw.strip() == b"null":  # Go: null (and our empty body) is the zero value
        return typ()
    try:
        return _decoder(typ).decode(raw)  # type: ignore[arg-type]  # a type is hashable
    except msgspec.ValidationError as exc:
        raise InvalidArgument(_message(exc, typ)) from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"invalid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument("invalid JSON: nested too deeply") from None


async def parse(request: web.Request, typ: type[T], *, required: bool = True) -> T:
    """The request's body as a ``typ`` (see ``util.json_body`` for the unread-body rule)."""
    if request.get("body_unread"):  # authorization hooks never saw it: fail closed
        raise InvalidArgument(f"unsupported Content-Type header ({request.content_type}): "
                              "must be 'application/json'")
    raw = await request.read()
    if required and not raw.strip():
        raise InvalidArgument("request body is empty; expected JSON")
    return decode(raw, typ)


def plain(value: Any) -> Any:
    """A validated Struct as the dicts the services still take: only the fields the client sent."""
    return msgspec.to_builtins(value)


# -- responses --------------------------------------------------------------------------------

_INFO_CACHE: dict[type, Any] = {}


def _struct_info(typ: type) -> Any:
    info = _INFO_CACHE.get(typ)
    if info is None:
        info = _INFO_CACHE[typ] = msgspec.inspect.type_info(typ)
    return info


def _conform(value: Any, t: Any) -> Any:
    """``value`` made to fit the msgspec type info ``t`` as a Go client decodes it: a scalar of the
    wrong type is converted (``0`` -> ``"0"``) or zeroed, a wrong container becomes ``null``
    (which Go decodes into any slice, map or pointer)."""
    mi = msgspec.inspect
    if value is None:
        return None
    if isinstance(t, mi.UnionType):
        types = [x for x in t.types if not isinstance(x, mi.NoneType)]
        for x in types:  # the first that fits as it is
            if _fits(value, x):
                return _conform(value, x)
        return _conform(value, types[0]) if types else None
    if isinstance(t, mi.StrType):
        if isinstance(value, str):
            return value
        return str(value).lower() if isinstance(value, bool) else str(value) if isinstance(value, (int, float)) else ""
    if isinstance(t, mi.BoolType):
        return value if isinstance(value, bool) else bool(value) if isinstance(value, (int, float, str)) else False
    if isinstance(t, mi.IntType):
        if isinstance(value, int) and not isinstance(value, bool) and -(1 << 63) <= value < (1 << 64):
            return value
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            return 0
    if isinstance(t, mi.FloatType):
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
    if isinstance(t, (mi.ListType, mi.SetType, mi.VarTupleType)):
        if not isinstance(value, list):
            return None
        return [_conform(v, t.item_type) for v in value]
    if isinstance(t, mi.DictType):
        if not isinstance(value, dict):
            return None
        return {str(k): _conform(v, t.value_type) for k, v in value.items()}
    if isinstance(t, mi.StructType):
        if not isinstance(value, dict):
            return None
        return _conform_struct(value, t.cls)
    return value  # Any


def _fits(value: Any, t: Any) -> bool:
    mi = msgspec.inspect
    if isinstance(t, mi.StrType):
        return isinstance(value, str)
    if isinstance(t, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(t, (mi.IntType, mi.FloatType)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(t, (mi.ListType, mi.SetType, mi.VarTupleType)):
        return isinstance(value, list)
    if isinstance(t, (mi.DictType, mi.StructType)):
        return isinstance(value, dict)
    return True


def _conform_struct(data: dict[str, Any], cls: type) -> dict[str, Any]:
    fields = {f.encode_name: f.type for f in _struct_info(cls).fields}
    return {k: (_conform(v, fields[k]) if k in fields else v) for k, v in data.items()}


# Docker answers [] / {} (never null) for these, null for an unset MemorySwappiness (its -1 is
# the docker CLI's "unset", which dockerd turns into nil)
def render_inspect(data: dict[str, Any]) -> dict[str, Any]:
    """A container's inspect answer, conformed to the spec's ``ContainerInspectResponse``."""
    out = _conform_struct(data, schema.ContainerInspectResponse)
    hc = out.get("HostConfig")
    if isinstance(hc, dict):
        if hc.get("MemorySwappiness") == -1:
            hc["MemorySwappiness"] = None
        for key in ("BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                    "BlkioDeviceWriteIOps", "Devices", "Ulimits", "Dns", "DnsOptions", "DnsSearch"):
            if key in hc and hc[key] is None:
                hc[key] = []
        if hc.get("Tmpfs") is None:
            hc.pop("Tmpfs", None)  # Go: map[string]string `json:",omitempty"`
        if not hc.get("Privileged"):  # dockerd fills in the defaults at create; privileged: nil
            from ..drivers.runtime import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS

            for key, default in (("MaskedPaths", DEFAULT_MASKED_PATHS), ("ReadonlyPaths", DEFAULT_READONLY_PATHS)):
                if hc.get(key) is None:
                    hc[key] = list(default)
    graph = out.get("GraphDriver")
    if isinstance(graph, dict) and graph.get("Data") is None:
        graph["Data"] = {}
    if out.get("Mounts") is None:
        out["Mounts"] = []
    return out
