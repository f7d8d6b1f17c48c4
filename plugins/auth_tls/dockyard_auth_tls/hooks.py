"""The hook module (entry point ``auth_tls`` in ``dockyard.hooks``).

Configured in the daemon's config file::

    [plugins.auth_tls]
    policy = "/etc/dockyard/policy.toml"     # optional; unset: authorization abstains
    audit_log = "/var/log/dockyard/audit.log" # optional; one JSON line per request
    audit_max_size = "10m"                    # rotate at this size (default 10m)
    audit_backups = 5                         # rotated files kept (default 5)

* ``authenticate_request``: Unix socket -> ``uid:N`` with uid, gid, pid and the uid's group
  names; TLS with a verified client certificate -> the subject's common name.
* ``authorize_request``: the policy (``dockyard_auth_tls.policy``); a policy that does not
  load stops the daemon at start; SIGHUP reloads it (a bad new file keeps the old policy).
* ``authorize_container``: the same policy on the effective container's privileges, before
  core creates or starts anything (create, start, exec, build, volume create).
* ``request_finished``: the audit record.
* ``inactive_hooks``: without a policy (and an audit log) those hooks are off the request path.
* ``register_commands``: ``dockyard tls init``.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from dockyard import hookimpl
from dockyard.config import parse_size
from dockyard.errors import ConfigError, PluginError
from dockyard.identity import Decision, Identity
from dockyard.timestamps import rfc3339_millis

if TYPE_CHECKING:  # imported by configure when the config names them: not by a daemon without
    from .audit import AuditFile  # a policy nor an audit log (idle memory; tomllib with the policy)
    from .policy import Policy

log = logging.getLogger("dockyard.auth_tls")

NAME = "auth_tls"
CONFIG_KEYS = {"policy", "audit_log", "audit_max_size", "audit_backups"}
DECISION_KEY = "auth_tls.decision"


class State:
    """What ``startup`` read from the config; module-level because hooks are functions."""

    def __init__(self) -> None:
        self.policy_path: Path | None = None
        self.policy: Policy | None = None
        self.audit: AuditFile | None = None

    def reload(self) -> bool:
        """Re-read the policy file; on error keep the old policy and log why."""
        if self.policy_path is None:
            return False
        from .policy import Policy, PolicyError

        try:
            new = Policy.load(self.policy_path)
        except PolicyError as exc:
            log.error("policy reload failed, keeping the previous policy (%d rules): %s",
                      len(self.policy.rules) if self.policy else 0, exc)
            return False
        self.policy = new
        group_names.cache_clear()
        log.info("policy reloaded from %s: %d rules", self.policy_path, len(new.rules))
        return True

    def close(self) -> None:
        if self.audit is not None:
            self.audit.close()
        self.__init__()  # type: ignore[misc]  # back to the state before configure


STATE = State()


# -- lifecycle --------------------------------------------------------------------------


def configure(section: dict[str, Any]) -> None:
    unknown = sorted(set(section) - CONFIG_KEYS)
    if unknown:
        raise PluginError(f"plugins.{NAME}: unknown option(s): {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(CONFIG_KEYS))})")
    STATE.close()
    if section.get("policy") is not None:
        if not isinstance(section["policy"], str) or not section["policy"]:
            raise PluginError(f"plugins.{NAME}: policy must be a path")
        STATE.policy_path = Path(section["policy"])
        from .policy import Policy, PolicyError

        try:
            STATE.policy = Policy.load(STATE.policy_path)
        except PolicyError as exc:
            raise PluginError(f"plugins.{NAME}: {exc}") from None
        log.info("authorization policy %s: %d rules, deny by default", STATE.policy_path,
                 len(STATE.policy.rules))
    if section.get("audit_log") is not None:
        if not isinstance(section["audit_log"], str) or not section["audit_log"]:
            raise PluginError(f"plugins.{NAME}: audit_log must be a path")
        path = Path(section["audit_log"])
        try:
            max_bytes = parse_size(str(section.get("audit_max_size", "10m")))
        except ConfigError as exc:
            raise PluginError(f"plugins.{NAME}: audit_max_size: {exc}") from None
        backups = section.get("audit_backups", 5)
        if not isinstance(backups, int) or isinstance(backups, bool) or backups < 0:
            raise PluginError(f"plugins.{NAME}: audit_backups must be a non-negative integer")
        from .audit import AuditFile

        try:
            STATE.audit = AuditFile(path, max_bytes, backups)
        except OSError as exc:
            raise PluginError(f"plugins.{NAME}: cannot open audit_log {path}: {exc}") from None


@hookimpl
def startup(daemon):
    configure(daemon.config.plugin_config(NAME))
    if STATE.policy_path is not None:
        import asyncio

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, STATE.reload)
        except (RuntimeError, NotImplementedError, ValueError):  # not in the main thread
            log.warning("cannot install a SIGHUP handler: policy reload is unavailable")


@hookimpl
def inactive_hooks(daemon):
    """What this module has nothing to do for under its config (``dockyard.hookspecs``): without
    a policy its authorization hooks abstain on every request, and for the daemon's lifetime
    (SIGHUP reloads only a configured policy file); without an audit log ``request_finished``
    writes nothing; its identity is then only for other modules' hooks. An audit log keeps
    ``authorize_request`` (it makes core read the JSON body: the record's ``body_keys``)."""
    if STATE.policy is not None or STATE.policy_path is not None:
        return None  # may deny: every hook stays on the request path
    if STATE.audit is not None:
        return ["authorize_container"]
    return ["authenticate_request", "authorize_request", "authorize_container", "request_finished"]


@hookimpl
def shutdown(daemon):
    STATE.close()


# -- identity ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def group_names(uid: int, gid: int | None) -> tuple[str, ...]:
    """Names of the groups of ``uid`` in the host's group database (primary group first).

    Cached per (uid, gid); the cache is cleared when SIGHUP reloads the policy."""
    gids: list[int] = []
    try:
        user = pwd.getpwuid(uid)
        gids = os.getgrouplist(user.pw_name, gid if gid is not None else user.pw_gid)
    except KeyError:
        if gid is not None:
            gids = [gid]
    names: list[str] = []
    for g in dict.fromkeys(gids):
        try:
            names.append(grp.getgrgid(g).gr_name)
        except KeyError:
            continue
    return tuple(names)


def _rdn(name: Any) -> tuple[str, str]:
    """``getpeercert()``'s subject -> (``CN=a,O=b`` string, common name)."""
    parts, cn = [], ""
    short = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
             "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L", "emailAddress": "emailAddress"}
    for rdn in name or ():
        for key, value in rdn:
            parts.append(f"{short.get(key, key)}={value}")
            if key == "commonName" and not cn:
                cn = value
    return ",".join(parts), cn


