"""Training throughput and arithmetic efficiency of every algorithm (run by `make bench`).

    python scripts/bench.py [--algos td3_bc,cql,misa,misa_at_data,misa_n10] [--seeds 1,8] [--quick] [--device-name NAME]
                            [--out runs/bench.json] [--authors-python PY --authors-src DIR]

For each algorithm, on a synthetic dataset of Hopper's size (100k transitions, obs 11, act 3):
  * compile seconds and training steps/s of the same program the host (common/experiment/) runs:
    jax.jit(jax.vmap(agent.update, in_axes=(0, None, None)), static_argnums=2, donate_argnums=0), one
    call = a K-step lax.scan of every seed; timed over several calls after a warm-up call;
  * FLOPs per gradient step (one seed) from XLA's cost analysis of that compiled program. XLA's CPU cost
    analysis counts the body of a while loop ONCE, whatever its trip count (see `loop_corrections`), so
    every scan's body is added (trip count - 1) more times, nested scans (MISA's HMC chain) included;
  * achieved GFLOP/s = FLOPs per step x steps/s x seeds, and its ratio to this machine's measured dense
    float32 matmul rate (XLA; the networks' shapes and a large square matmul);
  * the floor: FLOPs per step / the best measured matmul rate, the fewest ms a step can take here if every
    FLOP ran at that rate;
  * with --authors-python/--authors-src (or $AUTHORS_PYTHON/$AUTHORS_SRC), the MISA authors' code timed in the
    same run (tools/parity/time_authors.py in their environment), and our speed-up over it; otherwise the ratio is
    to reference timings from another run (DESIGN.md §4), marked "(ref)".

Timings are what this machine gives while the benchmark runs: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from common.datasets import Dataset, from_raw
from common.hardware import device_info

ROOT = Path(__file__).resolve().parent.parent

# Reference points measured on the project's 2-core CPU (DESIGN.md §4): the authors' MISA code, ms per step
# (used only when the authors' code is not timed in the same run).
AUTHORS_MS_PER_STEP = {"misa": 425.0, "misa_n10": 48.5}
TIME_AUTHORS = ROOT / "tools" / "parity" / "time_authors.py"
TARGET_SPEEDUP = 3.0  # DESIGN.md §4: MISA's paper config at >= 3x the authors' steps/s on the same CPU
REFERENCE_LINE = ("reference (DESIGN.md §4, 2-core CPU, another run): authors' MISA code 425 ms/step paper config "
                  "(N=50, HMC), 48.5 ms with N=10 and no HMC; target: MISA paper config >= 3x the authors' steps/s")


# ------------------------------------------------------------------------------------------------
# What is benchmarked
# ------------------------------------------------------------------------------------------------


class Bench(NamedTuple):
    label: str  # name in the table
    module: str  # algorithm module (make_agent, prepare_data)
    config_module: str  # config module (get_config)
    overrides: dict  # config fields changed from the config file's defaults
    scan_steps: int  # K: gradient steps per timed call (one lax.scan)


BENCHMARKS = {
    "td3_bc": Bench("TD3+BC", "algorithms.td3_bc", "configs.td3_bc_mujoco", {}, 200),
    "cql": Bench("CQL", "algorithms.cql", "configs.cql_mujoco", {}, 50),
    "misa": Bench("MISA N=50 + HMC", "algorithms.misa", "configs.misa_mujoco", {}, 10),
    "misa_at_data": Bench("MISA N=50, HMC term at the data", "algorithms.misa", "configs.misa_mujoco",
                          {"unbiased_samples": "dataset"}, 20),
    "misa_n10": Bench("MISA N=10, no HMC", "algorithms.misa", "configs.misa_mujoco",
                      {"n_actions": 10, "unbiased_grad": False}, 50),
}

# --quick: tiny networks, batches and sample counts (for tests; the numbers mean nothing).
QUICK_OVERRIDES = {"hidden_dims": (32, 32), "batch_size": 32, "n_actions": 4, "cql_n_actions": 4,
                   "hmc_num_samples": 3, "hmc_burn_in": 2}
QUICK_SCAN_STEPS = 4


class Settings(NamedTuple):
    transitions: int  # rows of the synthetic dataset
    obs_dim: int
    act_dim: int
    min_seconds: float  # each timing runs at least this long ...
    min_calls: int  # ... and at least this many calls (after one warm-up call)
    matmul_shapes: tuple  # (m, k): the rate of (m, k) @ (k, k) is measured
    matmul_seconds: float


FULL = Settings(100_000, 11, 3, 10.0, 3, ((256, 256), (2560, 256), (12800, 256), (2048, 2048)), 3.0)
QUICK = Settings(2_000, 11, 3, 0.0, 2, ((64, 32), (256, 256)), 0.2)


def synthetic_dataset(transitions: int, obs_dim: int, act_dim: int, seed: int = 0) -> Dataset:
    """Gaussian states, uniform actions in [-1, 1], Gaussian rewards; an episode ends every 1000 rows."""
    rng = np.random.default_rng(seed)
    rows = transitions + 1  # the Q-learning view drops the last row; with no timeouts nothing else is dropped
    raw = {
        "observations": rng.normal(size=(rows, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32),
        "rewards": rng.normal(size=rows).astype(np.float32),
        "terminals": (np.arange(rows) % 1000) == 999,
        "timeouts": np.zeros(rows, bool),
    }
    return from_raw(raw, "synthetic-hopper", "Hopper-v4", "synthetic (scripts/bench.py)")


def build_config(bench: Bench, quick: bool):
    config = importlib.import_module(bench.config_module).get_config()
    config.dataset = "synthetic-hopper"
    for key, value in {**bench.overrides, **(QUICK_OVERRIDES if quick else {})}.items():
        if key in config:
            config[key] = value
    return config


# ------------------------------------------------------------------------------------------------
# FLOP counting
# ------------------------------------------------------------------------------------------------


def _sub_jaxprs(eqn):
    """The jaxprs an equation calls (jit, custom_jvp/vjp, remat, cond branches, loop bodies)."""
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jcore.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jcore.Jaxpr):
                yield item


def _outer_scans(jaxpr):
    """Scan equations reachable from `jaxpr` without entering another scan; also counts while loops."""
    scans, whiles = [], 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "scan":
            scans.append(eqn)
            continue
        whiles += eqn.primitive.name == "while"
        for sub in _sub_jaxprs(eqn):
            more, more_whiles = _outer_scans(sub)
            scans += more
            whiles += more_whiles
    return scans, whiles


def xla_flops(closed: jcore.ClosedJaxpr) -> float:
    """XLA's cost-analysis FLOPs of a closed jaxpr compiled on its own."""
    args = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in closed.in_avals]
    return float(_cost(jax.jit(jcore.jaxpr_as_fun(closed)).lower(*args).compile())["flops"])


