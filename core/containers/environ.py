"""The environment a container's process (or an exec's) starts with, as Docker builds it.

* ``Config.Env`` keeps what the client gave, ``"Foo"`` without a value included (moby's
  config merge: the request's entries first, then the image's whose name the request does not
  set), see :func:`merge_create_env`.
* At start moby's ``CreateDaemonEnvironment``: ``PATH``, ``HOSTNAME``, ``TERM=xterm`` with a
  TTY, the link variables, then ``Config.Env`` replacing or appending; an entry without ``=``
  unsets (``ReplaceOrAppendEnvValues``).
* ``HOME``, as runc sets it when the environment has none: the user's home in the image's
  ``/etc/passwd`` (``/root`` for root), ``/`` when it has no entry.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgument

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def merge_create_env(image_env: list[str], env: list[str]) -> list[str]:
    """``Config.Env`` at create (moby's ``merge``): the request's entries as given, then the
    image's entries whose name the request does not set; no request env: the image's."""
    for item in env:
        if not item.partition("=")[0]:
            raise InvalidArgument(f"invalid environment variable: {item}")
    if not env:
        return list(image_env)
    keys = {item.partition("=")[0] for item in env}
    return [*env, *(item for item in image_env if item.partition("=")[0] not in keys)]


def replace_or_append(defaults: list[str], overrides: list[str]) -> list[str]:
    """moby's ``ReplaceOrAppendEnvValues``: an override replaces the default of its name or is
    appended; a name without ``=`` removes that default (and is not passed on itself)."""
    out: list[str | None] = list(defaults)
    index = {item.partition("=")[0]: i for i, item in enumerate(out) if item is not None}
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep:
            if key in index:
                out[index.pop(key)] = None
            continue
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return [item for item in out if item is not None and "=" in item]


def daemon_environment(hostname: str, tty: bool, env: list[str], linked: list[str] | None = None) -> list[str]:
    """moby's ``CreateDaemonEnvironment``: the process's environment from ``Config.Env``."""
    defaults = [DEFAULT_PATH, f"HOSTNAME={hostname}", *(["TERM=xterm"] if tty else []), *(linked or [])]
    return replace_or_append(defaults, env)


def home_of(passwd: list[list[str]], user: str) -> str:
    """The home runc gives a user without ``HOME`` in the environment: its ``/etc/passwd``
    entry's (by name, or by uid for a number), ``/`` if it has none. ``passwd`` is the
    image's file split in fields."""
    name = (user or "0").partition(":")[0]
    for entry in passwd:
        if len(entry) >= 6 and (entry[0] == name or (name.isdigit() and entry[2] == name)):
            return entry[5] or "/"
    return "/"


def with_home(env: list[str], passwd: list[list[str]], user: str) -> list[str]:
    if any(item.startswith("HOME=") for item in env):
        return env
    return [*env, f"HOME={home_of(passwd, user)}"]


def read_passwd(root: Path) -> list[list[str]]:
    from .spec import _read_db

    return _read_db(root, "passwd")
