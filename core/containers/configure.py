"""``POST /containers/create``: validate the request and merge it with the image's config,
as Docker does (entrypoint/cmd resolution, env, labels, workdir, user)."""

from __future__ import annotations

import copy
import re
import secrets
from typing import Any

from .. import container_defaults
from ..errors import InvalidArgument
from . import environ, health

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RESTART_POLICIES = {"", "no", "always", "unless-stopped", "on-failure"}

# Docker's (moby pkg/namesgenerator) spirit, shorter lists
_LEFT = ["admiring", "brave", "calm", "clever", "dazzling", "eager", "elated", "epic", "festive", "focused",
         "gallant", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nifty", "peaceful",
         "quirky", "relaxed", "serene", "sharp", "stoic", "trusting", "upbeat", "vibrant", "wizardly", "zen"]
_RIGHT = ["albattani", "babbage", "bohr", "curie", "darwin", "einstein", "euclid", "fermat", "galileo",
          "hopper", "hypatia", "kepler", "lamarr", "lovelace", "meitner", "newton", "noether", "pascal",
          "ptolemy", "ritchie", "shannon", "tesla", "thompson", "torvalds", "turing", "wozniak"]


def random_name() -> str:
    return f"{secrets.choice(_LEFT)}_{secrets.choice(_RIGHT)}"


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidArgument(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


def _as_list(value: Any, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return value


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    """Image env first, overridden by the request's; ``NAME`` without ``=`` unsets nothing."""
    out: dict[str, str] = {}
    for item in [*image_env, *env]:
        key, sep, _ = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if sep:
            out[key] = item
    return list(out.values())


def merge_config(body: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's ``Config``: the request's fields over the image's defaults."""
    img = image_config or {}
    cfg = {k: copy.deepcopy(v) for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    entrypoint = _as_list(cfg.get("Entrypoint"), "Entrypoint")
    cmd = _as_list(cfg.get("Cmd"), "Cmd")
    if entrypoint == [""]:
        entrypoint = []  # `--entrypoint ""`: moby resets it to no entrypoint
    if entrypoint == []:
        # no entrypoint, not the image's; the image's cmd if none is given (moby's merge)
        cfg["Entrypoint"] = None
        cfg["Cmd"] = cmd if cmd else img.get("Cmd")
    elif entrypoint is not None:
        # an explicit entrypoint drops the image's cmd too (docker run --entrypoint)
        cfg["Entrypoint"] = entrypoint
        cfg["Cmd"] = cmd if cmd else None
    else:
        cfg["Entrypoint"] = img.get("Entrypoint")
        cfg["Cmd"] = cmd if cmd else img.get("Cmd")
    if not (cfg.get("Entrypoint") or cfg.get("Cmd")):
        raise InvalidArgument("No command specified")
    env = _as_list(cfg.get("Env"), "Env") or []
    cfg["Env"] = environ.merge_create_env(img.get("Env") or [DEFAULT_PATH], env)  # "Foo" kept as given
    if not any(e.startswith("PATH=") for e in cfg["Env"]):
        cfg["Env"].insert(0, DEFAULT_PATH)
    labels = cfg.get("Labels") or {}
    if not isinstance(labels, dict):
        raise InvalidArgument("Labels must be an object")
    cfg["Labels"] = {**(img.get("Labels") or {}), **labels}
    cfg["WorkingDir"] = cfg.get("WorkingDir") or img.get("WorkingDir") or ""
    if cfg["WorkingDir"] and not cfg["WorkingDir"].startswith("/"):
        raise InvalidArgument(f"the working directory '{cfg['WorkingDir']}' is invalid, "
                              "it needs to be an absolute path")
    cfg["User"] = cfg.get("User") or img.get("User") or ""
    cfg["ExposedPorts"] = {**(img.get("ExposedPorts") or {}), **(cfg.get("ExposedPorts") or {})} or None
    cfg["Volumes"] = {**(img.get("Volumes") or {}), **(cfg.get("Volumes") or {})} or None
    cfg["StopSignal"] = cfg.get("StopSignal") or img.get("StopSignal") or None
    cfg["Healthcheck"] = health.merge(cfg.get("Healthcheck"), img.get("Healthcheck"))
    if cfg["Healthcheck"] is None:
        del cfg["Healthcheck"]
    for key, default in (("Hostname", ""), ("Domainname", ""), ("AttachStdin", False), ("AttachStdout", False),
                         ("AttachStderr", False), ("Tty", False), ("OpenStdin", False), ("StdinOnce", False),
                         ("OnBuild", None)):
        cfg.setdefault(key, default)
    return cfg


def normalize_host_config(hc: dict[str, Any] | None) -> dict[str, Any]:
    hc = copy.deepcopy(hc or {})
    if not isinstance(hc, dict):
        raise InvalidArgument("HostConfig must be an object")
    policy = hc.get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if retries and name != "on-failure":
        raise InvalidArgument("invalid restart policy: maximum retry count can only be used with 'on-failure'")
    if retries < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if hc.get("AutoRemove") and name not in ("no", ""):
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    hc["RestartPolicy"] = {"Name": name, "MaximumRetryCount": retries}
    hc.setdefault("NetworkMode", "default")
    # dockerd fills in its default runtime's name: options.check does, knowing the runtime
    hc["Runtime"] = hc.get("Runtime") or ""
    # Docker's default driver name: the engine's log store serves json-file's options and reading
    # (docker-py's containers.run returns the output only for json-file or journald)
    log_config = hc["LogConfig"] = dict(hc.get("LogConfig") or {})
    log_config["Type"] = log_config.get("Type") or "json-file"
    log_config["Config"] = log_config.get("Config") or {}
    for key in ("Privileged", "ReadonlyRootfs", "AutoRemove", "PublishAllPorts"):
        hc[key] = bool(hc.get(key))
    for key in ("CapAdd", "CapDrop", "SecurityOpt", "Binds", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts",
                "Ulimits", "Tmpfs", "VolumesFrom", "Links"):
        hc.setdefault(key, None)
    hc.setdefault("Init", None)
    # 0 (the docker CLI's "unset") too, as Docker; the daemon's default-shm-size (64 MiB by default)
    hc["ShmSize"] = hc.get("ShmSize") or container_defaults.SHM_SIZE
    for ul in hc.get("Ulimits") or []:
        if not isinstance(ul, dict) or "Name" not in ul:
            raise InvalidArgument("invalid ulimit: expected {Name, Soft, Hard}")
    return hc
