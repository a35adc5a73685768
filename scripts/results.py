"""Train every algorithm on several datasets with vmapped seeds, then tabulate and plot (run by `make results`).

    python scripts/results.py [--algos bc,td3_bc,cql,misa] [--datasets a,b,c] [--seeds 5] [--steps 100000]
                              [--eval-every 10000] [--eval-episodes 10] [--out results] [--set field=value ...]
                              [--doc docs/RESULTS.md] [--report-only]

One training process (common.experiment.run, `--seeds` seeds vmapped) per (algorithm, dataset), each
with its config file's settings for that dataset plus the stated budget. Resumable: a run whose
summary.json exists is not trained again (delete its directory to redo it); an unfinished run continues
from its latest checkpoint (one is written at every evaluation), so a stopped or preempted sweep loses at
most one interval per run; a run that diverged is recorded in failed.json and skipped too unless
--retry-failed (then it starts again from step 0). A run is reused or continued only with the settings it
was trained with (budget, --set values, the config file's): another budget is refused before anything
trains (use another --out). Every argument, config and dataset is checked before the first run trains.
The report states the budget the runs were trained with (their config.json, summary.json, history.jsonl);
--report-only refuses runs that disagree on it, and budget options that disagree with the runs'.
Exit status: 0 done; 2 bad input (one line on stderr); 128 + the signal's number when interrupted.
Writes into --out:
  results.md    tables: final and best normalised scores (mean ± std over seeds) per dataset x algorithm,
                and per algorithm the IQM and mean over all (dataset, seed) final scores with stratified
                bootstrap 95% CIs (common/stats.py)
  curves.png    one panel per dataset, one line per algorithm, band = ± one std over seeds
  results.json  everything above plus per-run wall time, steps/s, compile time, budget and hardware
Each run's sweep.json names the machine(s) its attempts trained on; the report states the hardware per
run, never the machine that happens to write the report.
  runs/<algorithm>__<dataset>/   the runs themselves (the host's layout, common/experiment/)
"""

from __future__ import annotations

import ast
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common import checkpoints, stats
from common.arguments import OneLineParser
from common.checkpoints import CheckpointError
from common.datasets import load_dataset, shipped_datasets
from common.errors import DatasetError
from common.experiment import ConfigError, Interrupted
from common.experiment.configuration import validate_shared
from common.hardware import device_info
from common.logger import read_eval, read_history, write_json_atomic, write_text_atomic
from common.runs import RunError, check_writable_dir

ROOT = Path(__file__).resolve().parent.parent


class Algorithm(NamedTuple):
    label: str  # column name in the tables
    module: str  # algorithm module: ALGORITHM, make_agent, prepare_data, validate_config
    config_module: str  # config module: get_config(dataset)
    overrides: dict  # fields set on top of the config file


# Column order of the tables (the MISA paper's).
ALGORITHMS = {
    "bc": Algorithm("BC", "algorithms.td3_bc", "configs.td3_bc_mujoco", {"bc_only": True}),
    "td3_bc": Algorithm("TD3+BC", "algorithms.td3_bc", "configs.td3_bc_mujoco", {}),
    "cql": Algorithm("CQL", "algorithms.cql", "configs.cql_mujoco", {}),
    "misa": Algorithm("MISA", "algorithms.misa", "configs.misa_mujoco", {}),
}
MARKER_BEGIN, MARKER_END = "<!-- results:begin -->", "<!-- results:end -->"
EARLIER_WALL = "earlier_wall.json"  # in a run directory: wall seconds and machines of its earlier attempts
# The budget: config field -> (command-line option, its default).
BUDGET = {"num_seeds": ("--seeds", 5), "total_steps": ("--steps", 100_000), "eval_every": ("--eval-every", 10_000),
          "eval_episodes": ("--eval-episodes", 10), "seed": ("--seed", 0)}


class SweepError(ValueError):
    """Bad command-line input (one line)."""


# ------------------------------------------------------------------------------------------------
# Configs and runs
# ------------------------------------------------------------------------------------------------


