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