@hookimpl
def authenticate_request(request, peer):
    if peer.transport == "unix" and peer.uid is not None:
        return Identity(name=f"uid:{peer.uid}", kind="unix", uid=peer.uid, gid=peer.gid, pid=peer.pid,
                        groups=group_names(peer.uid, peer.gid))
    if peer.transport == "tls" and peer.cert:
        subject, cn = _rdn(peer.cert.get("subject"))
        issuer, _ = _rdn(peer.cert.get("issuer"))
        if cn:
            return Identity(name=cn, kind="tls", attributes={"subject": subject, "issuer": issuer,
                                                              "address": peer.address})
    return None


# -- authorization ----------------------------------------------------------------------


@hookimpl
def authorize_request(request, identity):
    policy = STATE.policy
    if policy is None:
        return None
    from .policy import UNREADABLE  # loaded with the policy

    body = UNREADABLE if request.get("body_error") else request.get("body_json")
    try:
        decision = policy.decide(request.method, request["route"], request.path, body, identity,
                                 query=request.query)
    except Exception:  # a bug in the policy code must not allow anything, nor answer 500
        log.exception("policy evaluation failed for %s %s: denying", request.method, request.path)
        decision = Decision.deny("authorization failed: the request was denied", "error")
    request[DECISION_KEY] = decision
    if not decision.allow:
        log.info("denied %s %s for %s by %s", request.method, request["route"], identity.name, decision.rule)
    return decision


