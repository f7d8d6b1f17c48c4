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
template and the unversioned path. The body conditions inspect only requests that carry
them: ``images`` (prefixes) ``POST /containers/create``'s ``Image``; ``privileged = false``
holds unless the request asks for host privileges: ``HostConfig.Privileged`` (or an exec's
``Privileged``) true-ish, any ``CapAdd``, ``Devices`` or ``DeviceCgroupRules``, a ``host``
``PidMode``/``IpcMode``/``UTSMode``/``UsernsMode``/``CgroupnsMode``/``NetworkMode``, or a
``SecurityOpt`` that turns confinement off (``unconfined``, ``label=disable``); ``binds = false``
holds unless ``HostConfig.Binds``, ``VolumesFrom`` (another container's mounts) or a
``HostConfig.Mounts`` entry other than a volume or tmpfs is given. (Volumes can reach host paths
too, through the ``local`` driver's ``o=bind`` option: restrict ``/volumes/create`` by route.) A body that is not JSON, or not shaped as the daemon expects (``HostConfig`` not an
object...), fails closed: an ``allow`` rule with body conditions does not match it, a ``deny``
rule with body conditions does.

No rule matches: denied. A configured policy therefore denies by default.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.identity import Decision, Identity

from dockyard.versions import split_version

RULE_KEYS = {"name", "cn", "uid", "group", "kind", "principal", "methods", "routes", "images",
             "privileged", "binds", "action", "message"}
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
        return cls(name=name, allow=action == "allow", message=message, **kw)

    def matches(self, method: str, route: str, path: str, body: Any, identity: Identity) -> bool:
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
        if self.images is None and self.privileged is None and self.binds is None:
            return True
        fields = _body_fields(body)
        if fields is None:  # a body we cannot read as the handler would: fail closed
            return not self.allow
        body, host_config, mounts = fields
        if self.images is not None and method == "POST" and route == CREATE:
            image = body.get("Image")
            if not isinstance(image, str) or not any(image.startswith(p) for p in self.images):
                return False
        if self.privileged is False:
            if route == EXEC and body.get("Privileged"):
                return False
            if host_privileges(host_config):
                return False
        if self.binds is False:
            if host_config.get("Binds") or host_config.get("VolumesFrom"):
                return False
            if any(not isinstance(m, dict) or m.get("Type") not in ("volume", "tmpfs", "npipe") for m in mounts):
                return False
        return True


HOST_MODES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode", "NetworkMode")
PRIVILEGE_KEYS = ("Privileged", "CapAdd", "Devices", "DeviceCgroupRules")


def host_privileges(host_config: dict) -> bool:
    """Whether a HostConfig asks for more than an unprivileged container gets. Any true-ish
    value counts: the daemon takes ``"Privileged": 1`` as privileged, so does the policy."""
    if any(host_config.get(key) for key in PRIVILEGE_KEYS):
        return True
    if any(str(host_config.get(key) or "").lower() == "host" for key in HOST_MODES):
        return True
    options = host_config.get("SecurityOpt") or []
    if not isinstance(options, list):
        return True  # not what the daemon accepts: fail closed
    return any(not isinstance(o, str) or "unconfined" in o or o.replace(":", "=") == "label=disable"
               for o in options)


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

    def decide(self, method: str, route: str, path: str, body: Any, identity: Identity) -> Decision:
        _, path = split_version(path)
        if any(part in ("", ".", "..") for part in path.split("/")[1:-1]) or path.endswith(("/.", "/..")):
            path = ""  # a path with dot or empty segments matches rules by its route template only
        for rule in self.rules:
            if rule.matches(method, route, path, body, identity):
                if rule.allow:
                    return Decision.permit(rule.name)
                return Decision.deny(rule.message or f"denied by policy rule {rule.name!r}", rule.name)
        return Decision.deny(self.default_message, "default")