def _cost(compiled) -> dict:
    cost = compiled.cost_analysis()
    return cost[0] if isinstance(cost, (list, tuple)) else cost


def loop_corrections(jaxpr, info: dict) -> float:
    """FLOPs XLA's count of `jaxpr` misses because it counts each scan body once.

    For every scan s (trip count L, body b) reachable without entering another scan:
        (L - 1) * xla_flops(b) + L * loop_corrections(b),
    the body compiled on its own (skipped when L = 1). `info` collects the loops seen and the while
    loops (unknown trip count, counted once).
    """
    scans, whiles = _outer_scans(jaxpr)
    info["while_loops_counted_once"] = info.get("while_loops_counted_once", 0) + whiles
    total = 0.0
    for eqn in scans:
        length, body = int(eqn.params["length"]), eqn.params["jaxpr"]
        body_flops = xla_flops(body) if length > 1 else math.nan
        info.setdefault("scans", []).append({"length": length, "body_flops": body_flops})
        inner = loop_corrections(body.jaxpr, info)
        total += (length - 1) * (body_flops if length > 1 else 0.0) + length * inner
    return total


def matmul_flops(jaxpr) -> float:
    """2 x M x N x K summed over every dot_general, scan bodies times their trip counts (cond: costliest branch)."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs_shape = eqn.invars[0].aval.shape
            total += 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs_shape[d] for d in lhs_contract)
        elif name == "scan":
            total += int(eqn.params["length"]) * matmul_flops(eqn.params["jaxpr"].jaxpr)
        elif name == "cond":
            total += max(matmul_flops(b.jaxpr) for b in eqn.params["branches"])
        else:
            total += sum(matmul_flops(sub) for sub in _sub_jaxprs(eqn))
    return total


def flops_per_step(update_fn, state_shapes, data, compiled, scan_steps: int, num_seeds: int) -> dict:
    """FLOPs of one gradient step of one seed, from the compiled K-step program of `num_seeds` seeds.

    The program is one lax.scan over the steps (the Agent contract); XLA's count of it covers one
    iteration of that scan with its inner loops counted once, so
        per step = (XLA count + corrections of the loops inside the scan body) / (steps per iteration x seeds).
    Anything else falls back to the whole program: (XLA count + all corrections) / (K x seeds).
    """
    closed = jax.make_jaxpr(update_fn)(state_shapes, data)
    xla_count = float(_cost(compiled)["flops"])
    top, _ = _outer_scans(closed.jaxpr)
    info: dict = {}
    if len(top) == 1 and scan_steps % int(top[0].params["length"]) == 0:
        length = int(top[0].params["length"])
        info["scans"] = [{"length": length, "body_flops": xla_count, "outer": True}]
        per_iteration = xla_count + loop_corrections(top[0].params["jaxpr"].jaxpr, info)
        steps = scan_steps // length
        method = "one iteration of the update's scan: XLA count + inner-loop corrections"
    else:
        per_iteration = xla_count + loop_corrections(closed.jaxpr, info)
        steps = scan_steps
        method = "whole program: XLA count + loop corrections"
    per_step = per_iteration / (steps * num_seeds)
    dots = matmul_flops(closed.jaxpr) / (scan_steps * num_seeds)
    return {"flops_per_step": per_step, "matmul_flops_per_step": dots, "xla_count_as_reported": xla_count,
            "method": method, "loops": info.get("scans", []),
            "while_loops_counted_once": info.get("while_loops_counted_once", 0)}


# ------------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------------


def timed_calls(call, min_seconds: float, min_calls: int) -> list[float]:
    """Seconds of each call (which must block until its results are ready) after one warm-up call."""
    call()
    times = []
    while len(times) < min_calls or sum(times) < min_seconds:
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def bench_seeds(agent, data, config, num_seeds: int, scan_steps: int, settings: Settings, count_flops: bool):
    """Compile and time the vmapped K-step update of `num_seeds` seeds, exactly as the host runs it."""
    keys = jnp.stack([jax.random.PRNGKey(config.seed + i) for i in range(num_seeds)])
    hparams = jax.tree.map(lambda v: jnp.full((num_seeds,), v), agent.hparams)
    state = jax.jit(jax.vmap(agent.init))(keys, hparams)
    state_shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    vmapped = jax.vmap(agent.update, in_axes=(0, None, None))
    update = jax.jit(vmapped, static_argnums=2, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = update.lower(state, data, scan_steps).compile()
    compile_seconds = time.perf_counter() - t0

    holder = {"state": state}

    def call():
        holder["state"], metrics = compiled(holder["state"], data)
        holder["metrics"] = jax.block_until_ready(metrics)

    times = timed_calls(call, settings.min_seconds, settings.min_calls)
    finite = all(bool(np.all(np.isfinite(np.asarray(v)))) for v in holder["metrics"].values())
    steps_per_second = scan_steps * len(times) / sum(times)
    out = {"num_seeds": num_seeds, "compile_seconds": compile_seconds, "scan_steps": scan_steps,
           "call_seconds": times, "steps_per_second": steps_per_second, "ms_per_step": 1e3 / steps_per_second,
           "seed_steps_per_second": steps_per_second * num_seeds, "metrics_finite": finite}
    if count_flops:
        out["flops"] = flops_per_step(lambda s, d: vmapped(s, d, scan_steps), state_shapes, data, compiled,
                                      scan_steps, num_seeds)
    return out


def matmul_rate(m: int, k: int, min_seconds: float) -> dict:
    """GFLOP/s of x @ w with x (m, k), w (k, k) in float32: a chain of matmuls in one jitted fori_loop."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(m, k)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k)) / np.sqrt(k), jnp.float32)  # keeps |x| about constant
    flops_one = 2.0 * m * k * k
    reps = max(1, int(2e9 / flops_one))  # about 2 GFLOP per call
    chain = jax.jit(lambda x, w: jax.lax.fori_loop(0, reps, lambda _, y: y @ w, x))
    times = timed_calls(lambda: jax.block_until_ready(chain(x, w)), min_seconds, 3)
    gflops = flops_one * reps * len(times) / sum(times) / 1e9
    return {"shape": f"({m}, {k}) @ ({k}, {k})", "m": m, "k": k, "gflops": gflops}