def dataset_key(dataset: str) -> str:
    """A dataset name as a directory name: paths become their file stem."""
    name = Path(dataset).stem if dataset.endswith((".hdf5", ".h5", ".npz")) else dataset
    return name.replace(":", "_").replace("/", "_")


def run_name(algo: str, dataset: str) -> str:
    return f"{algo}__{dataset_key(dataset)}"


def parse_sets(items: list[str]) -> list[tuple[str | None, str, object]]:
    """`field=value` or `algo.field=value` -> (algo or None, field, value); values are Python literals or strings."""
    out = []
    for item in items:
        if "=" not in item:
            raise SweepError(f"--set expects field=value, got '{item}'")
        key, text = item.split("=", 1)
        algo, field = key.split(".", 1) if "." in key else (None, key)
        if algo is not None and algo not in ALGORITHMS:
            raise SweepError(f"--set {item}: unknown algorithm '{algo}' (choose from {', '.join(ALGORITHMS)})")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        out.append((algo, field, value))
    return out


def file_config(algo: str, dataset: str):
    """The config file's settings for `dataset` with the algorithm's overrides (no budget, no --set)."""
    spec = ALGORITHMS[algo]
    module = importlib.import_module(spec.config_module)
    try:
        config = module.get_config(dataset)
    except Exception:  # a config file may reject a variant it does not know (e.g. a path): use its defaults
        config = module.get_config()
    config.dataset = dataset
    for field, value in spec.overrides.items():
        config[field] = value
    return config


def build_config(algo: str, dataset: str, args, sets, fresh: bool = False) -> object:
    """The config file's settings for `dataset`, the algorithm's overrides, the budget, then --set values."""
    config = file_config(algo, dataset)
    budget = {"num_seeds": args.seeds, "total_steps": args.steps, "eval_every": args.eval_every,
              "eval_episodes": args.eval_episodes, "seed": args.seed, "checkpoint_every": args.eval_every}
    for field, value in budget.items():
        config[field] = value
    for target, field, value in sets:
        if target in (None, algo) and field in config:
            try:
                config[field] = type(config[field])(value) if isinstance(config[field], float) else value
            except (TypeError, ValueError) as e:
                raise SweepError(f"--set {field}={value!r} does not fit {algo}'s config: {e}") from None
    config.log_dir = str(Path(args.out) / "runs")
    config.run_name = run_name(algo, dataset)
    # An unfinished run (no summary.json) continues from its latest checkpoint (the run refuses if the config
    # changed since), or starts again when it stopped before its first one or when `fresh` (a diverged run retried).
    config.resume = not fresh and checkpoints.latest(Path(config.log_dir) / config.run_name) is not None
    config.overwrite = not config.resume
    config.progress = sys.stderr.isatty()
    return config


def train_one(algo: str, dataset_name: str, dataset, args, sets, fresh: bool = False) -> dict:
    """Trains one (algorithm, dataset) run; returns its status dict (also written as sweep.json or failed.json).

    Its wall time adds up the attempts that ended in Python (finished, diverged or stopped by a signal; kept in
    the run's earlier_wall.json), so a resumed run reports the time all of its steps took; an attempt killed
    outright (SIGKILL, power loss) is not counted. `hardware` lists the machine of every counted attempt.
    """
    from common import experiment

    run_dir = Path(args.out) / "runs" / run_name(algo, dataset_name)
    module = importlib.import_module(ALGORITHMS[algo].module)
    config = build_config(algo, dataset_name, args, sets, fresh)
    earlier = (_read_json(run_dir / EARLIER_WALL) or {}) if config.resume else {}
    machines = list(dict.fromkeys([*earlier.get("hardware", []), hardware_label(device_info(args.device_name))]))
    t0 = time.perf_counter()

    def wall() -> float:
        return earlier.get("seconds", 0.0) + time.perf_counter() - t0

    try:
        summary = experiment.run(module.METHOD, config, dataset=dataset)
    except experiment.Interrupted as e:  # the detail's how-to-continue is the run's own; here: this command
        if run_dir.is_dir():
            write_json_atomic(run_dir / EARLIER_WALL, {"seconds": wall(), "hardware": machines})
        where = e.detail.split(";")[0]
        detail = f"{algo} on {dataset_name} {where}; the same command continues it"
        raise experiment.Interrupted(e.signum, detail) from None
    except experiment.Diverged as e:
        status = {"status": "diverged", "error": str(e), "wall_seconds": wall(), "hardware": machines}
        write_json_atomic(run_dir / "failed.json", status)
        return status
    status = {"status": "done", "wall_seconds": wall(), "hardware": machines, "run_dir": summary["run_dir"],
              "command": " ".join(sys.argv)}
    write_json_atomic(run_dir / "sweep.json", status)
    return status


