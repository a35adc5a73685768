"""The summary: summary.json and curves.png at the end of a run, and the lines the command line prints."""

from __future__ import annotations

import jax
import numpy as np

from common.experiment.job import Job
from common.experiment.program import Program
from common.experiment.progress import Progress
from common.logger import plot_curves, write_json_atomic


def summarise(job: Job, program: Program, progress: Progress) -> dict:
    """Summarise: summary.json and curves.png (process 0); returns the summary with its run directory."""
    config = job.config
    trained = config.total_steps - progress.start_step
    steps_per_second = trained / max(progress.train_seconds, 1e-9) if trained else None
    summary = make_summary(job.algorithm, config, job.env_id, job.stats, job.members, progress.eval_history,
                           steps_per_second, program.compile_seconds)
    summary["evaluation"] = job.setup.describe() if job.setup is not None else None
    summary["run_dir"] = str(job.run_dir)
    if not job.is_main:
        return summary
    write_json_atomic(job.run_dir / "summary.json", {k: v for k, v in summary.items() if k != "run_dir"})
    if progress.eval_history:
        plot_curves(job.run_dir, f"{job.algorithm} on {config.dataset}")
    return summary


def make_summary(algorithm, config, env_id, stats, members, eval_history, steps_per_second, compile_seconds):
    """The summary.json fields; a value that cannot be computed (no evaluation, no reference score) is None."""
    scores = np.asarray([e["score"] for e in eval_history], np.float64).reshape(len(eval_history), len(members))
    final = scores[-1] if len(scores) else np.full(len(members), np.nan)
    best = np.nanmax(scores, axis=0) if len(scores) and not np.all(np.isnan(scores)) else final
    return {
        "algorithm": algorithm,
        "dataset": config.dataset,
        "env": env_id,
        "num_seeds": config.num_seeds,
        "num_members": len(members),
        "members": members,
        "total_steps": config.total_steps,
        "evaluations": len(eval_history),
        "normalized_score_final": _or_none(final),
        "normalized_score_best": _or_none(best),
        "normalized_score_final_mean": _or_none(np.mean(final)),
        "normalized_score_final_std": _or_none(np.std(final)),
        "return_final": eval_history[-1]["return"] if eval_history else [],
        "steps_per_second": None if steps_per_second is None else float(steps_per_second),
        "compile_seconds": float(compile_seconds),
        "dataset_stats": stats,
        "device": str(jax.devices()[0].device_kind),
    }


def _or_none(values):
    """Floats with NaN as None (JSON null): a score that does not exist is not reported as a number."""
    values = np.asarray(values, np.float64)
    if values.ndim == 0:
        return float(values) if np.isfinite(values) else None
    return [float(v) if np.isfinite(v) else None for v in values]


def result_line(algorithm: str, summary: dict) -> str:
    """One line: the final normalised score, or plainly why there is none."""
    head = f"{algorithm} on {summary['dataset']}"
    speed = summary["steps_per_second"]
    tail = f"{speed:.0f} steps/s (all seeds together)" if speed is not None else "no step left to train"
    seeds = f"over {summary['num_seeds']} seed(s)"
    if not summary["evaluations"]:
        return f"{head}: trained {summary['total_steps']} steps, no evaluation (eval_episodes=0); {tail}"
    if summary["normalized_score_final_mean"] is None:
        returns = np.asarray(summary["return_final"], np.float64)
        return (f"{head}: final return {returns.mean():.1f} ± {returns.std():.1f} {seeds} (no normalised score: "
                f"env '{summary['env']}' has no reference returns); {tail}")
    return (f"{head}: final normalised score {summary['normalized_score_final_mean']:.1f} "
            f"± {summary['normalized_score_final_std']:.1f} {seeds}; {tail}")


def sweep_table(summary) -> str:
    """Final normalised score per swept combination (mean ± std over its seeds), as a Markdown table."""
    swept = [k for k in summary["members"][0] if k != "seed"]
    groups: dict[tuple, list[float]] = {}
    for member, score in zip(summary["members"], summary["normalized_score_final"]):
        groups.setdefault(tuple(member[k] for k in swept), []).append(np.nan if score is None else score)
    lines = ["| " + " | ".join(swept) + " | final score | seeds |", "|" + "---|" * (len(swept) + 2)]
    for values, scores in groups.items():
        cells = " | ".join(f"{v:g}" for v in values)
        score = f"{np.mean(scores):.1f} ± {np.std(scores):.1f}" if np.isfinite(scores).all() else "n/a"
        lines.append(f"| {cells} | {score} | {len(scores)} |")
    return "\n".join(lines)
