"""Train every algorithm on several datasets with vmapped seeds, then tabulate and plot (run by `make results`).

    python scripts/results.py [--algos bc,td3_bc,cql,misa] [--datasets a,b,c] [--seeds 5] [--steps 100000]
                              [--eval-every 10000] [--eval-episodes N] [--out results] [--set field=value ...]
                              [--doc docs/RESULTS.md] [--report-only]

One training process (common.experiment.run, `--seeds` seeds vmapped) per (algorithm, dataset), each with
the config file of its method on the dataset's domain at its settings for that dataset, plus the stated
budget. Datasets of any domain mix in one sweep (e.g. --datasets antmaze-umaze-v2,pen-human-v1,
kitchen-complete-v0): a dataset's domain (locomotion, antmaze, adroit, kitchen) is the one the host evaluates
it in, and method M trains it with configs/{M}_{mujoco|antmaze|adroit|kitchen}.py (BC: TD3+BC's with
bc_only=True); a dataset of no known domain takes the mujoco configs (scripts/results_plan.py says how a
domain is found). A (method, domain) with no config file is refused before anything trains.
The budget: --seeds, --seed, --steps and --eval-every are one for every run (defaults 5, 0, 100,000 and
10,000, whatever the configs' full budgets); --eval-episodes, when given, is every run's too, and by default
each run keeps its config's own, its domain's evaluation protocol (10 episodes, AntMaze 100: a success rate
from 10 episodes moves in steps of 10 points), so the report states episodes per domain when they differ.
Resumable: a run whose summary.json exists is not trained again (delete its directory to redo it); an
unfinished run continues from its latest checkpoint (one is written at every evaluation), so a stopped or
preempted sweep loses at most one interval per run; a run that diverged is recorded in failed.json and
skipped too unless --retry-failed (then it starts again from step 0). A run is reused or continued only
with the settings it was trained with (budget, --set values, the config file's): another budget is refused
before anything trains (use another --out). Every argument, config and dataset is checked before the first
run trains. The report states the budget the runs were trained with (their config.json, summary.json,
history.jsonl); --report-only refuses runs that disagree on it, and budget options that disagree with the
runs'. Exit status: 0 done; 2 bad input (one line on stderr); 128 + the signal's number when interrupted.
Writes into --out (scripts/results_report.py):
  results.md    per domain: final and best normalised scores (mean ± std over seeds) per dataset x algorithm,
                and per algorithm the IQM and mean over the domain's (dataset, seed) final scores with
                stratified bootstrap 95% CIs (common/stats.py) and the domain total; no number pools domains
  curves.png    one panel per dataset, one line per algorithm, band = ± one std over seeds
  results.json  everything above plus per-run wall time, steps/s, compile time, budget and hardware
Each run's sweep.json names the machine(s) its attempts trained on; the report states the hardware per
run, never the machine that happens to write the report.
  runs/<algorithm>__<dataset>/   the runs themselves (the host's layout, common/experiment/)
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import time
from pathlib import Path

from common import checkpoints, stats
from common.arguments import OneLineParser
from common.checkpoints import CheckpointError
from common.datasets import load_dataset, shipped_datasets
from common.errors import DatasetError
from common.experiment import ConfigError, Interrupted
from common.experiment.configuration import validate_shared
from common.hardware import device_info
from common.logger import read_history, write_json_atomic
from common.runs import RunError, check_writable_dir

if __package__:  # imported as scripts.results (the tests)
    from scripts import results_plan as plan
    from scripts import results_report as report
else:  # run as a file: scripts/ is on the path
    import results_plan as plan
    import results_report as report

ALGORITHMS, DOMAIN_ORDER, SweepError, read_json = plan.ALGORITHMS, plan.DOMAIN_ORDER, plan.SweepError, plan.read_json
config_module, file_config, known_configs = plan.config_module, plan.file_config, plan.known_configs
d4rl_name, dataset_domain, dataset_key, run_domain, run_name = (plan.d4rl_name, plan.dataset_domain, plan.dataset_key,
                                                                plan.run_domain, plan.run_name)
MARKER_BEGIN, MARKER_END, hardware_label = report.MARKER_BEGIN, report.MARKER_END, report.hardware_label
update_doc, write_report = report.update_doc, report.write_report

EARLIER_WALL = "earlier_wall.json"  # in a run directory: wall seconds and machines of its earlier attempts
# The budget: config field -> (command-line option, its default; None = each config's own value).
BUDGET = {"num_seeds": ("--seeds", 5), "total_steps": ("--steps", 100_000), "eval_every": ("--eval-every", 10_000),
          "eval_episodes": ("--eval-episodes", None), "seed": ("--seed", 0)}
# The budget fields every run of one report shares; eval_episodes may be each config's own (its domain's protocol).
SHARED_BUDGET = ("num_seeds", "total_steps", "eval_every", "seed")


# ------------------------------------------------------------------------------------------------
# Configs and runs
# ------------------------------------------------------------------------------------------------


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


def build_config(algo: str, dataset: str, args, sets, fresh: bool = False) -> object:
    """The config file of `algo` on the dataset's domain at its settings for `dataset`, the algorithm's overrides,
    the budget (--eval-episodes only when given: else the config's own), then --set values."""
    config = file_config(algo, dataset, args.domains[dataset])
    budget = {"num_seeds": args.seeds, "total_steps": args.steps, "eval_every": args.eval_every,
              "eval_episodes": args.eval_episodes, "seed": args.seed, "checkpoint_every": args.eval_every}
    for field, value in budget.items():
        if value is not None:
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
    earlier = (read_json(run_dir / EARLIER_WALL) or {}) if config.resume else {}
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
            config = config_module(algo, args.domains[dataset_name]).__name__.replace(".", "/")
            print(f"train {algo} on {dataset_name} ({config}.py): {args.seeds} seeds x {args.steps} steps{resumed}",
                  flush=True)
            status = train_one(algo, dataset_name, dataset, args, sets, fresh=retried)
            print(f"  {status['status']} in {status['wall_seconds']:.0f} s" +
                  (f": {status['error']}" if status["status"] != "done" else ""), flush=True)


# ------------------------------------------------------------------------------------------------
# Checks: every input before training; a run is reused only with the settings it was trained with
# ------------------------------------------------------------------------------------------------


def recorded_config(run_dir: Path) -> dict | None:
    """The config a run trains with: its config.json as its latest resume changed it (history.jsonl); None when
    it has no config.json."""
    config = read_json(run_dir / "config.json")
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
    every dataset to train on loads; every --set field is in a config it is meant for (check_args checked it
    against every domain's configs, this against the configs of the datasets' domains)."""
    given = [f for f in BUDGET if f in args.given] + sorted({field for _, field, _ in sets})
    to_train, unused = set(), {(target, field) for target, field, _ in sets}
    for algo in algos:
        method = importlib.import_module(ALGORITHMS[algo].module).METHOD
        for dataset in datasets:
            config = build_config(algo, dataset, args, sets)
            unused -= {(target, field) for target, field in unused if target in (None, algo) and field in config}
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
    for target, field in sorted(unused, key=str):
        what = (f"{target}.{field}: {target}'s configs for these datasets' domains have no such field" if target else
                f"{field}: no selected algorithm's config for these datasets' domains has this field")
        raise SweepError(f"--set {what} (it would change nothing)")
    for dataset in sorted(to_train - args.loaded):  # the others were loaded to find their domain
        load_dataset(dataset)


def runs_budget(out: Path, algos: list[str], datasets: list[str], found: dict) -> dict:
    """The budget the runs under `out` were trained with (their own records), and the config overrides they have
    beyond their config file's settings; refused when the runs disagree on a budget field they share (every one but
    eval_episodes, which is one number when the runs agree on it, else {domain: episodes} ("a or b" when one
    domain's runs differ). `found`: {dataset: domain} as this sweep found it."""
    budgets, overrides, episodes = {}, {}, {}
    for algo in algos:
        for dataset in datasets:
            run_dir = out / "runs" / run_name(algo, dataset)
            config = recorded_config(run_dir)
            if config is None:
                continue
            done = read_json(run_dir / "summary.json") or {}
            budgets[run_dir] = {**{f: config.get(f) for f in BUDGET}, "total_steps": done.get("total_steps",
                                                                                              config.get("total_steps"))}
            episodes.setdefault(run_domain(done, found[dataset]), set()).add(config.get("eval_episodes"))
            own, base = settings(config), settings(file_config(algo, dataset, found[dataset]).to_dict())
            overrides.setdefault(algo, set()).update(f"{f}={own[f]!r}" for f in sorted(own) if f not in BUDGET
                                                     and own[f] != base.get(f, "<absent>"))
    if not budgets:
        raise SweepError(f"nothing to report: no run of {', '.join(algos)} on these datasets under {out / 'runs'}")
    (first, budget), *rest = budgets.items()
    for run_dir, other in rest:
        changed = [f for f in SHARED_BUDGET if other[f] != budget[f]]
        if changed:
            raise SweepError(f"the runs disagree on their budget: {first} has {shown(budget, changed)}, {run_dir} "
                             f"has {shown(other, changed)}: report them apart (one --out per budget)")
    common = set.intersection(*overrides.values())
    listed = sorted(common) + sorted(f"{a}.{o}" for a, items in overrides.items() for o in items - common)
    all_episodes = set().union(*episodes.values())
    order = sorted(episodes, key=lambda d: DOMAIN_ORDER.index(d) if d in DOMAIN_ORDER else len(DOMAIN_ORDER))
    per_domain = {d: " or ".join(str(n) for n in sorted(episodes[d], key=str)) for d in order}
    return {"num_seeds": budget["num_seeds"], "total_steps": budget["total_steps"], "eval_every": budget["eval_every"],
            "eval_episodes": all_episodes.pop() if len(all_episodes) == 1 else per_domain,
            "first_seed": budget["seed"], "overrides": listed}


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", default=",".join(ALGORITHMS), help=f"comma list of {', '.join(ALGORITHMS)}")
    parser.add_argument("--datasets", default="", help="comma list of dataset names (D4RL, shipped, minari:<id>) or "
                        "paths, of any domain: each method trains with its config of the dataset's domain "
                        "(configs/<method>_<domain>.py; default: the shipped datasets)")
    parser.add_argument("--seeds", type=int, help="seeds per (algorithm, dataset), vmapped in one process (5)")
    parser.add_argument("--seed", type=int, help="first seed (0)")
    parser.add_argument("--steps", type=int, help="gradient steps per run, every domain (100000; not the configs' "
                        "full budgets)")
    parser.add_argument("--eval-every", type=int, help="gradient steps between evaluations, every run (10000)")
    parser.add_argument("--eval-episodes", type=int, help="episodes per evaluation and seed, for every run (default: "
                        "each config's own, its domain's protocol, e.g. 100 on AntMaze)")
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
    if args.eval_episodes is not None and args.eval_episodes < 0:
        raise SweepError(f"--eval-episodes must be >= 0, got {args.eval_episodes}")
    if args.resamples < 1:
        raise SweepError(f"--resamples must be >= 1, got {args.resamples}")
    sets = parse_sets(args.set)
    for target, field, _ in sets:
        configs = [c for a in algos if target in (None, a) for c in known_configs(a)]
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
    find_domains(args, algos, datasets, sets)
    return algos, datasets, sets


def find_domains(args, algos: list[str], datasets: list[str], sets) -> None:
    """Sets args.domains, {dataset: its domain} (results_plan.dataset_domain, with a global --set env=ID), and
    args.loaded, the datasets read to find it. With --report-only a dataset that cannot be read (not on this
    machine) takes the domain its runs' summary.json record."""
    env = next((str(value) for target, field, value in sets if field == "env" and target is None), "")
    args.domains, args.loaded = {}, set()
    for dataset in datasets:
        try:
            args.domains[dataset] = dataset_domain(dataset, env)
        except DatasetError:
            summaries = [read_json(Path(args.out) / "runs" / run_name(a, dataset) / "summary.json") for a in algos]
            recorded = [run_domain(s) for s in summaries if s is not None and run_domain(s) != "other"]
            if not (args.report_only and recorded):
                raise
            args.domains[dataset] = recorded[0]
        if env or d4rl_name(dataset) is None:
            args.loaded.add(dataset)


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
        budget = runs_budget(out, algos, datasets, args.domains)
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
        payload = write_report(out, algos, datasets, budget, args.resamples, args.domains)
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
