"""The GPU route (scripts/gpu_check.sh, requirements-gpu.txt, make gpu-wheels), checked on a CPU without downloading.

Bugs these are for: a step of the prepared GPU check that breaks (a typo, an override a config does not know, a
renamed bench option) unnoticed until the few minutes of a GPU session; a wheel folder that would install jax or
numpy over the machine's own CUDA stack; and a dependency added to the code without its wheel, so that the offline
machine (only a CUDA JAX stack) fails at import.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT

packaging_requirements = pytest.importorskip("packaging.requirements")

SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STEPS = ("environment", "tests", "bench_float32", "bench_tf32", "train_overlap_on", "train_overlap_off")
# What a GPU machine with only a CUDA JAX stack has (README "On a GPU"), with their dependencies.
CUDA_JAX_STACK = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "h5py", "scipy", "matplotlib", "tqdm", "pytest")
NEVER_SHIPPED = re.compile(r"^(jax|jaxlib|jax-cuda\d*-(plugin|pjrt)|jax-plugins|flax|optax|numpy|nvidia-.*)$")
# Imported (inside functions) only by features the GPU check does not use; everything else it reaches must be there.
OPTIONAL_FEATURES = {
    "minari": "minari:<id> datasets",
    "gymnasium_robotics": "AntMaze, Adroit and Kitchen evaluation envs",
    "imageio_ffmpeg": "MP4 videos of a saved policy",
    "tensorboardX": "config.tensorboard",
    "wandb": "config.wandb",
    "onnx": "exporting a policy to .onnx (make install-export)",
    "onnxruntime": "exporting a policy to .onnx (make install-export)",
}
PROJECT = {"common", "algorithms", "configs", "scripts", "datagen", "tests", "conftest"}
GPU_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
               "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def gpu_requirements() -> dict[str, str]:
    """requirements-gpu.txt: normalised name -> pinned version."""
    pins = {}
    for line in (ROOT / "requirements-gpu.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements-gpu.txt: '{line}' is not pinned (name==version)"
            pins[norm(name)] = version.strip()
    return pins


# ------------------------------------------------------------------------------------------------
# The dry run
# ------------------------------------------------------------------------------------------------


def dry_run(out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PY": sys.executable}
    return subprocess.Popen(["bash", str(SCRIPT), "--dry-run", "--out", str(out), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """Both dry runs, started together: online (no --wheels) and offline (--wheels DIR of harmless names)."""
    base = tmp_path_factory.mktemp("gpu_route")
    wheels = base / "wheels"
    wheels.mkdir()
    for name in ("gymnasium-1.4.0-py3-none-any.whl", "mujoco-4.0.0-py3-none-any.whl"):
        (wheels / name).write_bytes(b"")
    procs = {"online": (dry_run(base / "online"), base / "online"),
             "offline": (dry_run(base / "offline", "--wheels", str(wheels)), base / "offline")}
    done = {}
    for key, (proc, out) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        done[key] = {"rc": proc.returncode, "stdout": stdout, "stderr": stderr, "out": out, "wheels": wheels}
    return done


@pytest.mark.parametrize("route", ["online", "offline"])
def test_dry_run_runs_every_cheap_check_and_writes_the_report(dry_runs, route):
    run = dry_runs[route]
    assert run["rc"] == 0, run["stderr"][-3000:]
    report = json.loads((run["out"] / "gpu_check.json").read_text())
    assert report["dry_run"] is True
    status = {s["step"]: s["status"] for s in report["steps"]}
    assert {name: status.get(name) for name in STEPS} == {name: "ok" for name in STEPS}, run["stderr"][-3000:]
    assert status["install"] == "dry run"
    # the plan: the four benchmarks at 1, 8, 64 seeds in float32, MISA's two also in TF32 ('default' precision)
    float32, tf32 = report["plan"]
    assert [r["algorithm"] for r in float32["plan"]] == ["misa", "td3_bc", "cql", "misa_at_data"]
    assert [r["algorithm"] for r in tf32["plan"]] == ["misa", "misa_at_data"]
    assert all(r["seeds"] == [1, 8, 64] and r["status"] == "ok" for r in float32["plan"] + tf32["plan"])
    assert {r["matmul_precision"] for r in tf32["plan"]} == {"default"}
    assert [r["unbiased"] for r in tf32["plan"]] == ["hmc", "dataset"]
    assert "DRY RUN: nothing measured" in (run["out"] / "gpu_check.md").read_text()
    assert "collected" in run["stderr"] and "prepared:" in run["stderr"]


def test_dry_run_says_how_it_would_install(dry_runs):
    pin = re.search(r"^jax==([\d.]+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    online = [line for line in dry_runs["online"]["stderr"].splitlines() if line.startswith("== install")]
    assert online and f"jax\\[cuda12\\]=={pin}" in online[0]
    offline = [line for line in dry_runs["offline"]["stderr"].splitlines() if line.startswith("== install")][0]
    for flag in ("--no-index", "--no-deps", "--target"):
        assert flag in offline
    assert "gymnasium-1.4.0-py3-none-any.whl" in offline and "jax[" not in offline


@pytest.mark.parametrize("bad", ["jax-0.11.2-py3-none-any.whl", "numpy-2.5.2-cp312-cp312-manylinux_2_28_x86_64.whl",
                                 "jax_cuda13_plugin-0.11.2-cp312-cp312-manylinux_2_27_x86_64.whl",
                                 "flax-0.12.8-py3-none-any.whl"])
def test_wheels_that_would_replace_the_cuda_stack_are_refused(tmp_path, bad):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "gymnasium-1.4.0-py3-none-any.whl").write_bytes(b"")
    (wheels / bad).write_bytes(b"")
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--wheels", str(wheels), "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PY": sys.executable})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and bad in result.stderr
    assert not out.exists()  # refused before anything was written


def test_a_missing_or_empty_wheel_folder_is_refused(tmp_path):
    for folder in (tmp_path / "absent", tmp_path):
        command = ["bash", str(SCRIPT), "--dry-run", "--wheels", str(folder), "--out", str(tmp_path / "o")]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and result.stderr.startswith("error: --wheels"), result.stderr


# ------------------------------------------------------------------------------------------------
# The wheel list
# ------------------------------------------------------------------------------------------------


def module_file(dotted: str) -> Path | None:
    """The project file of a module name ('common.datasets', 'conftest'), or None."""
    parts = dotted.split(".")
    base = ROOT / "tests" if parts[0] == "conftest" else ROOT
    for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def third_party_imports(entries: list[Path]) -> dict[str, tuple[str, bool]]:
    """Top-level names of every non-project, non-stdlib import reachable from `entries` through project imports (at
    any depth of a file): name -> (the first file importing it, whether every import of it is inside a function)."""
    seen, todo, found = set(), list(entries), {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text())
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT:
                    todo += [f for f in [module_file(name)] if f is not None]
                elif top not in sys.stdlib_module_names and top != "__future__":
                    where, lazy = found.get(top, (str(path.relative_to(ROOT)), True))
                    found[top] = (where, lazy and id(node) in in_function)
    return found


def script_entries() -> list[Path]:
    """The Python files scripts/gpu_check.sh runs, and the modules scripts/bench.py imports by name."""
    text = SCRIPT.read_text()
    files = {ROOT / p for p in re.findall(r"\b((?:scripts|algorithms|tests)/\w+\.py)", text)}
    files |= {module_file(m) for m in re.findall(r"\b(algorithms\.\w+)\b", text)}
    bench = ast.parse((ROOT / "scripts" / "bench.py").read_text())
    named = {n.value for n in ast.walk(bench) if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and re.fullmatch(r"(algorithms|configs)\.\w+", n.value)}
    files |= {module_file(m) for m in named}
    files.add(ROOT / "tests" / "conftest.py")
    assert None not in files and len(named) >= 6, (named, files)
    return sorted(files)


def requirement_extras() -> dict[str, tuple]:
    """requirements.txt: normalised name -> its extras (gymnasium[mujoco] -> ('mujoco',))."""
    extras = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = packaging_requirements.Requirement(line)
            extras[norm(req.name)] = tuple(sorted(req.extras))
    return extras


def closure(roots: dict[str, tuple]) -> set[str]:
    """Distributions `roots` (name -> extras) need, following installed metadata, markers as on the GPU machine."""
    seen, todo = set(), list(roots.items())
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} is not installed here: cannot read what it needs")
        for line in requires:
            req = packaging_requirements.Requirement(line)
            if req.marker and not any(req.marker.evaluate({**GPU_MARKERS, "extra": e}) for e in extras or ("",)):
                continue
            todo.append((norm(req.name), tuple(sorted(req.extras))))
    return {name for name, _ in seen}


def test_the_wheel_list_covers_every_package_the_gpu_check_imports():
    imports = third_party_imports(script_entries())
    assert {"jax", "gymnasium", "ml_collections"} <= set(imports)  # the scan sees the script's real imports
    distributions = metadata.packages_distributions()
    extras = requirement_extras()
    roots = {}
    for name, (where, lazy) in imports.items():
        if name in OPTIONAL_FEATURES and lazy:  # imported inside the functions of that feature only
            continue
        assert name in distributions, f"'{name}' (imported by {where}) is not installed here"
        for dist in distributions[name]:
            roots[norm(dist)] = extras.get(norm(dist), ())
    needed = closure(roots) - closure({name: () for name in CUDA_JAX_STACK})
    listed = set(gpu_requirements())
    assert needed - listed == set(), "add to requirements-gpu.txt (the GPU machine lacks them)"
    assert listed - needed == set(), "requirements-gpu.txt lists packages nothing the GPU check runs needs"


def test_the_wheel_list_never_ships_the_cuda_stack_and_matches_the_pins():
    pins = gpu_requirements()
    assert not [name for name in pins if NEVER_SHIPPED.match(name)]
    pinned = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        req = packaging_requirements.Requirement(line.split("#")[0].strip()) if line.split("#")[0].strip() else None
        if req is not None and len(req.specifier) == 1 and next(iter(req.specifier)).operator == "==":
            pinned[norm(req.name)] = next(iter(req.specifier)).version
    shared = set(pins) & set(pinned)
    assert {"gymnasium", "mujoco", "ml-collections"} <= shared
    assert {name: pins[name] for name in shared} == {name: pinned[name] for name in shared}


def test_make_gpu_wheels_downloads_the_pinned_list_without_dependencies():
    result = subprocess.run(["make", "-n", "gpu-wheels", "GPU_PYTHON_VERSION=3.13"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    download = " ".join(line for line in result.stdout.splitlines())
    for part in ("pip download", "--no-deps", "--only-binary=:all:", "--python-version 3.13",
                 "-r requirements-gpu.txt", "--platform manylinux"):
        assert part in download, part
    assert ".gpu-wheels/" in (ROOT / ".gitignore").read_text()


# ------------------------------------------------------------------------------------------------
# scripts/bench.py: one measurement's failure or the time budget never loses the others
# ------------------------------------------------------------------------------------------------


def fake_run(n: int) -> dict:
    return {"num_seeds": n, "compile_seconds": 1.0, "scan_steps": 4, "call_seconds": [0.1], "steps_per_second": 40.0,
            "ms_per_step": 25.0, "seed_steps_per_second": 40.0 * n, "metrics_finite": True,
            "flops": {"flops_per_step": 1e6, "matmul_flops_per_step": 5e5}}


def test_bench_records_a_failed_or_late_seed_count_and_keeps_the_rest(monkeypatch):
    from scripts import bench

    dataset = bench.synthetic_dataset(bench.QUICK.transitions, bench.QUICK.obs_dim, bench.QUICK.act_dim)

    def bench_seeds(agent, data, config, n, *args, **kwargs):
        if n == 8:
            raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")
        return fake_run(n)

    monkeypatch.setattr(bench, "bench_seeds", bench_seeds)
    seen = []
    result = bench.bench_algorithm("td3_bc", [1, 8, 64], bench.QUICK, dataset, quick=True, progress=seen.append)
    assert result["status"] == "ok"
    assert {n: r["status"] for n, r in result["seeds"].items()} == {"1": "ok", "8": "failed", "64": "ok"}
    assert "RESOURCE_EXHAUSTED" in result["seeds"]["8"]["reason"] and len(seen) == 2
    report = {"settings": {"seeds": [1, 8, 64], "quick": True}, "algorithms": {"td3_bc": result},
              "reference": {"authors_timed_here": {}}}
    bench.add_ratios(report["algorithms"], [{"m": 256, "k": 256, "gflops": 100.0}])
    assert "failed" in bench.format_table(report).splitlines()[1]

    late = bench.bench_algorithm("td3_bc", [1, 8], bench.QUICK, dataset, quick=True, deadline=0.0)
    assert late["status"] == "skipped" and {r["status"] for r in late["seeds"].values()} == {"skipped: time"}
