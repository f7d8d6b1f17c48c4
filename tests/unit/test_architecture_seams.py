"""Architecture seams of issue 16.5 that are checked in code, not only in review."""

from __future__ import annotations

import ast
from pathlib import Path

import dockyard

CORE = Path(dockyard.__file__).resolve().parent


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported at run time (not under ``if TYPE_CHECKING:``), relative names as written."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom):
                out.add("." * node.level + (node.module or ""))
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                visit([n for n in getattr(node, field, []) if isinstance(n, ast.stmt)])

    visit(tree.body)
    return out


def test_image_archive_and_model_do_not_import_the_image_service() -> None:
    for name in ("archive.py", "model.py"):
        assert ".service" not in _runtime_imports(CORE / "images" / name), name


def test_image_types_are_one_class_wherever_imported() -> None:
    from dockyard import images
    from dockyard.images import model, service

    for name in ("Image", "Layer", "PendingImage", "StagedLayer", "Txn"):
        assert getattr(service, name) is getattr(model, name), name
    assert images.Image is model.Image and images.Layer is model.Layer


def test_a_containers_etc_files_have_one_writer() -> None:
    """hostname, hosts and resolv.conf are named (and so written) only in containers/etcfiles.py;
    record.py only reports their paths in inspect."""
    import re

    named = re.compile(r'/\s*"(hosts|resolv\.conf|hostname)"')
    offenders = [str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
                 if p.name not in ("etcfiles.py", "record.py") and named.search(p.read_text())]
    assert offenders == []


def test_etc_files_are_rewritten_in_place(tmp_path: Path) -> None:
    import os

    from dockyard.containers import etcfiles

    etcfiles.write(tmp_path, {"Hostname": "h"}, {"Dns": ["192.0.2.1"]})
    inodes = {name: os.stat(p).st_ino for name, p in etcfiles.paths(tmp_path).items()}
    etcfiles.write_resolv_conf(tmp_path, "nameserver 127.0.0.11\n")
    etcfiles.write_hosts(tmp_path, {"Hostname": "h"}, {}, "10.0.0.2")
    etcfiles.append_hosts(tmp_path, ["10.0.0.3\tother"])
    assert {name: os.stat(p).st_ino for name, p in etcfiles.paths(tmp_path).items()} == inodes
    assert etcfiles.read_resolv_conf(tmp_path) == "nameserver 127.0.0.11\n"
    assert (tmp_path / "hosts").read_text().endswith("10.0.0.2\th\n10.0.0.3\tother\n")


def test_api_keeps_no_service_state_in_module_caches() -> None:
    """Daemon.start builds every service (registry and build cache too); api/ only looks them up.
    Allowed: memos of pure functions of static types (msgspec decoders and type info)."""
    allowed = {("models.py", "_INFO_CACHE"), ("models.py", "_decoder")}
    found = []
    for path in sorted((CORE / "api").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
                value = ast.unparse(node.value) if node.value is not None else ""
                if any("cache" in n.lower() for n in names) or "WeakKeyDictionary" in value \
                        or "WeakValueDictionary" in value:
                    found += [(path.name, n) for n in names]
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any("cache" in ast.unparse(d) for d in node.decorator_list):
                    found.append((path.name, node.name))
    assert set(found) <= allowed, sorted(set(found) - allowed)


def test_composition_root_builds_every_service() -> None:
    import inspect

    from dockyard.daemon import Daemon

    source = inspect.getsource(Daemon.start)
    for built in ("ImageService(", "RegistryService(", "BuildCache(", "VolumeService(", "NetworkService(",
                  "ContainerService("):
        assert built in source, built
    for path in (CORE / "api").glob("*.py"):
        text = path.read_text()
        for service in ("RegistryService(", "BuildCache(", "ExecService(", "ImageService("):
            assert service not in text, (path.name, service)
