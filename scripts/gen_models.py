#!/usr/bin/env python3
"""Generate ``core/api/schema.py``: msgspec Structs for the request bodies (and the inspect answer)
of Docker's Engine API v1.44, from Docker's own Swagger 2.0 spec.

    .venv/bin/python scripts/gen_models.py [path/to/docker-engine-api-v1.44.yaml] > core/api/schema.py

The types follow what Docker's Go structs decode (encoding/json), where the spec is looser or
stricter than Go:

* every field may be ``null`` (Go leaves the zero value) and may be absent (``UNSET``: re-encoding
  a Struct gives back only the fields the client sent, so defaults stay the services' business);
* unknown fields are ignored, as Go does;
* ``integer`` is a 64-bit integer unless its ``format`` says ``uint16``/``uint32``/``uint64``...;
  a float where an integer is expected is an error (Go: "cannot unmarshal number 1.5 ...");
* enums, minimum/maximum and required are *not* checked here (Go does not either: the daemon's
  own checks answer with Docker's words);
* ``Cmd``, ``Entrypoint``, ``Shell`` are Docker's ``strslice``: a string or a list of strings;
* an object without properties is Go's ``struct{}``: any object, its content ignored.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "docker-engine-api-v1.44.yaml"

INT_FORMATS = {
    None: "I64", "int64": "I64", "int32": "I32", "int": "I64",
    "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64",
}

# (struct name, field) -> python type expression, where Go's type differs from the spec's
OVERRIDES = {
    ("ContainerConfig", "Cmd"): "StrSlice",
    ("ContainerConfig", "Entrypoint"): "StrSlice",
    ("ContainerConfig", "Shell"): "StrSlice",
    ("ExecConfig", "Cmd"): "StrSlice",
    ("ExecConfig", "ConsoleSize"): "list[U64]",
    ("ExecStartConfig", "ConsoleSize"): "list[U64]",
    ("HostConfig", "ConsoleSize"): "list[U64]",
    ("Resources", "BlkioWeight"): "U16",
    ("ThrottleDevice", "Rate"): "U64",
}

SCALARS = {"str", "bool", "float", "I64", "I32", "U8", "U16", "U32", "U64"}

# Go pointers (*int64, *bool): null stays nil; every other null scalar becomes Go's zero value
POINTERS = {"MemorySwappiness", "OomKillDisable", "Init", "PidsLimit", "StopTimeout"}
ZERO = {"str": '""', "bool": "False", "float": "0.0"}

# fields newer clients send (not in v1.44) that the services already honour: name -> [(field, type)]
EXTRA = {
    "NetworkCreateRequest": [("EnableIPv4", "bool")],  # API 1.47
    "Mount_VolumeOptions": [("Subpath", "str")],  # API 1.45: refused with a clear 400
    "IPAMConfig": [("AuxAddress", "dict[str, str]")],  # the old spelling, refused with a clear 400
    "ExecConfig": [("detachKeys", "str")],  # docker-py's spelling (Go matches names case-insensitively)
}

# the request bodies, by the name we give them: (path, method)
BODIES = {
    "ContainerCreateRequest": ("/containers/create", "post"),
    "ContainerUpdateRequest": ("/containers/{id}/update", "post"),
    "ExecConfig": ("/containers/{id}/exec", "post"),
    "ExecStartConfig": ("/exec/{id}/start", "post"),
    "NetworkCreateRequest": ("/networks/create", "post"),
    "NetworkConnectRequest": ("/networks/{id}/connect", "post"),
    "NetworkDisconnectRequest": ("/networks/{id}/disconnect", "post"),
    "VolumeCreateRequest": ("/volumes/create", "post"),
    "CommitRequest": ("/commit", "post"),
}
# response schemas we render through
RESPONSES = {
    "ContainerInspectResponse": ("/containers/{id}/json", "get", 200),
}


class Gen:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.defs = spec["definitions"]
        self.out: list[str] = []
        self.done: dict[str, str] = {}  # definition/struct name -> emitted
        self.in_progress: set[str] = set()

    def ref(self, ref: str) -> dict[str, Any]:
        return self.defs[ref.rsplit("/", 1)[1]]

    def properties(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        """The merged properties of an object schema (allOf included), None if not an object."""
        if "$ref" in schema:
            return self.properties(self.ref(schema["$ref"]))
        if "allOf" in schema:
            props: dict[str, Any] = {}
            found = False
            for part in schema["allOf"]:
                p = self.properties(part)
                if p is not None:
                    found = True
                    props.update(p)
            return props if found else None
        if "properties" in schema:
            return dict(schema["properties"])
        return None

    def struct(self, name: str, schema: dict[str, Any]) -> str:
        if name in self.done or name in self.in_progress:
            return name
        self.in_progress.add(name)
        props = self.properties(schema) or {}
        fields, zeros = [], []
        for fname, fschema in props.items():
            if not fname.isidentifier():
                continue
            typ = OVERRIDES.get((name, fname)) or self.type_of(fschema, f"{name}_{fname}")
            for base in self.bases(schema):
                typ = OVERRIDES.get((base, fname), typ)
            fields.append(f"    {fname}: {typ} | None | UnsetType = UNSET")
            zero = ZERO.get(typ, "0" if typ[0] in "IU" else None)
            if zero is not None and fname not in POINTERS and not fschema.get("x-nullable"):
                zeros.append(f"({fname!r}, {zero})")
        for fname, typ in EXTRA.get(name, []):
            fields.append(f"    {fname}: {typ} | None | UnsetType = UNSET")
        if zeros:
            fields.insert(0, f"    __zero__: ClassVar[Zeros] = ({', '.join(zeros)},)\n")
        body = "\n".join(fields) or "    pass"
        self.out.append(f"class {name}(Model):\n{body}\n\n\n")
        self.in_progress.discard(name)
        self.done[name] = name
        return name

    def bases(self, schema: dict[str, Any]) -> list[str]:
        """Definition names a schema is made of (for OVERRIDES on allOf parts)."""
        names = []
        for part in schema.get("allOf", []):
            if "$ref" in part:
                n = part["$ref"].rsplit("/", 1)[1]
                names.append(n)
                names.extend(self.bases(self.defs[n]))
        return names

    def type_of(self, schema: dict[str, Any], inline_name: str) -> str:
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            target = self.defs[name]
            if self.properties(target) is not None:
                return self.struct(name, target)
            return self.type_of(target, name)
        if "allOf" in schema:
            if self.properties(schema) is not None:
                return self.struct(inline_name, schema)
            refs = [p for p in schema["allOf"] if "$ref" in p]
            if refs:
                return self.type_of(refs[0], inline_name)
            return "Any"
        t = schema.get("type")
        if t == "string":
            return "str"
        if t == "integer":
            return INT_FORMATS.get(schema.get("format"), "I64")
        if t == "number":
            return "float"
        if t == "boolean":
            return "bool"
        if t == "array":
            items = schema.get("items") or {}
            return f"list[{self.type_of(items, inline_name + 'Item')}]"
        if t == "object" or "properties" in schema or "additionalProperties" in schema:
            if schema.get("properties"):
                return self.struct(inline_name, schema)
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                value = self.type_of(extra, inline_name + "Value")
                # Go: a null map value is a nil slice / pointer / zero struct; a null string stays refused
                return f"dict[str, {value}]" if value in SCALARS else f"dict[str, {value} | None]"
            if extra is True or isinstance(extra, dict):
                return "dict[str, Any]"
            return "Empty"  # Go's struct{}: any object
        return "Any"

    def body_schema(self, path: str, method: str) -> dict[str, Any]:
        for p in self.spec["paths"][path][method].get("parameters", []):
            if p["in"] == "body":
                return p["schema"]
        raise KeyError(path)

    def run(self) -> str:
        for name, (path, method) in BODIES.items():
            schema = self.body_schema(path, method)
            if "$ref" in schema and name not in ("CommitRequest", "VolumeCreateRequest"):
                schema = self.ref(schema["$ref"])
            self.struct(name, {"allOf": [schema]} if "$ref" in schema else schema)
        for name, (path, method, status) in RESPONSES.items():
            self.struct(name, self.spec["paths"][path][method]["responses"][status]["schema"])
        head = f'''"""Docker Engine API v1.44 request and response types, GENERATED by scripts/gen_models.py
