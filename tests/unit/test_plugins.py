import asyncio
import types

import pytest

from dockyard import hookimpl
from dockyard.errors import PluginError
from dockyard.plugins import Plugins, call_hook, first_answer


def module(**funcs):
    m = types.ModuleType("throwaway")
    for name, f in funcs.items():
        setattr(m, name, f)
    return m


def test_misspelled_hook_fails_check_pending():
    plugins = Plugins()

    @hookimpl
    def on_evnet(event):  # typo: no such hook
        pass

    plugins.register(module(on_evnet=on_evnet), "dockyard.hooks", "typo")
    with pytest.raises(PluginError, match="on_evnet"):
        plugins.check()


def test_call_hook_awaits_async_and_sync_results():
    plugins = Plugins()

    @hookimpl
    def register_routes(daemon):
        return "sync"

    @hookimpl
    async def register_routes_async(daemon):
        return "async"

    plugins.register(module(register_routes=register_routes), "dockyard.hooks", "a")
    plugins.register(types.SimpleNamespace(register_routes=hookimpl(specname="register_routes")(register_routes_async)),
                     "dockyard.hooks", "b")
    got = asyncio.run(call_hook(plugins.hook.register_routes, daemon=None))
    assert sorted(got) == ["async", "sync"]


def test_first_answer_stops_at_the_first_non_none():
    plugins = Plugins()
    calls = []

    @hookimpl(trylast=True)
    def handle_exception(request, exception):
        calls.append("last")
        return "default"

    @hookimpl
    async def handle_exception_first(request, exception):
        calls.append("first")
        return "custom"

    @hookimpl
    def handle_exception_abstain(request, exception):
        calls.append("abstain")
        return None

    plugins.register(module(handle_exception=handle_exception), "dockyard.hooks", "default")
    plugins.register(module(handle_exception=hookimpl(specname="handle_exception")(handle_exception_first)), "dockyard.hooks", "first")
    plugins.register(module(handle_exception=hookimpl(specname="handle_exception")(handle_exception_abstain)), "dockyard.hooks", "abstain")
    assert asyncio.run(first_answer(plugins.hook.handle_exception, request=None, exception=None)) == "custom"
    assert calls == ["abstain", "first"]


def test_missing_driver_lists_installed(tmp_path):
    plugins = Plugins()
    with pytest.raises(PluginError) as exc:
        plugins.load_driver("transport", "carrier-pigeon", root=tmp_path, state=tmp_path)
    assert "not installed" in str(exc.value)
    assert "tcp" in str(exc.value) and "unix" in str(exc.value)


def test_blocked_drivers_are_not_offered(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKYARD_DISABLE_PLUGINS", "tcp")
    with pytest.raises(PluginError, match="installed transport drivers: .*unix"):
        Plugins().load_driver("transport", "tcp", root=tmp_path, state=tmp_path)


def test_builtin_error_renderer_is_a_plugin_and_can_be_blocked(monkeypatch):
    plugins = Plugins()
    plugins.load_hook_modules()
    assert "builtin_errors" in [p.name for p in plugins.loaded]
    monkeypatch.setenv("DOCKYARD_DISABLE_PLUGINS", "builtin_errors")
    plugins = Plugins()
    plugins.load_hook_modules()
    assert "builtin_errors" not in [p.name for p in plugins.loaded]


def test_driver_skip_falls_back_unless_named(tmp_path, monkeypatch):
    from dockyard import plugins as P
    from dockyard.errors import SkipPlugin

    class Skipper:
        @classmethod
        def check(cls):
            raise SkipPlugin("no such kernel feature")

    from dockyard.testing.fake_storage import FakeStorage

    class Works(FakeStorage):  # a whole storage driver: the loader checks the contract
        pass

    fake = {"skipper": Skipper, "works": Works}
    monkeypatch.setattr(P, "entry_point_names", lambda group: sorted(fake))
    monkeypatch.setattr(P, "_load", lambda group, names: [types.SimpleNamespace(name=n, plugin=fake[n]) for n in names])
    plugins = Plugins()
    driver = plugins.load_driver("storage", None, candidates=("skipper", "works"), root=tmp_path, state=tmp_path)
    assert isinstance(driver, Works) and driver.root == tmp_path / "storage" / "works"
    with pytest.raises(PluginError, match="cannot run on this host: no such kernel feature"):
        plugins.load_driver("storage", "skipper", root=tmp_path, state=tmp_path)