def run_sweep(algos: list[str], datasets: list[str], args, sets) -> None:
    """Trains every missing (algorithm, dataset) run, dataset by dataset (each dataset is loaded once).

    The arguments, every config and every dataset to train on were checked before (`check_sweep`).
    """
    todo = {}
    for dataset_name in datasets:
        for algo in algos:
            run_dir = Path(args.out) / "runs" / run_name(algo, dataset_name)
            if (run_dir / "summary.json").exists():
                print(f"skip {algo} on {dataset_name}: {run_dir / 'summary.json'} exists", flush=True)
            elif (run_dir / "failed.json").exists() and not args.retry_failed:
                print(f"skip {algo} on {dataset_name}: it diverged before (see {run_dir / 'failed.json'}; "
                      "--retry-failed trains it again)", flush=True)
            else:
                todo.setdefault(dataset_name, []).append(algo)
    for dataset_name, dataset_algos in todo.items():
        dataset = load_dataset(dataset_name)
        for algo in dataset_algos:
            run_dir = Path(args.out) / "runs" / run_name(algo, dataset_name)
            retried = (run_dir / "failed.json").exists()  # a diverged run retried starts again from step 0
            (run_dir / "failed.json").unlink(missing_ok=True)
            latest = None if retried else checkpoints.latest(run_dir)
            resumed = f", resumed at {latest.name.replace('_', ' ')}" if latest else ""
            print(f"train {algo} on {dataset_name}: {args.seeds} seeds x {args.steps} steps{resumed}", flush=True)
            status = train_one(algo, dataset_name, dataset, args, sets, fresh=retried)
            print(f"  {status['status']} in {status['wall_seconds']:.0f} s" +
                  (f": {status['error']}" if status["status"] != "done" else ""), flush=True)


# ------------------------------------------------------------------------------------------------
# Checks: every input before training; a run is reused only with the settings it was trained with
# ------------------------------------------------------------------------------------------------


def recorded_config(run_dir: Path) -> dict | None:
    """The config a run trains with: its config.json as its latest resume changed it (history.jsonl); None when
    it has no config.json."""
    config = _read_json(run_dir / "config.json")
    for entry in read_history(run_dir) if config is not None else []:
        if entry.get("event") == "resume" and isinstance(entry.get("config"), dict):
            config = entry["config"]
    return config


def settings(config: dict) -> dict:
    """What a run's numbers depend on: its computation-changing config fields, and total_steps."""
    return {**checkpoints.config_identity(config), "total_steps": config.get("total_steps")}


def shown(values: dict, fields: list[str]) -> str:
    return ", ".join(f"{field}={values.get(field, '<absent>')!r}" for field in fields)


def reused(run_dir: Path, retry_failed: bool) -> bool:
    """Whether this command would use a run as it is (finished, diverged and not retried) or continue it."""
    if (run_dir / "failed.json").exists():
        return not retry_failed
    return (run_dir / "summary.json").exists() or checkpoints.latest(run_dir) is not None


