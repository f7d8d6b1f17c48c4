"""The authorization policy: an ordered list of rules in a TOML file; the first match decides.

::

    default-message = "not allowed by policy"   # optional: the message when no rule matches

    [[rule]]
    name = "root may read"          # optional, shown in the audit log (default: rule #N)
    uid = [0]                       # principal: any of cn, uid, group, kind, principal
    methods = ["GET", "HEAD"]       # request: any of methods, routes, images, privileged, binds
    action = "allow"

    [[rule]]
    cn = ["ci-runner"]
    routes = ["/containers/create", "/containers/{id}/start", "/images/*"]
    images = ["registry.example.com/", "busybox"]
    privileged = false
    binds = false
    action = "allow"

    [[rule]]
    action = "deny"
    message = "ask an admin"

Matching: every condition a rule names must hold (a missing condition matches anything); a
list matches when any element does. ``cn`` is the TLS subject common name, ``uid`` the Unix
peer uid, ``group`` any of the identity's groups, ``kind`` the identity kind (``unix``,
``tls``, ``anonymous``), ``principal`` a glob on the identity name. ``routes`` are route
templates (``/containers/{id}/start``) or globs (``/containers/*``) matched against the
template and the unversioned path. ``images`` (prefixes) matches ``POST /containers/create``'s ``Image``.

Privilege conditions name privileges, not request fields. They are checked twice: when the
request arrives, against what its body asks for by itself (``dockyard.containers.effective.
requested``), and again by core, before anything is created or started, against the
**effective** container (the ``authorize_container`` hook: every default, ``container:X``
namespace, volume driver option and build option resolved). Both must allow. They apply to
container create/start/restart, exec create/start, ``/build`` (its RUN containers) and
``/volumes/create`` (a volume binding a host path is that path)::

    privileged = false                  # no --privileged, and by default none of the below
    host_namespaces = ["net"]           # host namespaces allowed: net pid ipc uts user cgroup
    host_paths = ["/srv/data"]          # host path prefixes allowed (binds, bind volumes...)
    capabilities = ["NET_ADMIN"]        # capabilities beyond Docker's default set
    devices = ["/dev/fuse"]             # host devices (globs); "rule:c 10:229 rwm" for cgroup rules
    unconfined = ["seccomp"]            # off allowed: seccomp apparmor label systempaths (or false)
    binds = false                       # = host_paths = [] (and no VolumesFrom)

A list allows exactly what it names (``[]`` or ``false``: nothing); a missing key allows
anything, except that ``privileged = false`` makes every missing one of ``host_namespaces``,
``capabilities``, ``devices`` and ``unconfined`` mean nothing, and ``binds = false`` makes a
missing ``host_paths`` mean nothing. Host paths are compared after ``realpath`` on the host
(``/etc/../``, ``//``, symlinks, trailing slashes resolved), by whole path components.
A body that is not JSON, or not shaped as the daemon expects (``HostConfig`` not an
object...), fails closed: an ``allow`` rule with body conditions does not match it, a ``deny``
rule with body conditions does.

No rule matches: denied. A configured policy therefore denies by default.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.containers import effective
from dockyard.containers.effective import Privileges
from dockyard.identity import Decision, Identity

from dockyard.versions import split_version

PRIVILEGE_LISTS = ("host_namespaces", "host_paths", "capabilities", "devices", "unconfined")
RULE_KEYS = {"name", "cn", "uid", "group", "kind", "principal", "methods", "routes", "images",
             "privileged", "binds", "action", "message", *PRIVILEGE_LISTS}
NAMESPACES = frozenset(effective.NAMESPACE_FIELDS)
UNCONFINED = frozenset(effective.UNCONFINED)
TOP_KEYS = {"rule", "default-message"}
CREATE = "/containers/create"
EXEC = "/containers/{id}/exec"


class PolicyError(ValueError):
    pass


class _Unreadable:
    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE = _Unreadable()  # the body given to decide() when the request's body is not JSON


def _strings(where: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {key} must be a string or a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class Rule:
    name: str
    allow: bool
    message: str = ""
    cn: tuple[str, ...] | None = None
    uid: tuple[int, ...] | None = None
    group: tuple[str, ...] | None = None
    kind: tuple[str, ...] | None = None
    principal: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    routes: tuple[str, ...] | None = None
    images: tuple[str, ...] | None = None
    privileged: bool | None = None
    binds: bool | None = None
    host_namespaces: frozenset[str] | None = None
    host_paths: tuple[str, ...] | None = None
    capabilities: frozenset[str] | None = None
    devices: tuple[str, ...] | None = None
    unconfined: frozenset[str] | None = None

    @property
    def has_privilege_conditions(self) -> bool:
        return self.privileged is not None or self.binds is not None or any(
            getattr(self, k) is not None for k in PRIVILEGE_LISTS)

    @classmethod
    def parse(cls, index: int, raw: Any) -> "Rule":
        where = f"rule #{index}"
        if not isinstance(raw, dict):
            raise PolicyError(f"{where}: expected a table ([[rule]])")
        unknown = sorted(set(raw) - RULE_KEYS)
        if unknown:
            raise PolicyError(f"{where}: unknown key(s): {', '.join(unknown)}")
        name = raw.get("name", where)
        if not isinstance(name, str):
            raise PolicyError(f"{where}: name must be a string")
        where = f"rule #{index} ({name})" if "name" in raw else where
        action = raw.get("action")
        if action not in ("allow", "deny"):
            raise PolicyError(f"{where}: action must be \"allow\" or \"deny\"")
        message = raw.get("message", "")
        if not isinstance(message, str):
            raise PolicyError(f"{where}: message must be a string")
        kw: dict[str, Any] = {}
        for key in ("cn", "group", "kind", "principal", "routes", "images"):
            if key in raw:
                kw[key] = _strings(where, key, raw[key])
        if "methods" in raw:
            kw["methods"] = tuple(m.upper() for m in _strings(where, "methods", raw["methods"]))
        if "uid" in raw:
            uids = raw["uid"] if isinstance(raw["uid"], list) else [raw["uid"]]
            if not all(isinstance(u, int) and not isinstance(u, bool) for u in uids):
                raise PolicyError(f"{where}: uid must be an integer or a list of integers")
            kw["uid"] = tuple(uids)
        for key in ("privileged", "binds"):
            if key in raw:
                if raw[key] is not False:
                    raise PolicyError(f"{where}: {key} may only be false (\"not {key}\")")
                kw[key] = False
        for key in PRIVILEGE_LISTS:
            if key in raw:
                value = [] if raw[key] is False else raw[key]
                kw[key] = _privilege_list(where, key, _strings(where, key, value))
        if "binds" in kw and "host_paths" in kw and kw["host_paths"]:
            raise PolicyError(f"{where}: binds = false and host_paths conflict (use host_paths alone)")
        return cls(name=name, allow=action == "allow", message=message, **kw)

    def allowances(self) -> dict[str, Any]:
        """What each privilege class may hold (None: anything), defaults applied."""
        none_if_unprivileged: frozenset[str] | None = frozenset() if self.privileged is False else None
        return {
            "host_namespaces": self.host_namespaces if self.host_namespaces is not None else none_if_unprivileged,
            "capabilities": self.capabilities if self.capabilities is not None else none_if_unprivileged,
            "devices": self.devices if self.devices is not None else (() if self.privileged is False else None),
            "unconfined": self.unconfined if self.unconfined is not None else none_if_unprivileged,
            "host_paths": self.host_paths if self.host_paths is not None else (() if self.binds is False else None),
        }

    def permits(self, p: Privileges) -> bool:
        """Whether every privilege of ``p`` is within what this rule allows."""
        if self.privileged is False and p.privileged:
            return False
        allow = self.allowances()
        for key in ("host_namespaces", "capabilities", "unconfined"):
            if allow[key] is not None and not getattr(p, key) <= allow[key]:
                return False
        if allow["devices"] is not None and not all(
                any(fnmatch.fnmatchcase(d, g) for g in allow["devices"]) for d in p.devices):
            return False
        if allow["host_paths"] is not None and not all(
                any(_under(path, prefix) for prefix in allow["host_paths"]) for path in p.host_paths):
            return False
        return True

    def matches(self, method: str, route: str, path: str, body: Any, identity: Identity,
                privileges: Privileges | None = None) -> bool:
        if self.kind is not None and identity.kind not in self.kind:
            return False
        if self.cn is not None and (identity.kind != "tls" or identity.name not in self.cn):
            return False
        if self.uid is not None and identity.uid not in self.uid:
            return False
        if self.group is not None and not set(self.group) & set(identity.groups):
            return False
        if self.principal is not None and not any(fnmatch.fnmatchcase(identity.name, p) for p in self.principal):
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.routes is not None and not any(
            r == route or fnmatch.fnmatchcase(route, r) or fnmatch.fnmatchcase(path, r) for r in self.routes
        ):
            return False
        if self.images is None and not self.has_privilege_conditions:
            return True
        fields = _body_fields(body)
        if fields is None:  # a body we cannot read as the handler would: fail closed
            return not self.allow
        body, host_config, mounts = fields
        if self.images is not None and method == "POST" and route == CREATE:
            image = body.get("Image")
            if not isinstance(image, str) or not any(image.startswith(p) for p in self.images):
                return False
        if not self.has_privilege_conditions:
            return True
        if privileges is None:  # the privileges could not be worked out: fail closed
            return not self.allow
        if self.binds is False and host_config.get("VolumesFrom"):
            return False  # binds = false has always refused other containers' mounts
        return self.permits(privileges)


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _privilege_list(where: str, key: str, values: tuple[str, ...]) -> Any:
    if key == "host_namespaces":
        bad = sorted(set(values) - NAMESPACES)
        if bad:
            raise PolicyError(f"{where}: host_namespaces: unknown namespace(s) {', '.join(bad)} "
                              f"(known: {', '.join(sorted(NAMESPACES))})")
        return frozenset(values)
    if key == "unconfined":
        bad = sorted(set(values) - UNCONFINED)
        if bad:
            raise PolicyError(f"{where}: unconfined: unknown kind(s) {', '.join(bad)} "
                              f"(known: {', '.join(sorted(UNCONFINED))})")
        return frozenset(values)
    if key == "capabilities":
        return frozenset(v.upper() if v.upper().startswith("CAP_") else "CAP_" + v.upper() for v in values)
    if key == "host_paths":
        for v in values:
            if not v.startswith("/"):
                raise PolicyError(f"{where}: host_paths: {v!r} is not an absolute path")
        # compared with realpath'd host paths: resolve the allowed prefixes the same way
        return tuple(os.path.realpath(posixpath.normpath(v)) for v in values)
    return tuple(values)


def host_privileges(host_config: Any) -> bool:
    """Whether a HostConfig, read alone, asks for more than a default container gets (what
    ``privileged = false`` refuses at the request). Any true-ish ``Privileged`` counts: the
    daemon takes ``"Privileged": 1`` as privileged; a shape the daemon refuses counts too."""
    try:
        p = effective.requested(CREATE, {"HostConfig": host_config})
    except ValueError:
        return True
    return bool(p.privileged or p.host_namespaces or p.capabilities or p.devices or p.unconfined)


def requested_privileges(route: str, body: Any, query: Any = None) -> Privileges | None:
    """What the request asks for by itself; None when its body cannot be read (fail closed)."""
    if body is UNREADABLE:
        return None
    try:
        return effective.requested(route, body, query)
    except (ValueError, TypeError, AttributeError):
        return None


def _body_fields(body: Any) -> tuple[dict, dict, list] | None:
    """(body, HostConfig, Mounts) of a request body, or None when its shape is not what the
    daemon accepts (then a rule that looks at bodies decides against the caller)."""
    if body is None:
        return {}, {}, []
    if body is UNREADABLE or not isinstance(body, dict):
        return None
    host_config = body.get("HostConfig")
    if host_config is None:
        host_config = {}
    if not isinstance(host_config, dict):
        return None
    mounts = host_config.get("Mounts")
    if mounts is None:
        mounts = []
    if not isinstance(mounts, list):
        return None
    return body, host_config, mounts


@dataclass(frozen=True)
class Policy:
    path: Path
    rules: tuple[Rule, ...]
    default_message: str = "denied by policy: no rule allows this request"

    @classmethod
    def load(cls, path: Path) -> "Policy":
        path = Path(path)
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except FileNotFoundError:
            raise PolicyError(f"policy file {path} not found") from None
        except OSError as exc:
            raise PolicyError(f"policy file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {path}: {exc}") from None
        try:
            unknown = sorted(set(raw) - TOP_KEYS)
            if unknown:
                raise PolicyError(f"unknown key(s): {', '.join(unknown)} (rules are [[rule]] tables)")
            rules = raw.get("rule", [])
            if not isinstance(rules, list):
                raise PolicyError("rule must be an array of tables ([[rule]])")
            default = raw.get("default-message", cls.default_message)
            if not isinstance(default, str):
                raise PolicyError("default-message must be a string")
            return cls(path, tuple(Rule.parse(i + 1, r) for i, r in enumerate(rules)), default)
        except PolicyError as exc:
            raise PolicyError(f"policy file {path}: {exc}") from None

    def decide(self, method: str, route: str, path: str, body: Any, identity: Identity,
               privileges: Privileges | None | _Unreadable = UNREADABLE, query: Any = None) -> Decision:
        """The first matching rule's answer. ``privileges``: the effective ones (from the
        ``authorize_container`` hook); by default what the request asks for by itself."""
        if privileges is UNREADABLE:
            privileges = requested_privileges(route, body, query)
        _, path = split_version(path)
        if any(part in ("", ".", "..") for part in path.split("/")[1:-1]) or path.endswith(("/.", "/..")):
            path = ""  # a path with dot or empty segments matches rules by its route template only
        for rule in self.rules:
            if rule.matches(method, route, path, body, identity, privileges):
                if rule.allow:
                    return Decision.permit(rule.name)
                return Decision.deny(rule.message or f"denied by policy rule {rule.name!r}", rule.name)
        return Decision.deny(self.default_message, "default")
