"""The layout rules of the project that code can check: common/ is shared code that never reaches into algorithms/,
its modules import one another in one direction only, domain knowledge has one home, and no entry file edits
sys.path."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from conftest import ROOT


def imported_modules(path) -> set[str]:
    """Every module an `import` / `from ... import` names in the file (at any depth, including in functions), and
    every string passed to importlib.import_module. `from package import name` counts as `package.name`."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            names.add(arg.value if isinstance(arg, ast.Constant) else ast.unparse(arg))
    return names


def common_modules() -> dict[str, object]:
    """'common.datasets' -> its path, for every module under common/ (a package by its __init__.py)."""
    modules = {}
    for path in sorted((ROOT / "common").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of common/ it imports (at any depth: a function-level import is an edge too)."""
    modules = common_modules()
    return {name: {m for m in imported_modules(path) if m in modules and m != name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None (depth-first search with a stack of the path)."""
    state: dict[str, str] = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_common_never_imports_from_algorithms_and_methods_never_from_datagen():
    offenders = {path.name: sorted(m for m in imported_modules(path) if m.startswith(("algorithms", "datagen")))
                 for path in common_modules().values()}
    offenders |= {path.name: sorted(m for m in imported_modules(path) if m.startswith("datagen"))
                  for path in sorted((ROOT / "algorithms").glob("*.py"))}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_no_import_circle_in_common():
    """Bug: datasets -> domains -> datasets (hidden in function-level imports) made each module readable only with the
    other open, and an import order that works by accident."""
    assert find_cycle(import_graph()) is None, find_cycle(import_graph())


def test_the_circle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


DOMAIN_KNOWLEDGE = ("REFERENCE_RETURNS", "dataset_family", "normalized_score", "infer_env_id", "setup_for_d4rl",
                    "setup_for_dataset", "setup_for_env", "domain_of_env")


def test_domain_knowledge_has_one_home_that_depends_on_nothing_that_depends_on_it():
    """Bug: reference returns and families lived in datasets.py, evaluation setups in domains.py and evaluation.py,
    the three calling one another. Now domains.py defines them all and imports only modules that never reach it."""
    graph = import_graph()
    assert graph["common.domains"] <= {"common.errors"}, graph["common.domains"]
    homes = {}
    for module, path in common_modules().items():
        for node in ast.parse(path.read_text()).body:
            names = [node.name] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) else \
                [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            for name in set(names) & set(DOMAIN_KNOWLEDGE):
                homes.setdefault(name, []).append(module)
    assert homes == {name: ["common.domains"] for name in DOMAIN_KNOWLEDGE}, homes


def test_no_file_edits_sys_path():
    """The project is installed (make install: an editable install), so no file reaches the package by editing the
    import path. tools/parity/generate.py alone puts the authors' checkout (not this project) on it."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if ".venv" in path.parts or path == ROOT / "tools" / "parity" / "generate.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("sys.path."):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_the_installed_project_imports_from_anywhere(tmp_path):
    """Bug: with the sys.path edits gone, a package the entry files import by name but the install does not
    provide (configs/, imported by scripts/bench.py and scripts/results.py) failed only when a script ran as a
    command. Every module of the installed packages imports in a fresh process outside the checkout."""
    names = []
    for package in ("common", "algorithms", "datagen", "configs"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], cwd=tmp_path, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1:]