def check_reuse(run_dir: Path, recorded: dict, asked: dict, fields=None) -> None:
    """Refuses a run trained with other settings than `asked` (the `fields` of them given; default all)."""
    old, new = settings(recorded), settings(asked)
    changed = [f for f in sorted(set(old) | set(new) if fields is None else fields)
               if old.get(f, "<absent>") != new.get(f, "<absent>")]
    if not changed:
        return
    if fields is not None:  # --report-only
        options = sorted({BUDGET[f][0] if f in BUDGET else "--set" for f in changed})
        how = f"leave {' and '.join(options)} out to report the runs' own settings"
    elif set(changed) <= set(BUDGET):
        how = f"pass another --out, or the same budget ({' '.join(f'{BUDGET[f][0]} {old[f]}' for f in changed)})"
    else:
        how = "pass another --out, or the run's settings"
    raise SweepError(f"{run_dir} was trained with {shown(old, changed)}, this command asks {shown(new, changed)}: "
                     f"{how}")


def check_sweep(algos: list[str], datasets: list[str], args, sets) -> None:
    """Before anything trains: every (algorithm, dataset) config passes the host's and the method's checks, every
    run to be reused or continued was trained with these settings (with --report-only: the ones given), and
    every dataset to train on loads."""
    given = [f for f in BUDGET if f in args.given] + sorted({field for _, field, _ in sets})
    to_train = set()
    for algo in algos:
        method = importlib.import_module(ALGORITHMS[algo].module).METHOD
        for dataset in datasets:
            config = build_config(algo, dataset, args, sets)
            try:
                if not args.report_only:
                    validate_shared(config)
                    method.validate_config(config)
            except ConfigError as e:
                raise SweepError(f"{algo} on {dataset}: {e}") from None
            run_dir = Path(args.out) / "runs" / run_name(algo, dataset)
            recorded = recorded_config(run_dir)
            if recorded is not None and (args.report_only or reused(run_dir, args.retry_failed)):
                check_reuse(run_dir, recorded, config.to_dict(), given if args.report_only else None)
            if not args.report_only and not (run_dir / "summary.json").exists() and not (
                    (run_dir / "failed.json").exists() and not args.retry_failed):
                to_train.add(dataset)
    for dataset in sorted(to_train):
        load_dataset(dataset)


def runs_budget(out: Path, algos: list[str], datasets: list[str]) -> dict:
    """The budget the runs under `out` were trained with (their own records), and the config overrides they have
    beyond their config file's settings; refused when the runs disagree on the budget."""
    budgets, overrides = {}, {}
    for algo in algos:
        for dataset in datasets:
            run_dir = out / "runs" / run_name(algo, dataset)
            config = recorded_config(run_dir)
            if config is None:
                continue
            done = _read_json(run_dir / "summary.json") or {}
            budgets[run_dir] = {**{f: config.get(f) for f in BUDGET}, "total_steps": done.get("total_steps",
                                                                                              config.get("total_steps"))}
            own, base = settings(config), settings(file_config(algo, dataset).to_dict())
            overrides.setdefault(algo, set()).update(f"{f}={own[f]!r}" for f in sorted(own) if f not in BUDGET
                                                     and own[f] != base.get(f, "<absent>"))
    if not budgets:
        raise SweepError(f"nothing to report: no run of {', '.join(algos)} on these datasets under {out / 'runs'}")
    (first, budget), *rest = budgets.items()
    for run_dir, other in rest:
        changed = [f for f in BUDGET if other[f] != budget[f]]
        if changed:
            raise SweepError(f"the runs disagree on their budget: {first} has {shown(budget, changed)}, {run_dir} "
                             f"has {shown(other, changed)}: report them apart (one --out per budget)")
    common = set.intersection(*overrides.values())
    listed = sorted(common) + sorted(f"{a}.{o}" for a, items in overrides.items() for o in items - common)
    return {"num_seeds": budget["num_seeds"], "total_steps": budget["total_steps"], "eval_every": budget["eval_every"],
            "eval_episodes": budget["eval_episodes"], "first_seed": budget["seed"], "overrides": listed}


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _read_json(path: Path):
    """The JSON object in `path`, None when there is no such file; SweepError when it is unreadable."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SweepError(f"{path} is unreadable: {str(e).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise SweepError(f"{path} is unreadable: it holds no JSON object")
    return value


def hardware_label(hardware: dict) -> str:
    """A machine as the report names it: `name (device kind, N CPUs)`, from scripts/bench.py's device_info."""
    return f"{hardware.get('name')} ({hardware.get('device_kind')}, {hardware.get('cpu_count')} CPUs)"