@hookimpl
def authorize_container(request, identity, action, privileges, target):
    """The same rules again, on the effective container (``privileges``): what a request's
    fields did not show (``container:X`` with the host's network, a volume binding ``/``,
    empty MaskedPaths, a build's network mode...) meets the same privilege conditions."""
    policy = STATE.policy
    if policy is None:
        return None
    from .policy import UNREADABLE  # loaded with the policy

    body = UNREADABLE if request.get("body_error") else request.get("body_json")
    try:
        decision = policy.decide(request.method, request["route"], request.path, body, identity,
                                 privileges=privileges, query=request.query)
    except Exception:  # fail closed
        log.exception("policy evaluation failed for %s on %s %s: denying", action, request.method, request.path)
        decision = Decision.deny("authorization failed: the request was denied", "error")
    if not decision.allow:
        request[DECISION_KEY] = decision
        log.info("denied %s (%s %s) for %s by %s: %s", action, request.method, request["route"], identity.name,
                 decision.rule, privileges.to_json() if hasattr(privileges, "to_json") else privileges)
    return decision


# -- audit ------------------------------------------------------------------------------


def audit_record(request, identity, response, duration) -> dict[str, Any]:
    # the denial that counted (maybe another plugin's), else this plugin's own decision
    decision: Decision | None = request.get("denied_by") or request.get(DECISION_KEY)
    body = request.get("body_json")
    now = time.time()
    record: dict[str, Any] = {
        "time": rfc3339_millis(now),
        "principal": identity.name,
        "kind": identity.kind,
        "method": request.method,
        "route": request.get("route", request.path),
        "decision": None if decision is None else ("allow" if decision.allow else "deny"),
        "rule": None if decision is None else decision.rule,
        "status": getattr(response, "status", None),
        "duration_ms": round(duration * 1000, 3),
    }
    if identity.uid is not None:
        record["uid"] = identity.uid
    if identity.pid is not None:
        record["pid"] = identity.pid
    match_info = getattr(request, "match_info", None)
    ids = {k: v for k, v in (match_info or {}).items()}
    if ids:
        record["object"] = ids.get("id") or ids.get("name") or next(iter(ids.values()))
        record["params"] = ids
    if isinstance(body, dict):
        record["body_keys"] = sorted(body)
    elif body is not None:
        record["body_keys"] = type(body).__name__
    return record


@hookimpl
def request_finished(request, identity, response, duration):
    audit = STATE.audit
    if audit is None:
        return
    audit.write(orjson.dumps(audit_record(request, identity, response, duration), default=str,
                             option=orjson.OPT_APPEND_NEWLINE))


# -- the CLI ----------------------------------------------------------------------------


@hookimpl
def register_commands(cli):
    import click

    @cli.group("tls")
    def tls_group() -> None:
        """TLS certificates for dockyardd --tlsverify."""

    @tls_group.command("init")
    @click.option("--dir", "directory", required=True, type=click.Path(path_type=Path),
                  help="Where to write ca.pem, the server's cert.pem/key.pem and client/ (created)")
    @click.option("--hostname", "hostnames", multiple=True, metavar="H",
                  help="DNS name or IP for the server certificate (repeatable; localhost and 127.0.0.1 are always in)")
    @click.option("--client", "clients", multiple=True, metavar="NAME",
                  help="Client certificate common name (repeatable; default: client)")
    @click.option("--days", default=825, show_default=True, help="Validity")
    @click.option("--force", is_flag=True, help="Overwrite an existing CA")
    def tls_init(directory: Path, hostnames: tuple[str, ...], clients: tuple[str, ...], days: int, force: bool) -> None:
        """Create a CA, a server certificate and client certificates."""
        from .certs import init

        if (directory / "ca-key.pem").exists() and not force:
            raise click.ClickException(f"{directory / 'ca-key.pem'} exists; pass --force to replace the CA")
        paths = init(directory, hostnames, clients or ("client",), days=days)
        d = directory.resolve()
        click.echo(f"CA:          {d / 'ca.pem'} (key {d / 'ca-key.pem'}: keep it offline)")
        click.echo(f"daemon:      dockyardd --tlsverify --tlscacert {d / 'ca.pem'} "
                   f"--tlscert {d / 'cert.pem'} --tlskey {d / 'key.pem'} -H tcp://0.0.0.0:2376")
        click.echo(f"client:      DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={paths['client'].resolve()}")
        for name in clients or ("client",):
            click.echo(f"client {name}: {(d / 'clients' / name)}")
