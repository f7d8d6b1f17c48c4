"""Registry credentials: ``X-Registry-Auth`` headers and ``WWW-Authenticate`` challenges.

Clients send credentials as ``X-Registry-Auth``: base64url of a JSON object
(``username``, ``password``, ``serveraddress``, ``identitytoken``, ``registrytoken``), with
or without padding; an empty or ``{}`` header is anonymous.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token (docker login to a token server)
    registry_token: str = ""  # a bearer token to send as is

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.identity_token or self.registry_token)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Credentials":
        return cls(str(d.get("username") or d.get("Username") or ""), str(d.get("password") or d.get("Password") or ""),
                   str(d.get("identitytoken") or d.get("IdentityToken") or ""),
                   str(d.get("registrytoken") or d.get("RegistryToken") or ""))


def decode_registry_auth(header: str | None) -> Credentials:
    """The ``X-Registry-Auth`` header; a malformed one is a 400, as in dockerd."""
    if not header or not header.strip():
        return Credentials()
    text = header.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        # dockerd falls back to plain JSON for old clients
        try:
            value = json.loads(text)
        except ValueError:
            raise InvalidArgument("invalid X-Registry-Auth header: not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument("invalid X-Registry-Auth header: expected a JSON object")
    return Credentials.from_json(value)


_PARAM = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="https://auth",service="reg",scope="repository:x:pull"`` -> scheme, params."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
    return scheme.lower(), params