def run_hardware(runs: list[dict]) -> list[str]:
    """The machines these runs trained on, in order; "unknown" for a run whose sweep.json does not say."""
    return list(dict.fromkeys(m for r in runs for m in (r.get("hardware") or ["unknown"])))


def collect(out: Path, algos: list[str], datasets: list[str]) -> dict:
    """Everything the report needs from the run directories: {(algo, dataset): run record}."""
    runs = {}
    for algo in algos:
        for dataset in datasets:
            run_dir = out / "runs" / run_name(algo, dataset)
            summary, sweep, failed = (_read_json(run_dir / n) for n in ("summary.json", "sweep.json", "failed.json"))
            curve = read_eval(run_dir) if (run_dir / "eval.csv").exists() else None
            if summary is None:
                if failed is not None:
                    runs[(algo, dataset)] = {"status": failed.get("status", "failed"), "error": failed.get("error")}
                elif curve is not None and curve["step"].size:  # stopped or still training: shown, never scored
                    runs[(algo, dataset)] = {"status": "unfinished", "run_dir": str(run_dir), "curve": curve,
                                             "reached": int(curve["step"][-1])}
                continue
            runs[(algo, dataset)] = {
                "status": "done",
                "run_dir": str(run_dir),
                "final": summary["normalized_score_final"],
                "best": summary["normalized_score_best"],
                "return_final": summary.get("return_final", []),
                "steps_per_second": summary.get("steps_per_second"),
                "compile_seconds": summary.get("compile_seconds"),
                "total_steps": summary.get("total_steps"),
                "num_seeds": summary.get("num_seeds"),
                "env": summary.get("env"),
                "device": summary.get("device"),
                "dataset_stats": summary.get("dataset_stats"),
                "wall_seconds": (sweep or {}).get("wall_seconds"),
                "hardware": (sweep or {}).get("hardware"),
                "curve": curve,
            }
    return runs


def learning_curves(runs: dict, algos: list[str], datasets: list[str]) -> tuple[dict, str]:
    """{dataset: {label: {step, mean, std}}} over seeds, and the y label (raw returns when no score exists)."""
    has_score = any(r.get("curve") is not None and np.isfinite(r["curve"]["score"]).any() for r in runs.values())
    key, ylabel = ("score", "D4RL-normalised score") if has_score else ("return", "episode return")
    curves = {}
    for dataset in datasets:
        for algo in algos:
            curve = runs.get((algo, dataset), {}).get("curve")
            if curve is None or not curve["step"].size:
                continue
            values = curve[key]
            with np.errstate(all="ignore"):
                mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
            unfinished = runs[(algo, dataset)]["status"] == "unfinished"
            label = ALGORITHMS[algo].label + (" (unfinished)" if unfinished else "")
            curves.setdefault(dataset_key(dataset), {})[label] = {
                "step": curve["step"].tolist(), "mean": mean.tolist(), "std": std.tolist()}
    return curves, ylabel


def unfinished_note(label: str, dataset: str, run: dict, total_steps: int) -> str:
    """The notes line of a run without summary.json: how far it got and its last evaluation, outside the tables."""
    last = run["curve"]["score"][:, -1]
    shown = (f"{np.nanmean(last):.1f} ± {np.nanstd(last):.1f}" if np.isfinite(last).any() else "n/a")
    return (f"- {label} on {dataset}: unfinished, evaluated up to step {run['reached']:,} of {total_steps:,} "
            f"(score there {shown}, in the figure only); the same command continues it")


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    return value


