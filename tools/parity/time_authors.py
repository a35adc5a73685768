"""Times the MISA authors' training step (sail-sg/MISA) on this machine, for scripts/bench.py's same-run ratio.

Runs in the authors'-code environment (tools/parity/README.md); prints one JSON line
{"misa": ms/step, "misa_n10": ms/step, ...}. Their loop as experiments/main.py runs it: one jitted step per
call, a fresh batch put on the device each step, here drawn from a synthetic Hopper-shaped dataset (as
scripts/bench.py's: 100k transitions, obs 11, act 3), networks 256-256 with ELU critics, batch 256.

    python tools/parity/time_authors.py --authors-src /tmp/authors-misa [--cases misa,misa_n10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from generate import import_authors  # this folder is on sys.path when the script runs

OBS_DIM, ACT_DIM, TRANSITIONS, BATCH = 11, 3, 100_000, 256
WARMUP_STEPS = 4
# Updates to the authors' MISA.get_default_config, named as scripts/bench.py names our configurations.
CASES = {
    "misa": dict(misa=True, unbiased_grad=True, n_actions=50),  # the paper config: N = 50, HMC
    "misa_n10": dict(misa=True, unbiased_grad=False, n_actions=10),
}


def time_case(updates, authors_misa, authors_model, jax_utils, seconds: float, min_steps: int) -> dict:
    import jax

    rng = np.random.default_rng(0)
    data = {"observations": rng.normal(size=(TRANSITIONS, OBS_DIM)),
            "next_observations": rng.normal(size=(TRANSITIONS, OBS_DIM)),
            "actions": np.clip(rng.uniform(-1, 1, (TRANSITIONS, ACT_DIM)), -0.999, 0.999),
            "rewards": rng.normal(size=TRANSITIONS), "dones": (np.arange(TRANSITIONS) % 1000 == 999)}
    data = {k: np.asarray(v, np.float32) for k, v in data.items()}
    jax_utils.init_rng(0)
    policy = authors_model.TanhGaussianPolicy(OBS_DIM, ACT_DIM, "256-256")
    qf = authors_model.FullyConnectedQFunction(OBS_DIM, ACT_DIM, "256-256", activation="elu")
    agent = authors_misa.MISA(dict(target_entropy=-float(ACT_DIM), **updates), policy, qf)

    def step():
        rows = rng.integers(0, TRANSITIONS, BATCH)
        batch = jax.tree_util.tree_map(jax.device_put, {k: v[rows] for k, v in data.items()})
        return agent.train(batch)

    # Warm-up: their jitted step compiles again on its 2nd and 3rd calls (the returned states' weak types settle).
    t0 = time.perf_counter()
    for _ in range(WARMUP_STEPS):
        jax.block_until_ready(step())
    compile_seconds = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        metrics = step()
        steps += 1
    jax.block_until_ready(metrics)
    elapsed = time.perf_counter() - t0
    return {"ms_per_step": 1e3 * elapsed / steps, "steps": steps, "warmup_seconds": compile_seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-src", required=True, type=Path, help="a source tree of sail-sg/MISA")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    parser.add_argument("--seconds", type=float, default=10.0, help="each case is timed at least this long")
    parser.add_argument("--min-steps", type=int, default=5, help="... and at least this many steps")
    args = parser.parse_args(argv)
    names = [n for n in args.cases.split(",") if n]
    if not names or any(n not in CASES for n in names):
        print(f"error: --cases must name some of {list(CASES)}", file=sys.stderr)
        return 2
    authors = import_authors(args.authors_src.resolve())
    import jax

    out = {"jax": jax.__version__}
    for name in names:
        out[name] = time_case(CASES[name], *authors, args.seconds, args.min_steps)
        print(f"authors' {name}: {out[name]['ms_per_step']:.1f} ms/step", file=sys.stderr, flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
