"""The layout rules of the project that code can check: common/ is shared code that never reaches into algorithms/."""

from __future__ import annotations

import ast

from conftest import ROOT


def imported_modules(path) -> set[str]:
    """Every module an `import` / `from ... import` names in the file (at any depth, including in functions), and
    every string passed to importlib.import_module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            names.add(arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg))
    return names


def test_common_never_imports_from_algorithms():
    offenders = {path.name: sorted(m for m in imported_modules(path) if "algorithms" in m)
                 for path in sorted((ROOT / "common").glob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}, offenders