def write_report(out: Path, algos: list[str], datasets: list[str], budget: dict,
                 n_resamples: int = stats.DEFAULT_RESAMPLES) -> dict:
    """Writes results.md, curves.png and results.json from the run directories; returns the JSON payload.

    The hardware is each run's own (its sweep.json): one machine is named in the header, several in a column
    of the cost table, since steps/s and wall time compare only within one machine.
    """
    from common.plots import plot_learning_curves

    out = Path(out)
    runs = collect(out, algos, datasets)
    labels = [ALGORITHMS[a].label for a in algos]
    names = [dataset_key(d) for d in datasets]  # paths shown as their file stem
    final = {(ALGORITHMS[a].label, dataset_key(d)): r["final"] for (a, d), r in runs.items() if r["status"] == "done"}
    best = {(ALGORITHMS[a].label, dataset_key(d)): r["best"] for (a, d), r in runs.items() if r["status"] == "done"}
    agg_final = stats.aggregate(final, labels, names, n_resamples=n_resamples)
    agg_best = stats.aggregate(best, labels, names, n_resamples=n_resamples)
    curves, ylabel = learning_curves(runs, algos, datasets)
    plot = out / ".curves.partial.png"  # every file is renamed into place at the end
    if curves:
        plot_learning_curves(curves, plot, f"{budget['total_steps']} steps, {budget['num_seeds']} seeds (mean ± std)",
                             ylabel)

    cost_rows = []
    for a in algos:
        done = [runs[(a, d)] for d in datasets if runs.get((a, d), {}).get("status") == "done"]
        sps = [r["steps_per_second"] for r in done if r["steps_per_second"]]
        walls = [r["wall_seconds"] for r in done if r["wall_seconds"] is not None]
        steps = sorted({r["total_steps"] for r in done if r["total_steps"]})
        cost_rows.append([ALGORITHMS[a].label, len(done), ", ".join(f"{s:,}" for s in steps) or "–",
                          f"{np.mean(sps):.1f}" if sps else "–", f"{sum(walls) / 3600:.2f}" if walls else "–",
                          "; ".join(run_hardware(done)) or "–"])
    machines = run_hardware([r for r in runs.values() if r["status"] == "done"])
    one_machine = len(machines) == 1
    if one_machine:  # named once, in the header
        cost_rows = [row[:-1] for row in cost_rows]
    hardware_line = (f" Hardware: {machines[0]}." if one_machine else " Hardware: per algorithm in the cost table "
                     "(steps/s and wall time compare only within one machine)." if machines else "")
    problems = [f"- {ALGORITHMS[a].label} on {dataset_key(d)}: {r['status']} ({r.get('error')})"
                for (a, d), r in runs.items() if r["status"] not in ("done", "unfinished")]
    problems += [unfinished_note(ALGORITHMS[a].label, dataset_key(d), r, budget["total_steps"])
                 for (a, d), r in runs.items() if r["status"] == "unfinished"]
    missing = [f"- {ALGORITHMS[a].label} on {dataset_key(d)}: not run yet"
               for a in algos for d in datasets if (a, d) not in runs]
    if len(datasets) < 3:
        problems.append(f"- only {len(datasets)} dataset(s): the aggregate is meant for 3 or more")

    lines = [
        f"Budget: {budget['total_steps']:,} gradient steps, evaluation every {budget['eval_every']:,} steps with "
        f"{budget['eval_episodes']} episodes, {budget['num_seeds']} seeds per (algorithm, dataset), vmapped in one "
        "process." + hardware_line
        + (f" Config overrides: {', '.join(budget['overrides'])}." if budget.get("overrides") else "")
        + " Scores: D4RL-normalised (×100); final = last evaluation, best = best evaluation of each seed; "
        "std over seeds with ddof 0.",
        "",
        "Final normalised score (mean ± std over seeds):",
        "",
        stats.score_table(final, labels, names),
        "Best normalised score during training (mean ± std over seeds):",
        "",
        stats.score_table(best, labels, names),
        "Aggregate of final scores over all (dataset, seed) pairs: interquartile mean and mean, 95% stratified "
        f"bootstrap CIs ({n_resamples} resamples; seeds resampled within each dataset):",
        "",
        stats.aggregate_table(agg_final),
        "Aggregate of best scores, same method:",
        "",
        stats.aggregate_table(agg_best),
        "Cost: gradient steps per run, mean training steps/s (all seeds together, compile and evaluation "
        "excluded) and total wall time of the runs (evaluation included):",
        "",
        stats.markdown_table(["algorithm", "runs", "steps per run", "steps/s", "wall hours"]
                             + ([] if one_machine else ["hardware"]), cost_rows),
    ]
    if curves:
        lines += ["![learning curves](curves.png)", ""]
    if problems or missing:
        lines += ["Notes:", "", *problems, *missing, ""]
    markdown = "\n".join(lines)

    payload = {
        "budget": budget,
        "hardware": machines,
        "algorithms": {a: {"label": ALGORITHMS[a].label, "overrides": ALGORITHMS[a].overrides} for a in algos},
        "datasets": datasets,
        "runs": [{"algorithm": a, "dataset": d, **{k: v for k, v in r.items() if k != "curve"}}
                 for (a, d), r in runs.items()],
        "aggregate_final": {label: {k: (v._asdict() if isinstance(v, stats.Estimate) else v) for k, v in r.items()}
                            for label, r in agg_final.items()},
        "aggregate_best": {label: {k: (v._asdict() if isinstance(v, stats.Estimate) else v) for k, v in r.items()}
                           for label, r in agg_best.items()},
        "curves": curves,
        "curve_quantity": ylabel,
        "wall_seconds_total": sum(r.get("wall_seconds") or 0.0 for r in runs.values()),
    }
    if curves:
        os.replace(plot, out / "curves.png")
    write_text_atomic(out / "results.md", markdown)
    write_json_atomic(out / "results.json", _jsonable(payload))
    return payload


