"""The report of scripts/results.py: results.md, curves.png and results.json from the run directories under --out.

Scores are grouped by domain (the one each run's summary.json says it was evaluated in): locomotion, AntMaze,
Adroit and Kitchen normalise by different protocols (AntMaze and Kitchen count successes, locomotion and Adroit
place a return between two reference policies), so each domain gets its own tables and its own aggregate (IQM and
mean over its (dataset, seed) scores, and the sum over its datasets, the per-domain total the MISA paper reports).
No number pools two domains.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from common import stats
from common.logger import read_eval, write_json_atomic, write_text_atomic

if __package__:  # imported as scripts.results_report
    from scripts.results_plan import ALGORITHMS, DOMAIN_ORDER, SweepError, dataset_key, read_json, run_domain, run_name
else:  # scripts/ on the path: results.py run as a file
    from results_plan import ALGORITHMS, DOMAIN_ORDER, SweepError, dataset_key, read_json, run_domain, run_name

ROOT = Path(__file__).resolve().parent.parent
MARKER_BEGIN, MARKER_END = "<!-- results:begin -->", "<!-- results:end -->"


# ------------------------------------------------------------------------------------------------
# The runs' records
# ------------------------------------------------------------------------------------------------


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
            summary, sweep, failed = (read_json(run_dir / n) for n in ("summary.json", "sweep.json", "failed.json"))
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
                "evaluation": summary.get("evaluation"),
                "device": summary.get("device"),
                "dataset_stats": summary.get("dataset_stats"),
                "wall_seconds": (sweep or {}).get("wall_seconds"),
                "hardware": (sweep or {}).get("hardware"),
                "curve": curve,
            }
    return runs


def domain_groups(runs: dict, algos: list[str], datasets: list[str], found: dict) -> dict[str, list[str]]:
    """{domain: its datasets} in the paper's order: a dataset's domain is the one its finished runs were evaluated
    in, else `found[dataset]` (the sweep's), else "other"."""
    groups = {}
    for dataset in datasets:
        done = [runs[(a, dataset)] for a in algos if runs.get((a, dataset), {}).get("status") == "done"]
        group = run_domain({"evaluation": done[0]["evaluation"]} if done else None, found.get(dataset))
        groups.setdefault(group, []).append(dataset)
    order = {d: i for i, d in enumerate(DOMAIN_ORDER)}
    return dict(sorted(groups.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


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


# ------------------------------------------------------------------------------------------------
# The report's parts
# ------------------------------------------------------------------------------------------------


def episodes_text(budget: dict) -> str:
    """Episodes per evaluation: one number, or one per domain when the domains' protocols differ."""
    episodes = budget["eval_episodes"]
    if isinstance(episodes, dict):
        return ", ".join(f"{n} ({domain})" for domain, n in episodes.items())
    return str(episodes)


def domain_section(group: str, members: list[str], runs: dict, algos: list[str], n_resamples: int) -> tuple:
    """The Markdown lines of one domain (its score tables and aggregates), and its aggregates for results.json."""
    labels = [ALGORITHMS[a].label for a in algos]
    names = [dataset_key(d) for d in members]  # paths shown as their file stem
    done = {(a, d): r for (a, d), r in runs.items() if r["status"] == "done" and d in members}
    final = {(ALGORITHMS[a].label, dataset_key(d)): r["final"] for (a, d), r in done.items()}
    best = {(ALGORITHMS[a].label, dataset_key(d)): r["best"] for (a, d), r in done.items()}
    agg_final = stats.aggregate(final, labels, names, n_resamples=n_resamples)
    agg_best = stats.aggregate(best, labels, names, n_resamples=n_resamples)
    for agg in (agg_final, agg_best):  # a sum over some of the domain's datasets is no domain total: n/a
        for row in agg.values():
            row["total"] = row["total"] if row["datasets"] == len(members) else math.nan
    formulas = sorted({(r.get("evaluation") or {}).get("score") or "n/a (no record)" for r in done.values()})
    lines = [
        f"**{group}** ({len(members)} dataset{'s' if len(members) != 1 else ''}; score: {'; '.join(formulas) or '–'})",
        "",
        "Final normalised score (mean ± std over seeds):",
        "",
        stats.score_table(final, labels, names),
        "Best normalised score during training (mean ± std over seeds):",
        "",
        stats.score_table(best, labels, names),
        f"Aggregate of final scores over this domain's (dataset, seed) pairs: interquartile mean and mean, 95% "
        f"stratified bootstrap CIs ({n_resamples} resamples; seeds resampled within each dataset); the sum over "
        "datasets is the domain total (– unless every dataset of the domain has a score):",
        "",
        stats.aggregate_table(agg_final),
        "Aggregate of best scores, same method:",
        "",
        stats.aggregate_table(agg_best),
    ]
    return lines, agg_final, agg_best


def cost_table(runs: dict, algos: list[str], groups: dict[str, list[str]]) -> tuple[str, list[str]]:
    """The cost table (one row per algorithm, per algorithm and domain when there are several) and the machines."""
    rows, split = [], len(groups) > 1
    for a in algos:
        for group, members in (groups.items() if split else [("", [d for m in groups.values() for d in m])]):
            done = [runs[(a, d)] for d in members if runs.get((a, d), {}).get("status") == "done"]
            if split and not done:
                continue
            sps = [r["steps_per_second"] for r in done if r["steps_per_second"]]
            walls = [r["wall_seconds"] for r in done if r["wall_seconds"] is not None]
            steps = sorted({r["total_steps"] for r in done if r["total_steps"]})
            rows.append([ALGORITHMS[a].label + (f" ({group})" if split else ""), len(done),
                         ", ".join(f"{s:,}" for s in steps) or "–", f"{np.mean(sps):.1f}" if sps else "–",
                         f"{sum(walls) / 3600:.2f}" if walls else "–", "; ".join(run_hardware(done)) or "–"])
    machines = run_hardware([r for r in runs.values() if r["status"] == "done"])
    one_machine = len(machines) == 1
    header = ["algorithm", "runs", "steps per run", "steps/s", "wall hours"] + ([] if one_machine else ["hardware"])
    table = stats.markdown_table(header, [row[:-1] if one_machine else row for row in rows])
    return table, machines


def notes(runs: dict, algos: list[str], datasets: list[str], groups: dict, total_steps: int) -> list[str]:
    """Runs that failed, are unfinished or missing; domains with too few datasets for an aggregate."""
    lines = [f"- {ALGORITHMS[a].label} on {dataset_key(d)}: {r['status']} ({r.get('error')})"
             for (a, d), r in runs.items() if r["status"] not in ("done", "unfinished")]
    lines += [unfinished_note(ALGORITHMS[a].label, dataset_key(d), r, total_steps)
              for (a, d), r in runs.items() if r["status"] == "unfinished"]
    lines += [f"- {ALGORITHMS[a].label} on {dataset_key(d)}: not run yet"
              for a in algos for d in datasets if (a, d) not in runs]
    lines += [f"- {group}: only {len(members)} dataset(s): its aggregate is meant for 3 or more"
              for group, members in groups.items() if len(members) < 3]
    return lines


# ------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------


def write_report(out: Path, algos: list[str], datasets: list[str], budget: dict,
                 n_resamples: int = stats.DEFAULT_RESAMPLES, domains: dict | None = None) -> dict:
    """Writes results.md, curves.png and results.json from the run directories; returns the JSON payload.

    `domains` ({dataset: domain}, the sweep's) groups a dataset none of whose runs has finished. The hardware is
    each run's own (its sweep.json): one machine is named in the header, several in a column of the cost table,
    since steps/s and wall time compare only within one machine.
    """
    from common.plots import plot_learning_curves

    out = Path(out)
    runs = collect(out, algos, datasets)
    groups = domain_groups(runs, algos, datasets, domains or {})
    curves, ylabel = learning_curves(runs, algos, datasets)
    plot = out / ".curves.partial.png"  # every file is renamed into place at the end
    if curves:
        plot_learning_curves(curves, plot, f"{budget['total_steps']} steps, {budget['num_seeds']} seeds (mean ± std)",
                             ylabel)
    sections, agg_final, agg_best = [], {}, {}
    for group, members in groups.items():
        lines, agg_final[group], agg_best[group] = domain_section(group, members, runs, algos, n_resamples)
        sections += lines
    costs, machines = cost_table(runs, algos, groups)
    hardware_line = (f" Hardware: {machines[0]}." if len(machines) == 1 else " Hardware: per algorithm in the cost "
                     "table (steps/s and wall time compare only within one machine)." if machines else "")
    problems = notes(runs, algos, datasets, groups, budget["total_steps"])
    lines = [
        f"Budget: {budget['total_steps']:,} gradient steps, evaluation every {budget['eval_every']:,} steps with "
        f"{episodes_text(budget)} episodes, {budget['num_seeds']} seeds per (algorithm, dataset), vmapped in one "
        "process." + hardware_line
        + (f" Config overrides: {', '.join(budget['overrides'])}." if budget.get("overrides") else "")
        + " Scores: D4RL-normalised (×100) by each domain's protocol; final = last evaluation, best = best "
        "evaluation of each seed; std over seeds with ddof 0. Aggregates are per domain, never across domains "
        "(their normalised scores are not on one scale).",
        "",
        *sections,
        "Cost: gradient steps per run, mean training steps/s (all seeds together, compile and evaluation "
        "excluded) and total wall time of the runs (evaluation included):",
        "",
        costs,
    ]
    if curves:
        lines += ["![learning curves](curves.png)", ""]
    if problems:
        lines += ["Notes:", "", *problems, ""]
    payload = {
        "budget": budget,
        "hardware": machines,
        "algorithms": {a: {"label": ALGORITHMS[a].label, "overrides": ALGORITHMS[a].overrides} for a in algos},
        "datasets": datasets,
        "domains": {d: group for group, members in groups.items() for d in members},
        "runs": [{"algorithm": a, "dataset": d, **{k: v for k, v in r.items() if k != "curve"}}
                 for (a, d), r in runs.items()],
        "aggregate_final": {group: _estimates(agg) for group, agg in agg_final.items()},
        "aggregate_best": {group: _estimates(agg) for group, agg in agg_best.items()},
        "curves": curves,
        "curve_quantity": ylabel,
        "wall_seconds_total": sum(r.get("wall_seconds") or 0.0 for r in runs.values()),
    }
    if curves:
        os.replace(plot, out / "curves.png")
    write_text_atomic(out / "results.md", "\n".join(lines))
    write_json_atomic(out / "results.json", _jsonable(payload))
    return payload


def _estimates(agg: dict) -> dict:
    return {label: {k: (v._asdict() if isinstance(v, stats.Estimate) else v) for k, v in r.items()}
            for label, r in agg.items()}


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