# ------------------------------------------------------------------------------------------------
# Running and reporting
# ------------------------------------------------------------------------------------------------


def bench_algorithm(key: str, seeds: list[int], settings: Settings, dataset: Dataset, quick: bool,
                    deadline: float | None = None, progress=None) -> dict:
    """Every seed count of one algorithm, each guarded: one that fails is recorded with its reason and the next one
    runs; once time.perf_counter() passes `deadline` the rest are recorded as "skipped: time". `progress(runs)` is
    called after each seed count; a KeyboardInterrupt (SIGINT, e.g. `timeout -s INT`) ends the algorithm with what it
    has and marks the result "interrupted"."""
    bench = BENCHMARKS[key]
    result = {"label": bench.label, "module": bench.module, "overrides": dict(bench.overrides)}
    try:
        module = importlib.import_module(bench.module)
        config = build_config(bench, quick)
    except Exception as e:  # a missing or broken algorithm file is skipped, never fatal
        return {**result, "status": "skipped", "reason": f"import failed: {type(e).__name__}: {e}".splitlines()[0]}
    try:
        if hasattr(module, "validate_config"):
            module.validate_config(config)
        scan_steps = QUICK_SCAN_STEPS if quick else bench.scan_steps
        agent = module.make_agent(config, dataset)
        data = module.prepare_data(dataset, config)
    except Exception as e:
        return {**result, "status": "failed", "reason": f"{type(e).__name__}: {e}".splitlines()[0]}
    runs, flops, interrupted = {}, None, False
    for n in sorted(seeds):
        if interrupted or (deadline is not None and time.perf_counter() > deadline):
            runs[str(n)] = {"status": "skipped: interrupted" if interrupted else "skipped: time"}
            print(f"  {key}: {n} seed(s): {runs[str(n)]['status']}", flush=True)
            continue
        try:
            run = bench_seeds(agent, data, config, n, scan_steps, settings, count_flops=flops is None)
        except KeyboardInterrupt:
            interrupted, runs[str(n)] = True, {"status": "skipped: interrupted"}
            continue
        except Exception as e:
            runs[str(n)] = {"status": "failed", "reason": f"{type(e).__name__}: {e}".splitlines()[0]}
            print(f"  {key}: {n} seed(s): failed ({runs[str(n)]['reason']})", flush=True)
            continue
        flops = run.pop("flops", flops)
        runs[str(n)] = {"status": "ok", **run}
        print(f"  {key}: {n} seed(s): compile {run['compile_seconds']:.1f} s, {run['ms_per_step']:.2f} ms/step",
              flush=True)
        if progress is not None:
            progress({**result, "status": "partial", "seeds": runs})
    result["interrupted"] = interrupted
    ok = {n: run for n, run in runs.items() if run["status"] == "ok"}
    if not ok:
        first = next(iter(runs.values()))
        return {**result, "status": first["status"].split(":")[0],
                "reason": first.get("reason", first["status"].split(":")[-1].strip()), "seeds": runs}
    for run in ok.values():
        run["gflops_achieved"] = flops["flops_per_step"] * run["seed_steps_per_second"] / 1e9
    return {**result, "status": "ok", "config": config.to_dict(), "flops": flops, "seeds": runs}