def update_doc(doc: Path, out: Path) -> None:
    """Replaces the text between the results markers of `doc` with results.md (image path made relative)."""
    text = doc.read_text()
    if MARKER_BEGIN not in text or MARKER_END not in text:
        raise SweepError(f"{doc} has no '{MARKER_BEGIN}' ... '{MARKER_END}' block to fill")
    body = (out / "results.md").read_text()
    image = Path(out).resolve() / "curves.png"
    try:
        rel = image.relative_to(doc.resolve().parent)
    except ValueError:
        rel = Path("..") / image.relative_to(ROOT) if image.is_relative_to(ROOT) else image
    body = body.replace("](curves.png)", f"]({rel.as_posix()})")
    head, rest = text.split(MARKER_BEGIN, 1)
    tail = rest.split(MARKER_END, 1)[1]
    write_text_atomic(doc, f"{head}{MARKER_BEGIN}\n{body}\n{MARKER_END}{tail}")


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default=",".join(ALGORITHMS), help=f"comma list of {', '.join(ALGORITHMS)}")
    parser.add_argument("--datasets", default="", help="comma list of dataset names or paths (default: shipped ones)")
    parser.add_argument("--seeds", type=int, help="seeds per (algorithm, dataset), vmapped in one process (5)")
    parser.add_argument("--seed", type=int, help="first seed (0)")
    parser.add_argument("--steps", type=int, help="gradient steps per run (100000)")
    parser.add_argument("--eval-every", type=int, help="gradient steps between evaluations (10000)")
    parser.add_argument("--eval-episodes", type=int, help="episodes per evaluation and seed (10)")
    parser.add_argument("--out", default="results", help="output directory")
    parser.add_argument("--set", action="append", default=[], metavar="[ALGO.]FIELD=VALUE",
                        help="config override for every algorithm that has FIELD (or only ALGO); repeatable")
    parser.add_argument("--retry-failed", action="store_true", help="train runs that diverged before again")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the tables and plots, stating the "
                        "runs' own budget (a budget option given must agree with it)")
    parser.add_argument("--doc", default="", help="also fill the results block of this Markdown file")
    parser.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES, help="bootstrap resamples")
    parser.add_argument("--device-name", default=None, help="label of this machine in the report")
    args = parser.parse_args(argv)
    args.given = set()  # the budget fields given on the command line
    for field, (option, default) in BUDGET.items():
        name = option[2:].replace("-", "_")
        if getattr(args, name) is None:
            setattr(args, name, default)
        else:
            args.given.add(field)
    return args


