"""Mutation check: each plausible bug in scripts/mutations.toml must make the tests named for it fail.

    python scripts/mutants.py                  # every mutation (make mutants)
    python scripts/mutants.py --only a,b       # some of them
    python scripts/mutants.py --list           # names and what each breaks

The project is copied once to a temporary directory (the checkout is never modified); the tests each mutation
names are first run on the unmutated copy (they must pass), then for every mutation its one edit is applied to the
copy, those tests run with `pytest -x`, and the file is restored. A mutation whose text no longer occurs exactly
once in its file is reported as "stale" and counts as not caught. Exit 0 only if every mutation is caught.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTATIONS_FILE = ROOT / "scripts" / "mutations.toml"
COPY_IGNORE = shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__", ".pytest_cache", ".ruff_cache")


def load_mutations(path: Path = MUTATIONS_FILE) -> list[dict]:
    mutations = tomllib.loads(path.read_text())["mutation"]
    for m in mutations:
        missing = {"name", "file", "find", "replace", "tests", "why"} - set(m)
        if missing:
            raise ValueError(f"mutation {m.get('name', '?')}: missing {sorted(missing)}")
    return mutations


def occurrences(root: Path, mutation: dict) -> int:
    return (root / mutation["file"]).read_text().count(mutation["find"])


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, str]:
    """('pass' | 'fail' | 'error' | 'timeout', the first failing test id or the last output line)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    env = {**os.environ, "PYTHONPATH": str(copy)}
    try:
        result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", f"more than {timeout:.0f} s"
    lines = result.stdout.strip().splitlines()
    failed = next((line.split(" ", 1)[1].split(" - ")[0] for line in lines if line.startswith("FAILED ")), "")
    if result.returncode == 0:
        return "pass", lines[-1] if lines else ""
    if result.returncode == 1:
        return "fail", failed or (lines[-1] if lines else "")
    return "error", (lines[-1] if lines else result.stderr.strip()[-200:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated mutation names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per test run")
    parser.add_argument("--skip-baseline", action="store_true", help="do not first run the tests unmutated")
    args = parser.parse_args(argv)

    mutations = load_mutations()
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - {m["name"] for m in mutations})
        if unknown:
            print(f"mutants: unknown mutation(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        mutations = [m for m in mutations if m["name"] in names]
    if args.list:
        for m in mutations:
            print(f"{m['name']:<36} {m['file']:<24} {m['why']}")
        return 0

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(ROOT, copy, ignore=COPY_IGNORE)
        if not args.skip_baseline:
            tests = sorted({t for m in mutations for t in m["tests"]})
            status, detail = run_tests(copy, tests, args.timeout * 2)
            print(f"baseline (unmutated, {len(tests)} test ids): {status} {detail}", flush=True)
            if status != "pass":
                print("mutants: the tests fail without any mutation; fix them first", file=sys.stderr)
                return 2
        rows = []
        for m in mutations:
            target = copy / m["file"]
            original = target.read_text()
            t0 = time.perf_counter()
            count = original.count(m["find"])
            if count != 1:
                status, detail = "stale", f"the text occurs {count} times in {m['file']}"
            else:
                target.write_text(original.replace(m["find"], m["replace"]))
                try:
                    status, detail = run_tests(copy, m["tests"], args.timeout)
                finally:
                    target.write_text(original)
            verdict = "caught" if status == "fail" else "NOT CAUGHT"
            rows.append((m["name"], verdict, time.perf_counter() - t0, detail if status != "pass" else "tests passed"))
            print(f"{m['name']:<36} {verdict:<11} {rows[-1][2]:6.0f} s  {rows[-1][3]}", flush=True)

    caught = sum(row[1] == "caught" for row in rows)
    print(f"\n{caught} of {len(rows)} mutations caught in {time.perf_counter() - start:.0f} s")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