def seed_cell(result: dict, n: int, text) -> str:
    """text(run) of a measured seed count; a seed count that failed or ran out of time shows its status instead."""
    run = result["seeds"][str(n)]
    return text(run) if run.get("status", "ok") == "ok" else run["status"].split(":")[-1].strip()


def ok_runs(result: dict) -> dict:
    """The seed counts of a result that were measured (not failed or skipped)."""
    return {n: run for n, run in result.get("seeds", {}).items() if run.get("status", "ok") == "ok"}


def add_ratios(results: dict, matmul: list[dict]) -> None:
    """Achieved GFLOP/s over the large-square and the best network-shape matmul rates; the floor (ms per step at
    the best measured rate) and the achieved time's share of it."""
    large = max(matmul, key=lambda r: r["m"] * r["k"] * r["k"])["gflops"]
    network = max(r["gflops"] for r in matmul if r["k"] == min(x["k"] for x in matmul))
    best = max(r["gflops"] for r in matmul)
    for result in results.values():
        if result["status"] != "ok":
            continue
        for n, run in ok_runs(result).items():
            run["fraction_of_large_matmul"] = run["gflops_achieved"] / large
            run["fraction_of_network_matmul"] = run["gflops_achieved"] / network
            run["floor_ms_per_step"] = 1e3 * result["flops"]["flops_per_step"] * int(n) / (best * 1e9)
        runs = ok_runs(result)
        if len(runs) > 1:
            lo, hi = min(runs, key=int), max(runs, key=int)
            result["time_ratio"] = {"seeds": [int(lo), int(hi)],
                                    "ratio": runs[lo]["steps_per_second"] / runs[hi]["steps_per_second"]}


