"""Writes docs/SETTINGS.md from the config files: for every method on every domain, the budget, the evaluation and
every setting that differs from the method's locomotion config, each with the source its config line names.

    python scripts/settings_table.py            # writes docs/SETTINGS.md
    python scripts/settings_table.py --check    # exit 1 if docs/SETTINGS.md is not what the configs give

The sources are read from the comments of the `c.<field> = ...` lines (the text after `src:`; a comment may go on
over the following lines that start with `#   `), with `ast` and `tokenize`; the values from `get_config`.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "SETTINGS.md"
METHODS = ("td3_bc", "cql", "misa")
DOMAINS = ("mujoco", "antmaze", "adroit", "kitchen")
BASE_DOMAIN = "mujoco"  # each method's other domains are shown as overrides of this one
SKIP = {"sweep", "dataset"}  # derived (sweep) or shown in its own column (dataset)
NOT_PUBLISHED = "not published: this project's choice ("


# ------------------------------------------------------------------------------------------------
# Reading the sources from the files
# ------------------------------------------------------------------------------------------------


def comments_by_line(text: str) -> dict[int, str]:
    """Line number -> the comment on that line (without '#')."""
    return {tok.start[0]: tok.string.lstrip("#").strip()
            for tok in tokenize.generate_tokens(io.StringIO(text).readline) if tok.type == tokenize.COMMENT}


def assignment_comment(node: ast.stmt, lines: list[str], comments: dict[int, str]) -> str:
    """The comment of a statement: on its lines, then on the `#   ` continuation lines right after it."""
    parts = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
    n = node.end_lineno + 1
    while n <= len(lines) and lines[n - 1].strip().startswith("#   "):
        parts.append(comments[n])
        n += 1
    return " ".join(parts)


def config_assignments(path: Path) -> list[tuple[str, str, int, str]]:
    """Every `c.<field> = ...` of a file: (function name, field, line, comment)."""
    return config_assignments_of_text(path.read_text())


def config_assignments_of_text(text: str) -> list[tuple[str, str, int, str]]:
    """Every `c.<field> = ...` inside a function of a module's text: (function name, field, line, comment)."""
    lines, comments = text.splitlines(), comments_by_line(text)
    found = []
    for func in ast.walk(ast.parse(text)):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "c":
                    found.append((func.name, target.attr, node.lineno, assignment_comment(node, lines, comments)))
    return found


def source_of(comment: str) -> str | None:
    """The text after `src:` in a comment, or None."""
    return comment.split("src:", 1)[1].strip() if "src:" in comment else None


def source_is_valid(source: str | None) -> bool:
    """A source names a file of a known repository (configs.SOURCES), or says it is this project's choice and why."""
    from configs import SOURCES

    if not source:
        return False
    if source.startswith(NOT_PUBLISHED):
        return len(source) > len(NOT_PUBLISHED) + 3 and ")" in source
    key = "|".join(re.escape(name) for name in SOURCES)
    return re.match(rf"({key}) [\w./-]+\.(py|sh|md)\b", source) is not None


def sources(module_name: str, function: str) -> dict[str, str]:
    """field -> source of the `c.<field> = ...` lines of one function (a name ending in `*` matches a suffix)."""
    path = ROOT / (module_name.replace(".", "/") + ".py")
    match = (lambda f: f.endswith(function[1:])) if function.startswith("*") else (lambda f: f == function)
    return {field: source_of(comment) or "" for func, field, _, comment in config_assignments(path) if match(func)}


def config_sources(method: str, module_name: str) -> dict[str, str]:
    """The source of every field a config file's `get_config` sets, or its method's `*_defaults` function sets."""
    found = sources(f"configs.{method}_{BASE_DOMAIN}", "*_defaults")
    found.update(sources(module_name, "get_config"))
    return found


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------


