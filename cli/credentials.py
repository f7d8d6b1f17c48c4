"""Registry credentials where the docker CLI keeps them, so both CLIs share a login.

``config.json``'s ``credHelpers`` (per registry) then ``credsStore`` (all registries) name a
``docker-credential-<name>`` program spoken to with docker's credential-helper protocol:
``store`` reads ``{"ServerURL","Username","Secret"}`` on stdin, ``get`` reads the server URL and
prints that JSON (an identity token is stored with the username ``<token>``), ``erase`` reads the
server URL. With a helper, config.json only gets an empty ``auths.<registry>`` entry, as docker
writes it; without one, ``auths.<registry>.auth`` is base64("user:password").
"""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

from .client import ClientError
from .contexts import config_path, read_config, write_config

TOKEN_USER = "<token>"
NOT_FOUND = "credentials not found in native keychain"


def default_store() -> str | None:
    """Docker's platform default on Linux when config.json names no ``credsStore``:
    ``secretservice`` if its helper is on PATH, else ``pass`` if both its helper and ``pass`` are."""
    import shutil

    if shutil.which("docker-credential-secretservice"):
        return "secretservice"
    if shutil.which("docker-credential-pass") and shutil.which("pass"):
        return "pass"
    return None


def helper_for(server: str, config: dict[str, Any] | None = None) -> str | None:
    config = read_config() if config is None else config
    helpers = config.get("credHelpers") or {}
    return helpers.get(server) or config.get("credsStore") or default_store()


def _run(helper: str, action: str, data: str) -> str:
    program = f"docker-credential-{helper}"
    try:
        r = subprocess.run([program, action], input=data, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ClientError(f'error getting credentials - err: exec: "{program}": executable file not found '
                          f"in $PATH, out: ``") from None
    if r.returncode != 0:
        out = (r.stdout.strip() or r.stderr.strip())
        if action == "get" and NOT_FOUND in out:
            return ""
        verb = {"get": "getting", "store": "storing", "erase": "erasing"}.get(action, action)
        raise ClientError(f"error {verb} credentials - err: exit status {r.returncode}, out: `{out}`")
    return r.stdout


def get(server: str) -> dict[str, str]:
    """The stored credentials of a registry key (``username``/``password`` or ``identitytoken``)."""
    config = read_config()
    helper = helper_for(server, config)
    out: dict[str, str] = {"serveraddress": server}
    if helper:
        text = _run(helper, "get", server)
        if not text.strip():
            return out
        try:
            creds = json.loads(text)
        except ValueError:
            raise ClientError(f"docker-credential-{helper} get: invalid JSON answer") from None
        if creds.get("Username") == TOKEN_USER:
            out["identitytoken"] = creds.get("Secret") or ""
        else:
            out.update(username=creds.get("Username") or "", password=creds.get("Secret") or "")
        return out
    entry = (config.get("auths") or {}).get(server) or {}
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ClientError(f"{config_path()}: invalid auth entry for {server}") from None
        out.update(username=user, password=password)
    if entry.get("identitytoken"):
        out["identitytoken"] = entry["identitytoken"]
    return out


def store(server: str, username: str, password: str, identity_token: str | None = None) -> None:
    config = read_config()
    helper = helper_for(server, config)
    auths = config.setdefault("auths", {})
    if helper:
        user, secret = (TOKEN_USER, identity_token) if identity_token else (username, password)
        _run(helper, "store", json.dumps({"ServerURL": server, "Username": user, "Secret": secret},
                                         separators=(",", ":")))
        auths[server] = {}
    elif identity_token:
        auths[server] = {"auth": base64.b64encode(f"{username}:".encode()).decode(), "identitytoken": identity_token}
    else:
        auths[server] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    write_config(config)


def is_stored(server: str) -> bool:
    config = read_config()
    return server in (config.get("auths") or {}) or bool(helper_for(server, config) and get(server).keys() - {"serveraddress"})


def erase(server: str) -> None:
    config = read_config()
    helper = helper_for(server, config)
    if helper:
        _run(helper, "erase", server)
    auths = config.get("auths") or {}
    if server in auths:
        del auths[server]
        write_config(config)
