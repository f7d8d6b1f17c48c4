"""Image references normalized as Docker does (distribution/reference), and chain ids."""

import hashlib

import pytest

from dockyard.errors import InvalidArgument
from dockyard.images import reference as R
from dockyard.images.service import _path_match, _ref_match
from dockyard.timestamps import parse_rfc3339

HEX = "a" * 64


@pytest.mark.parametrize("text, full, familiar", [
    ("busybox", "docker.io/library/busybox", "busybox"),
    ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest"),
    ("library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
    ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
    ("user/repo", "docker.io/user/repo", "user/repo"),
    ("user/repo/sub:t", "docker.io/user/repo/sub:t", "user/repo/sub:t"),
    ("localhost/x", "localhost/x", "localhost/x"),
    ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x"),
    ("localhost:5000/x/y:v1", "localhost:5000/x/y:v1", "localhost:5000/x/y:v1"),
    ("quay.io/org/img:tag", "quay.io/org/img:tag", "quay.io/org/img:tag"),
    ("Registry/x", "Registry/x", "Registry/x"),  # an uppercase first part is a registry
    ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x"),
    ("a.b-c_d__e--f:T_1.x-y", "docker.io/library/a.b-c_d__e--f:T_1.x-y", "a.b-c_d__e--f:T_1.x-y"),
    (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}", f"busybox@sha256:{HEX}"),
    (f"busybox:1@sha256:{HEX}", f"docker.io/library/busybox:1@sha256:{HEX}", f"busybox:1@sha256:{HEX}"),
    ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"),  # a name with tag 5000
])
def test_normalization(text, full, familiar):
    ref = R.parse(text)
    assert str(ref) == full
    assert ref.familiar == familiar
    assert R.familiar(full) == familiar


@pytest.mark.parametrize("text", [
    "", "Busybox", "busybox:", ":tag", "busybox@sha256:abc", "busy box", "/busybox", "busybox/",
    "a//b", "-a", "a:" + "x" * 129, HEX, "busybox:tag:tag", "UPPER/Case", "a" * 256, "busybox@",
    "busybox:-x",
])
def test_invalid_reference_format(text):
    with pytest.raises(InvalidArgument) as info:
        R.parse(text)
    assert str(info.value).startswith("invalid reference format")
    assert info.value.status == 400


def test_uppercase_repository_says_lowercase():
    with pytest.raises(InvalidArgument, match="must be lowercase"):
        R.parse("Busybox")


def test_default_tag():
    assert str(R.parse_tagged("busybox")) == "docker.io/library/busybox:latest"
    assert str(R.parse_tagged("busybox:1")) == "docker.io/library/busybox:1"
    digested = R.parse_tagged(f"busybox@sha256:{HEX}")
    assert digested.tag is None and digested.digest == f"sha256:{HEX}"
    assert R.parse("busybox").name_only and not R.parse("busybox:1").name_only


def test_with_tag_validates():
    with pytest.raises(InvalidArgument):
        R.parse("busybox").with_tag("bad tag")


def test_chain_ids_follow_docker():
    d1, d2, d3 = ("sha256:" + c * 64 for c in "123")
    c2 = "sha256:" + hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()
    c3 = "sha256:" + hashlib.sha256(f"{c2} {d3}".encode()).hexdigest()
    assert R.chain_ids([d1, d2, d3]) == [d1, c2, c3]
    assert R.chain_ids([]) == []


def test_reference_filter_matches_like_go_path_match():
    ref = R.parse("localhost:5000/x/y:v1")
    assert _ref_match("localhost:5000/x/y", ref)
    assert _ref_match("localhost:5000/x/*", ref)
    assert not _ref_match("localhost:5000/*", ref)  # * never matches "/"
    assert _ref_match("*/x/y:v?", ref)
    busybox = R.parse("busybox:latest")
    assert _ref_match("busy*", busybox) and _ref_match("busybox:lat*", busybox)
    assert not _ref_match("alpine", busybox)
    assert _path_match("[a-c]x", "bx") and not _path_match("[!a-c]x", "bx")


def test_rfc3339():
    assert parse_rfc3339("1970-01-01T00:00:10Z") == 10
    assert parse_rfc3339("1970-01-01T01:00:10+01:00") == 10
    assert abs(parse_rfc3339("1970-01-01T00:00:10.5Z") - 10.5) < 1e-9
    assert parse_rfc3339("") == 0 and parse_rfc3339("garbage") == 0