def fmt(value) -> str:
    if isinstance(value, bool) or isinstance(value, str):
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, float) and value >= 1e4 and value == int(value):
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", "_") if value >= 10_000 else str(value)
    return str(tuple(value)) if isinstance(value, (list, tuple)) else str(value)


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def differences(config, base) -> list[str]:
    return [k for k in config if k not in SKIP and (k not in base or config[k] != base[k])]


def field_row(name: str, config, source: str) -> str:
    return f"| `{name}` | `{fmt(config[name])}` | {escape(source) or '(inherited)'} |"


def method_section(method: str) -> list[str]:
    base_name = f"configs.{method}_{BASE_DOMAIN}"
    base, base_src = importlib.import_module(base_name).get_config(), config_sources(method, base_name)
    out = [f"## {method}", ""]
    for domain in DOMAINS:
        name = f"configs.{method}_{domain}"
        module = importlib.import_module(name)
        config, src = module.get_config(), config_sources(method, name)
        src.update({f: f"as {base_name.replace('.', '/')}.py: {base_src[f]}" for f in base_src
                    if f not in src and f in config and config[f] == base[f]})
        out += [f"### {method} on {domain} (`{name.replace('.', '/')}.py`)", "",
                f"Default dataset `{config.dataset}`; {len(module.VARIANTS)} dataset variants; domain "
                f"`{config.get('domain') or '(none: any locomotion or generated dataset)'}`.", "",
                "| setting | value | source |", "|---|---|---|"]
        for field in ("total_steps", "eval_every", "eval_episodes"):
            out.append(field_row(field, config, src.get(field, "")))
        if domain == BASE_DOMAIN:
            fields = [f for f in config if f not in SKIP and f not in ("total_steps", "eval_every", "eval_episodes")]
            fields = [f for f in fields if f in src]  # the method's own fields (the shared ones: config_base.py)
        else:
            fields = [f for f in differences(config, base) if f not in ("total_steps", "eval_every", "eval_episodes")]
        out += [field_row(f, config, src.get(f, "")) for f in fields]
        out += [""] + named_variants(module, config, config_sources(method, base_name))
    return out


def named_variants(module, config, defaults: dict[str, str]) -> list[str]:
    named = getattr(module, "NAMED_VARIANTS", {})
    if not named:
        return []
    out = ["Named variants (`:<name>` or `:<dataset>,<name>`):", ""]
    for name, overrides in named.items():
        varied = module.get_config(name)
        if callable(overrides):
            src = {**defaults, **sources(overrides.__module__, overrides.__name__)}
            doc = " ".join((overrides.__doc__ or "").split()).replace(f"Named variant `{name}`: ", "")
        else:
            src, doc = {}, "a dict of overrides in the file (not published: this project's choice, see its comment)"
        changed = [f for f in differences(varied, config)] + (["dataset"] if varied.dataset != config.dataset else [])
        items = "; ".join(f"`{f}` = `{fmt(varied[f])}`" + (f" ({escape(src[f])})" if src.get(f) else "")
                          for f in changed) or "no change from the default"
        out.append(f"- `{name}`: {escape(doc)} Changes: {items}.")
    return out + [""]


def render() -> str:
    from configs import SOURCES

    out = ["# Settings: every method on every domain, and where each value comes from", "",
           "Generated by `python scripts/settings_table.py` from the config files (`configs/*.py`): the values from",
           "`get_config`, the sources from the `src:` comments of the `c.<field> = ...` lines. Do not edit by hand;",
           "`tests/test_configs.py` checks that this file is what the configs give.", "",
           "Each method's locomotion config lists all its own fields; its other domains list the budget, the",
           "evaluation and every setting that differs from the locomotion config. The shared fields (batch size,",
           "logging, devices) are in `common/config_base.py`, with their sources.", "",
           "Repositories a source names (short name: repository @ commit):", ""]
    out += [f"- `{key}`: {text}" for key, text in SOURCES.items()]
    out.append("")
    for method in METHODS:
        out += method_section(method)
    return "\n".join(out).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/SETTINGS.md differs from the configs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC} is not what the configs give; run python scripts/settings_table.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
