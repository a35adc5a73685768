#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU, bounded in time (GPU_CHECK_SECONDS, default 460 s, under the
# 8 minutes one device call may take): the numerical tests (parity with the authors' outputs, core math) with
# float32 matmuls; steps/s and compile seconds of TD3+BC, CQL, MISA's paper config (N = 50, HMC) and MISA with the
# HMC term at the data (unbiased_samples="dataset") at 1, 8 and 64 vmapped seeds (float32; MISA also TF32); and a
# short 8-seed TD3+BC training with evaluation overlapped and not. Writes gpu_check.json and gpu_check.md to --out.
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [--wheels DIR]
#
#   --out DIR     where the report goes (default runs/gpu_check; on the device machine: --out "$OUT")
#   --wheels DIR  offline: the machine already has a CUDA JAX stack (jax, jaxlib, its CUDA plugin, flax, optax, chex,
#                 numpy, h5py, scipy, matplotlib, tqdm, pytest); the rest (requirements-gpu.txt: MuJoCo, gymnasium,
#                 ml_collections, ...) comes as wheels from DIR (`make gpu-wheels`), installed with --no-index
#                 --no-deps into a private folder put on PYTHONPATH. jax, jaxlib, flax, optax, numpy and CUDA wheels
#                 in DIR are refused: the machine's own are used, never replaced.
#                 Without --wheels (online): pip install "jax[cuda12]==<the pin in requirements.txt>" into $PY.
#   --dry-run     installs and measures nothing: prints every step it would run and runs the cheap Python checks
#                 (versions, test collection, bench.py --plan, each training command parsed and prepared), so a
#                 broken step shows on a CPU; then writes the report with nothing measured.
#   PY=...        the python to use (default .venv/bin/python when there is one, else python3)
# Every step has its own time limit (never past the total); one that fails or runs out of time is recorded and the
# next one runs; a step that no longer fits is recorded as "skipped: time".
set -u
cd "$(dirname "$0")/.."
usage() { echo "usage: $0 [--dry-run] [--out DIR] [--wheels DIR]" >&2; exit 2; }
DRY=0; OUT=runs/gpu_check; WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) [ $# -ge 2 ] || usage; OUT="$2"; shift ;;
    --wheels) [ $# -ge 2 ] || usage; WHEELS="$2"; shift ;;
    *) usage ;;
  esac
  shift
done
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
TOTAL="${GPU_CHECK_SECONDS:-460}"
JAX_PIN="$(sed -n 's/^jax==\([0-9.]*\).*/\1/p' requirements.txt)"
# Wheels a machine's own CUDA JAX stack provides: never installed over it.
FORBIDDEN='^(jax|jaxlib|jax_cuda[0-9]*_(plugin|pjrt)|jax_plugins|flax|optax|numpy|nvidia_.*)-'