def check_args(args) -> tuple[list[str], list[str], list]:
    """(algorithms, datasets, --set values) once every argument is valid; SweepError (one line) otherwise."""
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    unknown = [a for a in algos if a not in ALGORITHMS]
    if unknown or not algos:
        raise SweepError(f"unknown algorithm(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ALGORITHMS)}")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] or shipped_datasets()
    if not datasets:
        raise SweepError("no dataset given and none shipped under data/: pass --datasets a,b,c")
    for option, names, key in (("--algos", algos, str), ("--datasets", datasets, dataset_key)):
        seen = {}
        for name in names:  # one run directory per (algorithm, dataset): two names for one would share it
            if key(name) in seen:
                raise SweepError(f"{option} names {seen[key(name)]!r} and {name!r}, which share the run directories "
                                 f"of '{key(name)}'; give each once (rename a file whose stem another has)")
            seen[key(name)] = name
    for name, value in (("--seeds", args.seeds), ("--steps", args.steps), ("--eval-every", args.eval_every)):
        if value < 1:
            raise SweepError(f"{name} must be a positive integer, got {value}")
    if args.steps % args.eval_every and not args.report_only:
        raise SweepError(f"--steps ({args.steps}) must be a multiple of --eval-every ({args.eval_every})")
    if args.eval_episodes < 0:
        raise SweepError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")
    if args.resamples < 1:
        raise SweepError(f"--resamples must be >= 1, got {args.resamples}")
    sets = parse_sets(args.set)
    for target, field, _ in sets:
        configs = [importlib.import_module(ALGORITHMS[a].config_module).get_config() for a in algos
                   if target in (None, a)]
        if not any(field in c for c in configs):
            raise SweepError(f"--set {field}: no selected algorithm's config has this field")
    if args.doc:
        doc = Path(args.doc)
        if not doc.is_file():
            raise SweepError(f"--doc {args.doc}: no such file")
        text = doc.read_text()
        if MARKER_BEGIN not in text or MARKER_END not in text:
            raise SweepError(f"--doc {doc} has no '{MARKER_BEGIN}' ... '{MARKER_END}' block to fill")
        if not os.access(doc, os.W_OK):
            raise SweepError(f"--doc {doc} cannot be written (permission denied)")
    check_writable_dir(args.out, "--out")
    return algos, datasets, sets


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    try:
        algos, datasets, sets = check_args(args)
        check_sweep(algos, datasets, args, sets)
        started = time.perf_counter()
        if not args.report_only:
            out.mkdir(parents=True, exist_ok=True)
            run_sweep(algos, datasets, args, sets)
        budget = runs_budget(out, algos, datasets)
    except (SweepError, RunError, DatasetError, ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # SIGTERM / SIGINT: the run under way saved its last interval
        print(e, file=sys.stderr)
        return e.status
    except KeyboardInterrupt:  # SIGINT outside a run (loading datasets): nothing of a run was lost
        print("interrupted by SIGINT before a run started; the same command continues the sweep", file=sys.stderr)
        return 130

    try:
        payload = write_report(out, algos, datasets, budget, args.resamples)
        if args.doc:
            update_doc(Path(args.doc), out)
    except KeyboardInterrupt:
        print("interrupted by SIGINT: while writing the report (each of its files is the previous or the new one, "
              "whole); the runs are complete: rerun with --report-only", file=sys.stderr)
        return 130
    finally:
        (out / ".curves.partial.png").unlink(missing_ok=True)
    print((out / "results.md").read_text())
    print(f"written: {out / 'results.md'}, {out / 'results.json'}" + (", " + str(out / "curves.png")
          if payload["curves"] else "") + f" ({time.perf_counter() - started:.0f} s this call)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