from Docker's spec (do not edit: change the generator and run it again).

Every field may be absent (``UNSET``, left out when re-encoded) or ``null``; unknown fields are
ignored; see scripts/gen_models.py for the rules where Go's types differ from the spec.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from msgspec import UNSET, Meta, Struct, UnsetType

I64 = Annotated[int, Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
I32 = Annotated[int, Meta(ge=-(1 << 31), le=(1 << 31) - 1)]
U8 = Annotated[int, Meta(ge=0, le=(1 << 8) - 1)]
U16 = Annotated[int, Meta(ge=0, le=(1 << 16) - 1)]
U32 = Annotated[int, Meta(ge=0, le=(1 << 32) - 1)]
U64 = Annotated[int, Meta(ge=0)]  # msgspec: at most 2**64 - 1 anyway
StrSlice = str | list[str]  # Docker's strslice: "sh" or ["sh", "-c", "..."]
Zeros = tuple[tuple[str, Any], ...]


class Model(Struct, kw_only=True, omit_defaults=True):
    """Base of every API type: keyword-only, absent fields left out when re-encoded; a ``null``
    scalar (not a Go pointer) becomes its zero value, as Go decodes it."""

    __zero__: ClassVar[Zeros] = ()

    def __post_init__(self) -> None:
        for name, zero in self.__zero__:
            if getattr(self, name) is None:
                setattr(self, name, zero)


class Empty(Model):
    """Go's ``struct{{}}``: any object, its content ignored (``ExposedPorts``, ``Volumes``)."""


'''
        return head + "".join(self.out).rstrip() + "\n"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SPEC
    spec = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    sys.stdout.write(Gen(spec).run())


if __name__ == "__main__":
    main()
