"""Seams of the containers service (issue 16.5): a thin facade over one module per verb, and
handlers that only use services' public methods."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import dockyard
from dockyard.containers.service import ContainerService

CORE = Path(dockyard.__file__).resolve().parent
# what a handler reaches a service through: svc, service, daemon.containers, request.app[...].images ...
SERVICE = re.compile(r"(^|\.)(\w*svc|\w*service|containers|images|networks|volumes|execs|health|events|registry|"
                     r"daemon)$|^service_of\(")


def test_the_facade_has_no_private_methods() -> None:
    """Nothing outside the service can call a private method of it: there is none (the verbs'
    modules get the service and use its public methods: save, save_soft, emit, wake, ...)."""
    private = [n for n in vars(ContainerService) if n.startswith("_") and not n.startswith("__")]
    assert private == []


def test_handlers_never_call_a_services_private_method() -> None:
    offenders = []
    for path in sorted((CORE / "api").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and SERVICE.search(ast.unparse(node.value)):
                offenders.append(f"api/{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []


def test_the_verbs_live_in_their_own_modules() -> None:
    """service.py is the facade (state and one-line delegations); the verbs are in create,
    start, monitor, stop, update, queries and reconcile."""
    text = (CORE / "containers" / "service.py").read_text()
    assert len(text.splitlines()) < 300
    for name in ("create", "start", "monitor", "stop", "update", "queries", "reconcile"):
        assert (CORE / "containers" / f"{name}.py").is_file()
    for crash in ("container.start.after_intent", "container.start.after_launch", "container.rm.after_intent",
                  "container.rm.after_runtime", "container.rm.after_layer"):
        assert crash not in text  # with the steps they order, in start.py and stop.py