def time_authors(python: str, src: str, algos: list[str]) -> dict:
    """The authors' ms/step of the cases we also run ({} when their code cannot run here: the reason is printed)."""
    import subprocess

    cases = [a for a in algos if a in AUTHORS_MS_PER_STEP]
    if not cases:
        return {}
    cmd = [python, str(TIME_AUTHORS), "--authors-src", src, "--cases", ",".join(cases)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
    if result.returncode != 0:
        print(f"authors' code not timed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}", flush=True)
        return {}
    timed = json.loads(result.stdout.strip().splitlines()[-1])
    for case in cases:
        print(f"authors' code {case}: {timed[case]['ms_per_step']:.1f} ms/step (jax {timed['jax']})", flush=True)
    return {case: timed[case]["ms_per_step"] for case in cases}


def authors_ms(report: dict, key: str):
    """(authors' ms/step, whether it was timed in this run) or (None, False)."""
    timed = report["reference"].get("authors_timed_here", {})
    if key in timed:
        return timed[key], True
    return AUTHORS_MS_PER_STEP.get(key), False


def floor_lines(report: dict) -> list[str]:
    """The paper config's achieved time next to its floor and to the authors' code, with the target speed-up."""
    lines = []
    for key, r in report["algorithms"].items():
        if r["status"] != "ok" or "1" not in ok_runs(r):
            continue
        run = r["seeds"]["1"]
        line = (f"{r['label']}: {run['ms_per_step']:.1f} ms/step achieved, floor {run['floor_ms_per_step']:.1f} "
                f"ms/step ({r['flops']['flops_per_step'] / 1e9:.2f} GFLOP at the best measured matmul rate; "
                f"{100 * run['floor_ms_per_step'] / run['ms_per_step']:.0f} % of it reached)")
        ref, here = authors_ms(report, key)
        if ref and not report["settings"]["quick"]:
            line += (f"; authors' {ref:.1f} ms/step{'' if here else ' (ref, other run)'}: "
                     f"{ref / run['ms_per_step']:.2f}x now, {ref / run['floor_ms_per_step']:.2f}x at the floor "
                     f"({TARGET_SPEEDUP:g}x needs <= {ref / TARGET_SPEEDUP:.1f} ms/step)")
        lines.append(line)
    return lines


def format_table(report: dict) -> str:
    seeds = report["settings"]["seeds"]
    lo, hi = min(seeds), max(seeds)
    header = ["algorithm", "compile s", "GFLOP/step"]
    header += [f"ms/step {n}s" for n in sorted(seeds)] + [f"GFLOP/s {n}s" for n in sorted(seeds)]
    header += [f"% large mm {n}s" for n in sorted(seeds)] + [f"floor ms {lo}s"]
    if hi != lo:
        header += [f"time {hi}s/{lo}s"]
    header += ["vs authors"]
    rows = []
    for key, r in report["algorithms"].items():
        if r["status"] != "ok":
            rows.append([r["label"], f"{r['status']}: {r['reason']}"])
            continue
        measured = ok_runs(r)
        first = measured[min(measured, key=int)]
        row = [r["label"], f"{first['compile_seconds']:.1f}", f"{r['flops']['flops_per_step'] / 1e9:.3f}"]
        row += [seed_cell(r, n, lambda run: f"{run['ms_per_step']:.2f}") for n in sorted(seeds)]
        row += [seed_cell(r, n, lambda run: f"{run['gflops_achieved']:.1f}") for n in sorted(seeds)]
        row += [seed_cell(r, n, lambda run: f"{100 * run['fraction_of_large_matmul']:.0f}") for n in sorted(seeds)]
        row += [seed_cell(r, lo, lambda run: f"{run['floor_ms_per_step']:.2f}")]
        if hi != lo:
            row += [f"{r['time_ratio']['ratio']:.2f}" if str(lo) in measured and str(hi) in measured else "n/a"]
        ref, here = authors_ms(report, key)
        row += [f"{ref / measured['1']['ms_per_step']:.2f}x{'' if here else ' (ref)'}"
                if ref and "1" in measured and not report["settings"]["quick"] else ""]
        rows.append(row)
    full = [row for row in rows if len(row) == len(header)]
    widths = [max([len(h)] + [len(row[i]) for row in full]) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    for row in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths)) if len(row) == len(header)
                     else f"{row[0]}: {row[1]}")
    return "\n".join(lines)


