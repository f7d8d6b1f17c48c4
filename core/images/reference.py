"""Image references as Docker reads them (``distribution/reference``).

``busybox`` means ``docker.io/library/busybox:latest``; ``localhost:5000/x`` keeps its registry;
``repo@sha256:<hex>`` is a digest reference. The store keys references by their full string
(``docker.io/library/busybox:latest``); the API shows the familiar one (``busybox:latest``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
# the whole reference, with the name matched case-insensitively so that we can say "must be lowercase"
_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:{_DOMAIN}/)?[a-zA-Z0-9]+(?:(?:[._]|__|[-]+)[a-zA-Z0-9]+)*"
    rf"(?:/[a-zA-Z0-9]+(?:(?:[._]|__|[-]+)[a-zA-Z0-9]+)*)*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$"
)
_NAME_RE = re.compile(rf"^{_NAME}$")
_TAG_RE = re.compile(rf"^{_TAG}$")
_ANCHORED_ID = re.compile(r"^[a-f0-9]{64}$")
_SHA256_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class InvalidReference(InvalidArgument):
    pass


def _invalid(detail: str = "") -> InvalidReference:
    return InvalidReference("invalid reference format" + (f": {detail}" if detail else ""))


@dataclass(frozen=True)
class Reference:
    """A normalized reference: ``domain``/``path`` with an optional tag and/or digest."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Full repository name: ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """What people type: ``busybox``, ``user/repo``, ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            path = self.path
            if path.startswith(OFFICIAL_PREFIX) and path.count("/") == 1:
                path = path[len(OFFICIAL_PREFIX):]
            return path
        return self.name

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def familiar(self) -> str:
        return self.familiar_name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_tag(self, tag: str) -> "Reference":
        if not _TAG_RE.match(tag):
            raise _invalid()
        return Reference(self.domain, self.path, tag, None)

    def with_default_tag(self) -> "Reference":
        """``TagNameOnly``: a reference without tag or digest gets ``:latest``."""
        return self.with_tag(DEFAULT_TAG) if self.name_only else self

    def repo_only(self) -> "Reference":
        return Reference(self.domain, self.path)


def split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``."""
    i = name.find("/")
    if i == -1 or (
        "." not in name[:i] and ":" not in name[:i] and name[:i] != "localhost" and name[:i].lower() == name[:i]
    ):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = name[:i], name[i + 1:]
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def is_full_id(text: str) -> bool:
    return bool(_ANCHORED_ID.match(text))


def parse(text: str) -> Reference:
    """``ParseNormalizedNamed``: normalize a reference or raise 400 "invalid reference format"."""
    if not text:
        raise _invalid()
    if is_full_id(text):
        raise _invalid(f"cannot specify 64-byte hexadecimal strings ({text})")
    m = _REFERENCE_RE.match(text)
    if m is None:
        raise _invalid()
    name, tag, digest = m.group("name"), m.group("tag"), m.group("digest")
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise _invalid(f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    domain, path = split_domain(name)
    if path.lower() != path:
        raise _invalid(f"repository name ({path}) must be lowercase")
    if not _NAME_RE.match(f"{domain}/{path}"):
        raise _invalid()
    if digest is not None:
        algo, _, hexpart = digest.partition(":")
        if algo == "sha256" and len(hexpart) != 64:
            raise _invalid("invalid checksum digest length")
        digest = digest.lower() if algo == "sha256" else digest
    return Reference(domain, path, tag, digest)


def parse_tagged(text: str) -> Reference:
    """A reference with ``:latest`` added when it has neither tag nor digest."""
    return parse(text).with_default_tag()


def try_parse(text: str) -> Reference | None:
    try:
        return parse(text)
    except InvalidArgument:
        return None


def familiar(full: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    return parse(full).familiar


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Docker's chain ids: chain(L1) = diff(L1); chain(Ln) = sha256(chain(Ln-1) + " " + diff(Ln))."""
    import hashlib

    out: list[str] = []
    for diff in diff_ids:
        if not out:
            out.append(diff)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {diff}".encode()).hexdigest())
    return out


def is_sha256_digest(text: str) -> bool:
    return bool(_SHA256_DIGEST.match(text))
