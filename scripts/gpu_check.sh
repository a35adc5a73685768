#!/usr/bin/env bash
# One prepared check for a machine with an NVIDIA GPU (its steps' time limits add up to 470 s, under 8 minutes):
# installs the CUDA wheel of the pinned jax, runs the bench (TD3+BC, CQL, MISA at 1 seed; MISA's paper config at 8
# vmapped seeds with float32 and with TF32 matmuls) and a short 8-seed paper-config MISA training with evaluation
# overlapped, and writes every number to one JSON file.
#
#   scripts/gpu_check.sh [--dry-run] [--out gpu_check.json] [--wheels DIR]
#
#   --dry-run   the same steps, tiny, on whatever device there is (no install): checks the script on a CPU
#   --wheels    install from a folder of wheels (pip download "jax[cuda12]==<pin>" -d DIR, on a machine online)
#   PY=...      the python to use (default .venv/bin/python, else python3)
# Each step has its own time limit; a step that fails or runs out of time is recorded and the next one runs.
set -u
cd "$(dirname "$0")/.."
DRY=0; OUT=gpu_check.json; WHEELS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    --wheels) WHEELS="$2"; shift ;;
    *) echo "usage: $0 [--dry-run] [--out FILE] [--wheels DIR]" >&2; exit 2 ;;
  esac
  shift
done
PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
JAX_PIN="$(sed -n 's/^jax==\([0-9.]*\).*/\1/p' requirements.txt)"
WORK="$(mktemp -d)"
STEPS_FILE="$WORK/steps.jsonl"
export PYTHONPATH="$PWD" XLA_PYTHON_CLIENT_PREALLOCATE=false
START=$(date +%s)

step() {  # step NAME LIMIT_SECONDS COMMAND...: runs it, logs to $WORK/NAME.log, records status and seconds
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s)
  echo "== $name (limit ${limit} s)" >&2
  timeout "$limit" "$@" > "$WORK/$name.log" 2>&1
  local rc=$?
  tail -n 3 "$WORK/$name.log" >&2
  echo "{\"step\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}" >> "$STEPS_FILE"
}

if [ "$DRY" = 1 ]; then
  BENCH=(--quick --grid-devices "")
  TRAIN=(--config.total_steps=20 --config.eval_every=10 --config.eval_episodes=1 --config.hidden_dims="(32, 32)"
         --config.batch_size=32 --config.n_actions=4 --config.hmc_num_samples=3 --config.hmc_burn_in=2)
else
  if [ -n "$WHEELS" ]; then
    step install 60 "$PY" -m pip install --no-index --find-links "$WHEELS" -U "jax[cuda12]==$JAX_PIN"
  else
    step install 60 "$PY" -m pip install -U "jax[cuda12]==$JAX_PIN"
  fi
  BENCH=(--min-seconds 3 --grid-devices "")
  # 8 seeds of the paper config (N = 50, HMC), 2 intervals of 1000 steps, each evaluated (10 episodes per seed).
  TRAIN=(--config.total_steps=2000 --config.eval_every=1000 --config.eval_episodes=10)
fi
step devices 20 "$PY" -c "import jax; print(jax.devices()); assert jax.default_backend() == 'gpu' or $DRY"
step bench 140 "$PY" scripts/bench.py --algos td3_bc,cql,misa --seeds 1 "${BENCH[@]}" --out "$WORK/bench.json"
step bench_8_seeds 80 "$PY" scripts/bench.py --algos misa --seeds 8 "${BENCH[@]}" --out "$WORK/bench_8_seeds.json"
step bench_tf32 80 "$PY" scripts/bench.py --algos misa --seeds 8 --matmul-precision default "${BENCH[@]}" \
  --out "$WORK/bench_tf32.json"
step train 90 "$PY" algorithms/misa.py --config configs/misa_mujoco.py --config.dataset=halfcheetah-medium-v4 \
  --config.num_seeds=8 --config.progress=False --config.log_dir="$WORK/runs" --config.run_name=misa8 "${TRAIN[@]}"

"$PY" - "$WORK" "$OUT" "$DRY" "$START" <<'PYEOF'
import json, sys, time
from pathlib import Path

work, out, dry, start = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
report = {"dry_run": dry, "steps": [json.loads(line) for line in (work / "steps.jsonl").read_text().splitlines()]}


def bench_rows(path):
    if not path.exists():
        return None
    bench = json.loads(path.read_text())
    rows = {}
    for key, r in bench["algorithms"].items():
        if r["status"] != "ok":
            rows[key] = {"status": r["status"], "reason": r.get("reason")}
            continue
        rows[key] = {"gflop_per_step": r["flops"]["flops_per_step"] / 1e9,
                     **{f"ms_per_step_{n}_seeds": run["ms_per_step"] for n, run in r["seeds"].items()},
                     **{f"floor_ms_per_step_{n}_seeds": run["floor_ms_per_step"] for n, run in r["seeds"].items()},
                     **{f"compile_seconds_{n}_seeds": run["compile_seconds"] for n, run in r["seeds"].items()}}
    return {"device": bench["device"], "matmul_gflops": {m["shape"]: m["gflops"] for m in bench["matmul"]},
            "algorithms": rows}


report["bench_float32_1_seed"] = bench_rows(work / "bench.json")
report["bench_float32_misa_8_seeds"] = bench_rows(work / "bench_8_seeds.json")
report["bench_tf32_misa_8_seeds"] = bench_rows(work / "bench_tf32.json")
summary_path = work / "runs" / "misa8" / "summary.json"
train_step = next((s for s in report["steps"] if s["step"] == "train"), {})
if summary_path.exists():
    summary = json.loads(summary_path.read_text())
    sps = summary["steps_per_second"]
    train_seconds = summary["total_steps"] / sps if sps else None
    report["train_misa_8_seeds"] = {
        "device": summary["device"], "total_steps": summary["total_steps"], "num_seeds": summary["num_seeds"],
        "steps_per_second": sps, "compile_seconds": summary["compile_seconds"],
        "train_seconds": train_seconds, "process_seconds": train_step.get("seconds"),
        "hours_for_1.2M_steps_8_seeds": 1.2e6 / sps / 3600 if sps else None,
        "normalized_score_final_mean": summary["normalized_score_final_mean"], "evaluations": summary["evaluations"]}
report["wall_seconds"] = int(time.time()) - start
out.write_text(json.dumps(report, indent=2) + "\n")
print(f"written: {out} ({report['wall_seconds']} s)")
PYEOF