if [ -n "$WHEELS" ]; then
  [ -d "$WHEELS" ] || { echo "error: --wheels $WHEELS: no such directory (make gpu-wheels fills .gpu-wheels)" >&2; exit 2; }
  WHEEL_FILES=("$WHEELS"/*.whl)
  [ -e "${WHEEL_FILES[0]}" ] || { echo "error: --wheels $WHEELS: no .whl files in it (make gpu-wheels)" >&2; exit 2; }
  BAD="$(for w in "${WHEEL_FILES[@]}"; do basename "$w"; done | grep -iE "$FORBIDDEN" | tr '\n' ' ')"
  [ -z "$BAD" ] || { echo "error: --wheels $WHEELS holds $BAD: the machine's own jax/flax/optax/numpy/CUDA are used, remove them" >&2; exit 2; }
fi
mkdir -p "$OUT" || { echo "error: cannot create the output directory $OUT" >&2; exit 2; }
WORK="$(mktemp -d /tmp/gpu_check.XXXXXX)"
STEPS_FILE="$WORK/steps.jsonl"; : > "$STEPS_FILE"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
START=$(date +%s)

step() {  # step NAME CAP_SECONDS COMMAND...: runs it within min(CAP, time left), logs to $WORK/NAME.log, records it
  local name="$1" cap="$2"; shift 2
  local left=$(( TOTAL - ($(date +%s) - START) ))
  local limit=$(( cap < left ? cap : left ))
  if [ "$limit" -lt 10 ]; then
    echo "== $name: skipped: time" >&2
    echo "{\"step\": \"$name\", \"status\": \"skipped: time\"}" >> "$STEPS_FILE"
    return
  fi
  echo "== $name (limit ${limit} s): $(printf '%q ' "$@")" >&2
  local t0; t0=$(date +%s%N)
  # SIGINT at the limit: pytest still writes its report and bench.py its JSON (SIGKILL 20 s later if need be)
  timeout -s INT -k 20 "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  tail -n 3 "$WORK/$name.log" | sed 's/^/   /' >&2
  local status=ok; [ $rc = 0 ] || status=failed; { [ $rc = 124 ] || [ $rc = 137 ]; } && status="failed: time limit"
  printf '{"step": "%s", "status": "%s", "rc": %d, "limit": %d, "seconds": %d.%03d}\n' \
    "$name" "$status" "$rc" "$limit" $(( ms / 1000 )) $(( ms % 1000 )) >> "$STEPS_FILE"
}

would() {  # would NAME COMMAND...: a dry run prints the step instead of running it
  local name="$1"; shift
  local command; command="$(printf '%q ' "$@")"
  echo "== $name: would run: $command" >&2
  command="${command//\\/\\\\}"
  echo "{\"step\": \"$name\", \"status\": \"dry run\", \"command\": \"${command//\"/\\\"}\"}" >> "$STEPS_FILE"
}

# --- install --------------------------------------------------------------------------------------------------
if [ -n "$WHEELS" ]; then
  SITE="$WORK/site"
  INSTALL=("$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "${WHEEL_FILES[@]}")
  if [ "$DRY" = 1 ]; then would install "${INSTALL[@]}"; else step install 60 "${INSTALL[@]}"; fi
  export PYTHONPATH="$PYTHONPATH:$SITE"  # after the project and the caller's paths, before site-packages
elif [ "$DRY" = 1 ]; then
  would install "$PY" -m pip install -U "jax[cuda12]==$JAX_PIN"
else
  step install 120 "$PY" -m pip install -U "jax[cuda12]==$JAX_PIN"
fi

# --- what runs where --------------------------------------------------------------------------------------------
step environment 60 "$PY" - "$WORK/environment.json" "$DRY" <<'PYEOF'
import importlib, json, sys
info = {"python": sys.version.split()[0], "executable": sys.executable}
for name in ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy", "h5py", "mujoco", "gymnasium",
             "ml_collections"):
    try:
        module = importlib.import_module(name)
        info[name] = {"version": getattr(module, "__version__", "?"), "file": getattr(module, "__file__", None)}
    except Exception as e:
        info[name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
import jax
info["backend"], info["devices"] = jax.default_backend(), [str(d) for d in jax.devices()]
info["device_kind"] = jax.devices()[0].device_kind
json.dump(info, open(sys.argv[1], "w"), indent=2)
print(json.dumps({k: info[k] for k in ("backend", "device_kind", "python")}))
missing = [k for k, v in info.items() if isinstance(v, dict) and "error" in v]
sys.exit(f"missing: {', '.join(missing)}" if missing else (0 if jax.default_backend() == "gpu" or sys.argv[2] == "1"
                                                          else "no GPU: JAX runs on " + jax.default_backend()))
PYEOF

# --- the numerical tests with float32 matmuls -------------------------------------------------------------------
TESTS=(tests/test_parity.py tests/test_core_math.py)
if [ "$DRY" = 1 ]; then
  step tests 120 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -p no:cacheprovider --collect-only "${TESTS[@]}"
else
  step tests 120 env JAX_DEFAULT_MATMUL_PRECISION=highest "$PY" -m pytest -q -p no:cacheprovider \
    --junitxml="$WORK/tests.xml" "${TESTS[@]}"
fi

# --- throughput (scripts/bench.py: the host's vmapped K-step program, compile and steps/s) ----------------------
# Each bench starts no measurement after its limit less 40 s (about one compile and timing); it rewrites its JSON
# after each measurement, so a bench stopped at its limit keeps what it finished.
SEEDS=1,8,64
bench_step() {  # bench_step NAME CAP ALGOS PRECISION
  local how=(--plan) left=$(( TOTAL - ($(date +%s) - START) ))
  local limit=$(( $2 < left ? $2 : left ))
  [ "$DRY" = 1 ] || how=(--min-seconds 2 --budget-seconds $(( limit > 50 ? limit - 40 : 10 )))
  step "$1" "$2" "$PY" scripts/bench.py --algos "$3" --seeds "$SEEDS" --matmul-precision "$4" --grid-devices "" \
    "${how[@]}" --out "$WORK/$1.json"
}
bench_step bench_float32 150 misa,td3_bc,cql,misa_at_data highest
bench_step bench_tf32 70 misa,misa_at_data default

# --- evaluation overlapped with training, or not (8 seeds of TD3+BC, 4 intervals, each evaluated) ----------------
TRAIN=(--config configs/td3_bc_mujoco.py --config.dataset=halfcheetah-medium-v4 --config.num_seeds=8
       --config.total_steps=20000 --config.eval_every=5000 --config.eval_episodes=10 --config.progress=False
       --config.log_dir="$WORK/runs")
export JAX_COMPILATION_CACHE_DIR="$WORK/jax-cache"  # the second run loads the first one's program
for MODE in on off; do
  ARGS=("${TRAIN[@]}" --config.overlap_evaluation=$MODE --config.run_name=overlap_$MODE)
  if [ "$DRY" = 1 ]; then
    step "train_overlap_$MODE" 60 "$PY" - algorithms.td3_bc "${ARGS[@]}" <<'PYEOF'
import importlib, sys
from common.experiment.configuration import parse_config
from common.experiment.job import prepare
method = importlib.import_module(sys.argv[1]).METHOD
job = prepare(method, parse_config([sys.argv[1], *sys.argv[2:]], method.default_config))
print(f"prepared: {job.run_dir} ({len(job.members)} members, evaluation env {job.env_id})")
job.close()
PYEOF
  else
    step "train_overlap_$MODE" 50 "$PY" algorithms/td3_bc.py "${ARGS[@]}"
  fi
done

# --- the report --------------------------------------------------------------------------------------------------
"$PY" - "$WORK" "$OUT" "$DRY" "$START" "$TOTAL" <<'PYEOF'
import json, re, sys, time
import xml.etree.ElementTree as ET
from pathlib import Path

work, out, dry, start, total = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
GOALS = {  # DESIGN.md §4, reported against, never asserted
    ("td3_bc", "1"): (1e6, 3 * 60, "TD3+BC 1M steps <= 3 min"),
    ("cql", "1"): (1e6, 15 * 60, "CQL 1M steps <= 15 min"),
    ("misa", "8"): (1.2e6, 2 * 3600, "MISA paper config, 8 seeds x 1.2M steps <= 2 h"),
}


def read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tests_result():
    if dry:
        return {"status": "dry run (collected only)"}
    try:
        suite = ET.parse(work / "tests.xml").getroot()
    except (OSError, ET.ParseError):
        log = (work / "tests.log").read_text(errors="replace").splitlines() if (work / "tests.log").exists() else []
        last = [line.strip("= ") for line in log if re.search(r"\d+ (passed|failed|error)", line)]
        return {"status": f"no report; pytest said: {last[-1]}" if last else "no result (see the tests step)"}
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    step = next((s for s in steps if s["step"] == "tests"), {})
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return {**counts, "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
            "failed_tests": failed, "matmul_precision": "highest (float32)", "complete": step.get("status") == "ok"}


def bench_rows(name, precision):
    bench = read_json(work / f"{name}.json")
    if bench is None:
        return []
    rows = []
    for key, r in bench.get("algorithms", {}).items():
        for n, run in (r.get("seeds") or {"-": {"status": r["status"], "reason": r.get("reason")}}).items():
            row = {"algorithm": key, "label": r["label"], "seeds": n, "precision": precision,
                   "status": run.get("status", "ok")}
            if row["status"] == "ok":
                row.update(compile_seconds=run["compile_seconds"], steps_per_second=run["steps_per_second"],
                           ms_per_step=run["ms_per_step"], seed_steps_per_second=run["seed_steps_per_second"],
                           metrics_finite=run["metrics_finite"])
                goal = GOALS.get((key, n)) if precision == "float32" else None
                if goal:
                    row["goal"], row["hours_for_goal_steps"] = goal[2], goal[0] / run["steps_per_second"] / 3600
                    row["meets_goal"] = goal[0] / run["steps_per_second"] <= goal[1]
            else:
                row["reason"] = run.get("reason")
            rows.append(row)
    return rows


def training(mode):
    summary = read_json(work / "runs" / f"overlap_{mode}" / "summary.json")
    record = next((s for s in steps if s["step"] == f"train_overlap_{mode}"), {})
    if summary is None:
        return {"status": "dry run (prepared only)" if dry else f"no summary (step {record.get('status', 'not run')})"}
    return {"status": "ok", "process_seconds": record.get("seconds"), "compile_seconds": summary["compile_seconds"],
            "steps_per_second": summary["steps_per_second"], "total_steps": summary["total_steps"],
            "num_seeds": summary["num_seeds"], "evaluations": summary["evaluations"],
            "seconds_after_compile": record["seconds"] - summary["compile_seconds"] if record.get("seconds") else None,
            "normalized_score_final_mean": summary["normalized_score_final_mean"]}


steps = [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]
report = {"dry_run": dry, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "budget_seconds": total,
          "environment": read_json(work / "environment.json"), "steps": steps, "tests": tests_result(),
          "throughput": bench_rows("bench_float32", "float32") + bench_rows("bench_tf32", "tf32"),
          "evaluation_overlap": {mode: training(mode) for mode in ("on", "off")},
          "plan": [read_json(work / f"{name}.json") for name in ("bench_float32", "bench_tf32")] if dry else None}
for name in ("bench_float32", "bench_tf32"):
    bench = read_json(work / f"{name}.json")
    if bench and "matmul" in bench:
        report.setdefault("matmul_gflops", {})[name] = {m["shape"]: m["gflops"] for m in bench["matmul"]}
report["wall_seconds"] = int(time.time()) - start
env = report["environment"] or {}

lines = [f"# GPU check, {report['date']}" + (" (DRY RUN: nothing measured)" if dry else ""), "",
         f"device: {env.get('device_kind', 'n/a')} ({env.get('backend', 'n/a')}); jax "
         f"{(env.get('jax') or {}).get('version', 'n/a')}, flax {(env.get('flax') or {}).get('version', 'n/a')}, "
         f"python {env.get('python', 'n/a')}; {report['wall_seconds']} s of a {total} s budget", ""]
t = report["tests"]
lines += ["numerical tests (parity, core math; float32 matmuls): " + (
    f"{t['passed']} passed, {t['failures'] + t['errors']} failed, {t['skipped']} skipped"
    + ("" if t["complete"] else " (INCOMPLETE: the step did not finish)")
    + (f" ({', '.join(t['failed_tests'])})" if t["failed_tests"] else "") if "tests" in t else t["status"]), ""]
lines += ["| algorithm | seeds | matmuls | compile s | steps/s | ms/step | goal |", "|---|---|---|---|---|---|---|"]
for r in report["throughput"]:
    if r["status"] != "ok":
        lines.append(f"| {r['label']} | {r['seeds']} | {r['precision']} | {r['status']} | | | {r.get('reason') or ''} |")
        continue
    goal = (f"{r['goal']}: {r['hours_for_goal_steps'] * 60:.1f} min, {'met' if r['meets_goal'] else 'NOT met'}"
            if "goal" in r else "")
    lines.append(f"| {r['label']} | {r['seeds']} | {r['precision']} | {r['compile_seconds']:.1f} | "
                 f"{r['steps_per_second']:.1f} | {r['ms_per_step']:.3f} | {goal} |")
if not report["throughput"]:
    lines.append("| n/a (nothing measured) | | | | | | |")
lines += ["", "| TD3+BC 8 seeds, 20k steps, 4 evaluations x 10 episodes | seconds after compile | compile s | "
          "training steps/s |", "|---|---|---|---|"]
for mode, r in report["evaluation_overlap"].items():
    if r["status"] != "ok":
        lines.append(f"| overlap_evaluation={mode} | {r['status']} | | |")
    else:
        lines.append(f"| overlap_evaluation={mode} | {r['seconds_after_compile']:.1f} | {r['compile_seconds']:.1f} | "
                     f"{r['steps_per_second']:.0f} |")
lines += ["", "steps: " + ", ".join(f"{s['step']} {s['status']}" + (f" ({s['seconds']:.0f} s)" if "seconds" in s else "")
                                    for s in steps)]
(out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
print(f"written: {out / 'gpu_check.json'}, {out / 'gpu_check.md'} ({report['wall_seconds']} s)")
PYEOF
RC=$?
# keep the logs beside the report (on the device machine only $OUT comes back: one tarball, under its file limit)
tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$WORK" --exclude=./site --exclude=./jax-cache --exclude=checkpoints . 2>/dev/null
rm -rf "$WORK"
exit $RC
