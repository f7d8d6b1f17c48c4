"""Every hook is documented where it is declared and has a test of its own (datasette's rule)."""

import inspect
import re
from pathlib import Path

import pytest

from dockyard import hookspecs

HOOKS = sorted(
    name for name, f in vars(hookspecs).items()
    if inspect.isfunction(f) and hasattr(f, "dockyard_spec")
)
TESTS = Path(__file__).parent


def all_test_sources() -> str:
    roots = [TESTS, TESTS.parent / "plugins"]
    return "\n".join(p.read_text() for r in roots for p in r.rglob("test_*.py"))


def test_the_expected_hooks_exist():
    assert {"startup", "shutdown", "authenticate_request", "authorize_request", "container_spec",
            "on_event", "register_routes", "register_commands", "handle_exception"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert len(doc) > 80, f"hookspec {hook} needs a docstring saying when it runs and what it returns"
    for param in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert f":param {param}:" in doc, f"hookspec {hook} does not document :param {param}:"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    assert re.search(rf"def test_hook_{hook}\b", all_test_sources()), f"no test_hook_{hook} in tests/"
