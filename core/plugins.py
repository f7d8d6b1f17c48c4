"""Finding and loading plugins: stevedore finds, pluggy announces, drivers do.

* Hook modules: every entry point in ``dockyard.hooks`` is imported and registered with
  pluggy (a module that fails to import stops the daemon: authorization fails closed).
  ``DOCKYARD_DISABLE_PLUGINS=a,b`` blocks modules (and drivers) by entry-point name.
* Drivers: one per kind, chosen by name from the config, from the kind's entry-point group.
  A driver class may define ``check()`` raising :class:`SkipPlugin`; that is fatal only when
  the operator named the driver, otherwise the next candidate is tried. A loaded driver is
  checked once against its kind's contract (:mod:`dockyard.drivers.contracts`): a missing
  base method is a :class:`PluginError` naming it; its capabilities are recorded and shown.
* :func:`call_hook` is the only bridge between pluggy and asyncio.
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import pluggy
from stevedore import NamedExtensionManager

from . import hookspecs
from .errors import PluginError, SkipPlugin

log = logging.getLogger("dockyard.plugins")

GROUPS = {
    "storage": "dockyard.storage",
    "network": "dockyard.network",
    "cgroups": "dockyard.cgroups",
    "runtime": "dockyard.runtime",
    "volume": "dockyard.volume",
    "transport": "dockyard.transports",
    "hooks": "dockyard.hooks",
}
DISABLE_ENV = "DOCKYARD_DISABLE_PLUGINS"
#: the hooks a module may name in ``inactive_hooks`` (see :mod:`dockyard.hookspecs`)
SETTLED_HOOKS = ("authenticate_request", "authorize_request", "authorize_container", "request_finished")
IDENTITY_CONSUMERS = ("authorize_request", "authorize_container", "request_finished")


@dataclass
class PluginInfo:
    """One loaded plugin, as ``dockyard plugins`` and ``GET /info`` show it."""

    group: str
    name: str
    distribution: str | None
    version: str | None
    hooks: list[str] = field(default_factory=list)
    object: Any = field(default=None, repr=False)
    #: a driver's optional capabilities (its contract record); None for hook modules
    capabilities: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Group": self.group,
            "Name": self.name,
            "Distribution": self.distribution,
            "Version": self.version,
            "Hooks": self.hooks,
        }
        if self.capabilities is not None:
            out["Capabilities"] = self.capabilities
        return out


def blocked_names() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def entry_point_names(group: str) -> list[str]:
    """Installed entry-point names in a group, without importing anything."""
    return sorted({ep.name for ep in metadata.entry_points(group=group)})


def _distribution_of(group: str, name: str) -> tuple[str | None, str | None]:
    for ep in metadata.entry_points(group=group, name=name):
        dist = getattr(ep, "dist", None)
        if dist is not None:
            return dist.metadata["Name"], dist.version
    return None, None


def _load(group: str, names: list[str]) -> list[Any]:
    """Import the named entry points; an import failure is a PluginError naming the plugin."""

    def fail(_manager: Any, ep: Any, exc: BaseException) -> None:
        raise PluginError(f"plugin {ep.name!r} ({group}) failed to load: {exc}") from exc

    if not names:
        return []
    manager: NamedExtensionManager[Any] = NamedExtensionManager(
        group, names, invoke_on_load=False, on_load_failure_callback=fail, name_order=True
    )
    return list(manager)


def make_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get("DOCKYARD_TRACE_HOOKS"):
        pm.trace.root.setwriter(lambda msg: log.debug("hook %s", msg.rstrip()))
        pm.enable_tracing()
    return pm


class Plugins:
    """The daemon's plugin manager plus the list of everything loaded."""

    def __init__(self) -> None:
        self.pm = make_plugin_manager()
        self.loaded: list[PluginInfo] = []
        #: hook name -> the modules whose implementation of it is inactive (:meth:`settle`)
        self.inactive: dict[str, set[Any]] = {}
        #: called after :meth:`settle` (the middleware re-reads its hooks)
        self.on_settle: list[Callable[[], None]] = []

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def load_hook_modules(self) -> None:
        """Register every module in ``dockyard.hooks`` not blocked by name, then validate."""
        group = GROUPS["hooks"]
        blocked = blocked_names()
        names = [n for n in entry_point_names(group) if n not in blocked]
        for name in blocked:
            self.pm.set_blocked(name)
        for ext in _load(group, names):
            self.register(ext.plugin, group, ext.name)
        self.check()

    def register(self, obj: Any, group: str, name: str, capabilities: Iterable[str] | None = None) -> None:
        # drivers of different kinds may share a name (every kind has a "fake")
        self.pm.register(obj, name=name if group == GROUPS["hooks"] else f"{group}:{name}")
        dist, version = _distribution_of(group, name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(obj) or ())
        caps = sorted(capabilities) if capabilities is not None else None
        self.loaded.append(PluginInfo(group, name, dist, version, hooks, obj, caps))

    def settle(self, daemon: Any) -> None:
        """Ask ``inactive_hooks`` once (after ``startup``): which request hooks core can skip
        for the daemon's lifetime. ``authenticate_request`` implementations named there are
        skipped only when no identity consumer stays active (see the hookspec)."""
        named: dict[str, set[Any]] = {}
        for impl in reversed(self.pm.hook.inactive_hooks.get_hookimpls()):  # registration order
            if inspect.iscoroutinefunction(impl.function):
                raise PluginError(f"plugin {impl.plugin_name!r}: inactive_hooks must be synchronous")
            names: Any = impl.function(*[{"daemon": daemon}[a] for a in impl.argnames])
            for name in names or ():
                if name not in SETTLED_HOOKS:
                    raise PluginError(f"plugin {impl.plugin_name!r}: inactive_hooks named {name!r}; "
                                      f"only {', '.join(SETTLED_HOOKS)} can be inactive")
                named.setdefault(name, set()).add(impl.plugin)
        self.inactive = {k: v for k, v in named.items() if k != "authenticate_request"}
        if "authenticate_request" in named and not any(self.active(h).get_hookimpls() for h in IDENTITY_CONSUMERS):
            self.inactive["authenticate_request"] = named["authenticate_request"]
        for name, modules in sorted(self.inactive.items()):
            log.info("hook %s inactive for this config in: %s", name,
                     ", ".join(sorted(str(self.pm.get_name(m)) for m in modules)))
        for listener in list(self.on_settle):
            listener()

    def active(self, name: str) -> Any:
        """The hook ``name`` without the implementations :meth:`settle` found inactive."""
        inactive = self.inactive.get(name)
        hook = getattr(self.pm.hook, name)
        return self.pm.subset_hook_caller(name, inactive) if inactive else hook

    def check(self) -> None:
        """Fail on hook implementations that match no spec (e.g. a misspelled hook name)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from exc

    def load_driver(
        self,
        kind: str,
        name: str | None,
        *,
        candidates: Iterable[str] = (),
        config: Callable[[str], dict[str, Any]] | dict[str, Any] | None = None,
        root: Path,
        state: Path,
    ) -> Any:
        """Load the ``kind`` driver called ``name``, or the first usable of ``candidates``.

        ``config`` is the driver's ``[plugins.NAME]`` table, or a function giving it for a
        candidate's name. ``name`` set means the operator chose it: a missing or skipping driver is fatal,
        with a message that lists what is installed. Without a name, candidates that raise
        :class:`SkipPlugin` are logged and the next one is tried.
        """
        group = GROUPS[kind]
        installed = [n for n in entry_point_names(group) if n not in blocked_names()]
        explicit = name is not None
        wanted = [name] if explicit else list(candidates)
        reasons = []
        for choice in wanted:
            if choice not in installed:
                if explicit:
                    raise PluginError(
                        f"{kind} driver {choice!r} is not installed; installed {kind} drivers: "
                        f"{', '.join(installed) or 'none'}"
                    )
                continue
            (ext,) = _load(group, [choice])
            cls = ext.plugin
            try:
                check = getattr(cls, "check", None)
                if check is not None:
                    check()
            except SkipPlugin as exc:
                if explicit:
                    raise PluginError(f"{kind} driver {choice!r} cannot run on this host: {exc}") from exc
                log.info("skipping %s driver %s: %s", kind, choice, exc)
                reasons.append(f"{choice}: {exc}")
                continue
            section = dict((config(choice) if callable(config) else config) or {})
            driver_root, driver_state = root / kind / choice, state / kind / choice
            driver_root.mkdir(parents=True, exist_ok=True)
            driver_state.mkdir(parents=True, exist_ok=True)
            try:
                driver = cls(config=section, root=driver_root, state=driver_state)
            except (PluginError, SkipPlugin):
                raise
            except Exception as exc:  # a driver that cannot start is a startup error
                raise PluginError(f"{kind} driver {choice!r} failed to start: {exc}") from exc
            from .drivers import contracts

            record = contracts.check(kind, choice, driver)  # once: core asks the record
            self.register(driver, group, choice, record.capabilities)
            return driver
        raise PluginError(
            f"no usable {kind} driver among {', '.join(map(str, wanted)) or 'none'}"
            + (f" ({'; '.join(reasons)})" if reasons else "")
            + f"; installed {kind} drivers: {', '.join(installed) or 'none'}"
        )

    def drivers(self, kind: str) -> list[PluginInfo]:
        return [p for p in self.loaded if p.group == GROUPS[kind]]


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable (datasette's bridge for pluggy results)."""
    if inspect.isawaitable(value):
        return await value
    return value


async def call_hook(hook: Any, **kwargs: Any) -> list[Any]:
    """Call a pluggy hook and await every awaitable result; None results are dropped."""
    results = []
    for result in hook(**kwargs):
        result = await await_me_maybe(result)
        if result is not None:
            results.append(result)
    return results


async def first_answer(hook: Any, **kwargs: Any) -> Any:
    """The first non-None answer of a hook, awaiting each implementation in call order.

    Later implementations are not called once one has answered.
    """
    for impl in reversed(hook.get_hookimpls()):
        args = {k: kwargs[k] for k in impl.argnames}
        result = await await_me_maybe(impl.function(**args))
        if result is not None:
            return result
    return None