def grid_worker(quick: bool) -> int:
    """(Run in a subprocess with a forced device count.) Times an 8-member TD3+BC grid sharded over all devices
    exactly as the host (common/experiment/) lays it out, and prints one JSON line."""
    from algorithms import td3_bc
    from common.experiment.members import build_members
    from common.experiment.placement import member_sharding, put_global
    from configs import td3_bc_mujoco

    settings = QUICK if quick else FULL
    config = td3_bc_mujoco.get_config()
    config.num_seeds, config.sweep.alpha = 2, "1,2,2.5,4"
    if quick:
        config.hidden_dims = (32, 32)
    dataset = synthetic_dataset(settings.transitions, settings.obs_dim, settings.act_dim)
    agent = td3_bc.make_agent(config, dataset)
    members, hparams = build_members(config, agent.hparams)
    sharding, replicated, padded = member_sharding(len(members))
    data = td3_bc.prepare_data(dataset, config)
    keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in members])
    if sharding is not None:
        data = put_global(data, replicated)
        keys, hparams = put_global((keys, hparams), sharding)
    state = jax.jit(jax.vmap(agent.init), out_shardings=sharding)(keys, hparams)
    shardings = {} if sharding is None else {"in_shardings": (sharding, replicated), "out_shardings": sharding}
    scan_steps = 20 if quick else 200
    update = jax.jit(jax.vmap(agent.update, in_axes=(0, None, None)), static_argnums=2, donate_argnums=0,
                     **shardings).lower(state, data, scan_steps).compile()
    holder = {"state": state}

    def call():
        holder["state"], metrics = update(holder["state"], data)
        jax.block_until_ready(metrics)

    times = timed_calls(call, settings.min_seconds, settings.min_calls)
    print(json.dumps({"devices": len(jax.devices()), "members": len(members),
                      "ms_per_step": 1e3 * sum(times) / (scan_steps * len(times))}))
    return 0


