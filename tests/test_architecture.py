"""DESIGN.md: nn/, models/ and losses.py import only torch (and numpy); no I/O, no logging, no device choice."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "argusrec"
MODEL_CODE = sorted([*PACKAGE.glob("nn/*.py"), *PACKAGE.glob("models/*.py"), PACKAGE / "losses.py"])
ALLOWED_TOP = {"torch", "numpy", "math", "typing", "dataclasses", "collections", "enum", "functools", "__future__"}
# model code may use other model code, the typed config (builders only read it) and the pure samplers
ALLOWED_OWN = ("argusrec.nn", "argusrec.models", "argusrec.losses", "argusrec.config", "argusrec.data.negatives")
FORBIDDEN_CALLS = {"open", "print", "input"}


def _imports(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", MODEL_CODE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_model_code_imports_only_torch_numpy_and_model_code(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = [
        name for name in _imports(tree) if name.split(".")[0] not in ALLOWED_TOP and not name.startswith(ALLOWED_OWN)
    ]
    assert not bad, f"{path.name} imports {bad}"
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS
    }
    assert not calls, f"{path.name} calls {sorted(calls)}"
    assert ".cuda(" not in path.read_text(), f"{path.name} chooses a device"


def test_the_check_sees_the_model_code() -> None:
    names = {p.name for p in MODEL_CODE}
    assert {"hstu.py", "fuxi.py", "transformer.py", "losses.py", "builders.py"} <= names