def bench_grid(device_counts: list[int], quick: bool, precision: str = "highest") -> list[dict]:
    """ms per step of the 8-member grid on each forced host-device count (one subprocess each)."""
    import os
    import subprocess

    rows = []
    for count in device_counts:
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
        cmd = [sys.executable, __file__, "--grid-worker", f"--matmul-precision={precision}"] + (["--quick"] if quick
                                                                                                 else [])
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            rows.append({"devices": count, "status": "failed", "reason": result.stderr.strip().splitlines()[-1:]})
            continue
        row = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"grid: {row['members']} TD3+BC members on {count} forced host device(s): "
              f"{row['ms_per_step']:.2f} ms/step", flush=True)
        rows.append({**row, "status": "ok"})
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default=",".join(BENCHMARKS), help=f"comma list of {', '.join(BENCHMARKS)}")
    parser.add_argument("--seeds", default="1,8", help="comma list of vmapped seed counts to time")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests; the numbers mean nothing)")
    parser.add_argument("--device-name", default=None, help="label of this machine in the report")
    parser.add_argument("--out", default="runs/bench.json", help="where the JSON report is written")
    parser.add_argument("--grid-devices", default="1,4",
                        help="forced host-device counts for the 8-member grid row ('' to skip)")
    parser.add_argument("--authors-python", default=os.environ.get("AUTHORS_PYTHON", ""),
                        help="python of an environment that runs the authors' code (tools/parity/README.md)")
    parser.add_argument("--authors-src", default=os.environ.get("AUTHORS_SRC", ""),
                        help="source tree of sail-sg/MISA, to time the authors' code in the same run")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="time each configuration at least this long (default 10; --quick 0)")
    parser.add_argument("--matmul-precision", default="highest", choices=("highest", "high", "default"),
                        help="jax_default_matmul_precision for every program (training runs default to highest; "
                             "'default' lets NVIDIA GPUs use TF32)")
    parser.add_argument("--budget-seconds", type=float, default=None,
                        help="start no new measurement after this many seconds: the rest are 'skipped: time' (the "
                             "report is rewritten after each algorithm, so a run stopped from outside keeps them)")
    parser.add_argument("--plan", action="store_true",
                        help="build and validate every measurement's config and agent, print the plan, time nothing")
    parser.add_argument("--grid-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grid_worker:
        return args, [], []
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = [a for a in algos if a not in BENCHMARKS]
    if unknown or not algos:
        parser.exit(2, f"error: unknown algorithm(s) {', '.join(unknown) or '(none given)'}; "
                       f"choose from {', '.join(BENCHMARKS)}\n")
    try:
        seeds = sorted({int(s) for s in args.seeds.split(",") if s.strip()})
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 1:
        parser.exit(2, f"error: --seeds must be a comma list of positive integers, got '{args.seeds}'\n")
    if args.budget_seconds is not None and not args.budget_seconds > 0:
        parser.exit(2, f"error: --budget-seconds must be positive, got {args.budget_seconds}\n")
    return args, algos, seeds


def main(argv=None) -> int:
    args, algos, seeds = parse_args(sys.argv[1:] if argv is None else argv)
    with jax.default_matmul_precision(args.matmul_precision):
        if args.grid_worker:
            return grid_worker(args.quick)
        if args.plan:
            return plan(args, algos, seeds)
        return run_benchmarks(args, algos, seeds)


def plan(args, algos, seeds) -> int:
    """What a run with these arguments would measure: each algorithm's config validated and its agent built (on a
    tiny dataset; nothing compiled or timed). Writes {"plan": [...]} to --out; exit 1 if any cannot be built."""
    rows = []
    dataset = synthetic_dataset(QUICK.transitions, QUICK.obs_dim, QUICK.act_dim)
    for key in algos:
        bench = BENCHMARKS[key]
        row = {"algorithm": key, "label": bench.label, "seeds": seeds, "matmul_precision": args.matmul_precision,
               "scan_steps": QUICK_SCAN_STEPS if args.quick else bench.scan_steps}
        try:
            module = importlib.import_module(bench.module)
            config = build_config(bench, args.quick)
            module.validate_config(config)
            module.make_agent(config, dataset)
            row.update(status="ok", n_actions=config.get("n_actions"), unbiased=config.get("unbiased_samples"))
        except Exception as e:
            row.update(status="failed", reason=f"{type(e).__name__}: {e}".splitlines()[0])
        rows.append(row)
        why = f" ({row['reason']})" if "reason" in row else ""
        print(f"plan: {bench.label}: seeds {','.join(map(str, seeds))}, {row['scan_steps']} steps per call, "
              f"matmul precision {args.matmul_precision}: {row['status']}{why}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"plan": rows, "budget_seconds": args.budget_seconds}, indent=2) + "\n")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def write_partial(out: Path, device: dict, matmul: list, results: dict) -> None:
    """The results so far, marked partial: what a run stopped from outside (a time limit) leaves behind."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"partial": True, "device": device, "matmul": matmul, "algorithms": results},
                              indent=2, default=float) + "\n")


def run_benchmarks(args, algos, seeds) -> int:
    settings = QUICK if args.quick else FULL
    if args.min_seconds is not None:
        settings = settings._replace(min_seconds=args.min_seconds)
    device = {**device_info(args.device_name), "matmul_precision": args.matmul_precision}
    started = time.perf_counter()
    print(f"device: {device['name']} ({device['device_kind']}, {device['platform']}), {device['cpu_count']} CPUs "
          f"({device['cpus_usable']} usable), jax {device['jax']}" + (" -- QUICK MODE" if args.quick else ""))
    print(REFERENCE_LINE, flush=True)

    matmul = [matmul_rate(m, k, settings.matmul_seconds) for m, k in settings.matmul_shapes]
    for r in matmul:
        print(f"matmul {r['shape']}: {r['gflops']:.1f} GFLOP/s", flush=True)

    dataset = synthetic_dataset(settings.transitions, settings.obs_dim, settings.act_dim)
    deadline = None if args.budget_seconds is None else started + args.budget_seconds
    results, interrupted = {}, False
    for key in algos:
        if interrupted:
            results[key] = {"label": BENCHMARKS[key].label, "status": "skipped", "reason": "interrupted"}
            continue
        results[key] = bench_algorithm(key, seeds, settings, dataset, args.quick, deadline,
                                       lambda partial: write_partial(Path(args.out), device, matmul,
                                                                     {**results, key: partial}))  # noqa: B023
        interrupted = results[key].pop("interrupted", False)
        if results[key]["status"] != "ok":
            print(f"  {key}: {results[key]['status']} ({results[key]['reason']})", flush=True)
        write_partial(Path(args.out), device, matmul, results)
    add_ratios(results, matmul)
    grid_counts = [int(c) for c in args.grid_devices.split(",") if c.strip()]
    grid = [] if interrupted else bench_grid(grid_counts, args.quick, args.matmul_precision)
    authors = (time_authors(args.authors_python, args.authors_src, algos)
               if args.authors_python and args.authors_src and not args.quick else {})
    report = {
        "device": device,
        "settings": {"quick": args.quick, "seeds": seeds, "dataset_stats": dataset.stats,
                     "min_seconds": settings.min_seconds, "min_calls": settings.min_calls,
                     "budget_seconds": args.budget_seconds},
        "matmul": matmul,
        "matmul_large_gflops": max(matmul, key=lambda r: r["m"] * r["k"] * r["k"])["gflops"],
        "algorithms": results,
        "grid_8_members": grid,
        "reference": {"authors_ms_per_step": AUTHORS_MS_PER_STEP, "note": REFERENCE_LINE,
                      "authors_timed_here": authors},
        "wall_seconds": time.perf_counter() - started,
    }
    print()
    print(format_table(report))
    print()
    print("\n".join(floor_lines(report)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"\nwritten: {out} ({report['wall_seconds']:.0f} s)" + (" -- interrupted" if interrupted else ""))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
