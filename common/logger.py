"""Run outputs: metrics.csv, eval.csv, summary.json and curves.png (TensorBoard / W&B optional, off by default).

Rows are labelled by run member (seed, plus the swept hyperparameter values of a grid). On resume the
CSV files are cut back to the checkpoint's step, so no row is ever duplicated.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np


def write_text_atomic(path: Path, text: str) -> None:
    """`text` (UTF-8) written atomically (write_bytes_atomic)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """`payload` written to a temporary file and renamed into place: an interrupt or a full disk leaves the file as
    it was (the temporary file is removed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload) -> None:
    """Strict JSON (NaN and infinities become null), written atomically (write_text_atomic)."""
    write_text_atomic(path, json.dumps(strict_json(payload), indent=2, default=_json_default, allow_nan=False) + "\n")


def append_history(run_dir: Path, entry: dict) -> None:
    """One JSON line per start or resume of a run (history.jsonl); config.json keeps the original config."""
    with open(Path(run_dir) / "history.jsonl", "a") as f:
        f.write(json.dumps(strict_json(entry), default=_json_default, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.jsonl"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:  # a line cut short by a crash
            continue
    return entries


def strict_json(value):
    """A copy of `value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


EVAL_COLUMNS = ["return", "return_std", "normalized_score"]


def run_columns(member_keys: list[str], metric_names: list[str], evaluate: bool = True) -> dict[str, list[str]]:
    """The header of each CSV file a run writes: its name -> its columns."""
    columns = {"metrics.csv": ["step", *member_keys, *metric_names]}
    if evaluate:
        columns["eval.csv"] = ["step", *member_keys, *EVAL_COLUMNS]
    return columns


def csv_problem(path: Path, columns: list[str], max_step: int) -> str | None:
    """Why a run's CSV file cannot be continued after `max_step` (None: it can, or it is absent or empty): it must
    start with its header, and every row a resume keeps (see truncate_csv) must hold numbers."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="", errors="replace") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if header != columns:
            return (f"does not start with its header {','.join(columns)!r} (its first line is "
                    f"{','.join(header)[:80]!r}); restore the header or start a new run")
        for row in rows:
            if len(row) != len(columns) or not row[0].isdigit() or int(row[0]) > max_step:
                continue  # a row truncate_csv drops
            for name, cell in zip(columns, row):
                try:
                    float(cell)
                except ValueError:
                    return f"line {rows.line_num} column {name!r} holds {cell[:40]!r}, not a number"
    return None


def truncate_csv(path: Path, max_step: int) -> None:
    """Drops the rows logged after `max_step` (what a resumed run will log again)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    # a row cut short by a crash or a full disk has fewer cells than the header: dropped too
    kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= max_step]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, path)


class CsvLog:
    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        fresh = not path.exists() or path.stat().st_size == 0
        self.file = open(path, "a", newline="")
        self.writer = csv.writer(self.file)
        if fresh:
            self.writer.writerow(columns)
            self.file.flush()

    def write(self, rows):
        self.writer.writerows(rows)
        self.file.flush()

    def close(self):
        self.file.close()


class RunLogger:
    """Writes one run directory. `members` label each vmapped run: [{"seed": 0, ...swept values}, ...]."""

    def __init__(self, run_dir: Path, members: list[dict], metric_names: list[str], resume_step: int | None = None,
                 tensorboard: bool = False, wandb: bool = False, config: dict | None = None,
                 evaluate: bool = True):
        self.run_dir, self.members = Path(run_dir), members
        self.member_keys = list(members[0].keys())
        self.metric_names = list(metric_names)
        if resume_step is not None:
            truncate_csv(self.run_dir / "metrics.csv", resume_step)
            truncate_csv(self.run_dir / "eval.csv", resume_step)
        columns = run_columns(self.member_keys, self.metric_names, evaluate)
        self.metrics = CsvLog(self.run_dir / "metrics.csv", columns["metrics.csv"])
        self.evals = CsvLog(self.run_dir / "eval.csv", columns["eval.csv"]) if evaluate else None
        self.tb = self._tensorboard() if tensorboard else None
        self.wandb = self._wandb(config) if wandb else None

    def _tensorboard(self):
        from tensorboardX import SummaryWriter

        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _wandb(self, config):
        import wandb

        return wandb.init(dir=str(self.run_dir), config=config, name=self.run_dir.name)

    def log_metrics(self, step: int, metrics: dict[str, np.ndarray]) -> None:
        """metrics: name -> (members,) interval means."""
        rows = [[step, *m.values(), *(float(metrics[k][i]) for k in self.metric_names)]
                for i, m in enumerate(self.members)]
        self.metrics.write(rows)
        for i, m in enumerate(self.members):
            tag = "/".join(f"{k}={v}" for k, v in m.items())
            for k in self.metric_names:
                if self.tb is not None:
                    self.tb.add_scalar(f"{tag}/{k}", float(metrics[k][i]), step)
                if self.wandb is not None:
                    self.wandb.log({f"{tag}/{k}": float(metrics[k][i])}, step=step)

    def log_eval(self, step: int, returns: np.ndarray, scores: np.ndarray) -> None:
        """returns, scores: (members, episodes)."""
        rows = [[step, *m.values(), float(returns[i].mean()), float(returns[i].std()), float(scores[i].mean())]
                for i, m in enumerate(self.members)]
        self.evals.write(rows)
        for i, m in enumerate(self.members):
            tag = "/".join(f"{k}={v}" for k, v in m.items())
            if self.tb is not None:
                self.tb.add_scalar(f"{tag}/eval/normalized_score", float(scores[i].mean()), step)
            if self.wandb is not None:
                self.wandb.log({f"{tag}/eval/normalized_score": float(scores[i].mean())}, step=step)

    def close(self):
        self.metrics.close()
        if self.evals is not None:
            self.evals.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def read_eval(run_dir: Path) -> dict:
    """eval.csv as {"step": (T,), "score": (members, T), "return": (members, T)} (rows grouped by member)."""
    with open(Path(run_dir) / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {"step": np.zeros(0), "score": np.zeros((0, 0)), "return": np.zeros((0, 0))}
    steps = sorted({int(r["step"]) for r in rows})
    label_keys = [k for k in rows[0] if k not in ("step", "return", "return_std", "normalized_score")]
    labels = list(dict.fromkeys(tuple(r[k] for k in label_keys) for r in rows))
    score = np.full((len(labels), len(steps)), np.nan)
    ret = np.full_like(score, np.nan)
    for r in rows:
        i, t = labels.index(tuple(r[k] for k in label_keys)), steps.index(int(r["step"]))
        score[i, t], ret[i, t] = float(r["normalized_score"]), float(r["return"])
    return {"step": np.asarray(steps), "score": score, "return": ret, "labels": labels, "label_keys": label_keys}


def plot_curves(run_dir: Path, title: str) -> Path:
    """curves.png: normalised score (or raw return when the env has no reference) vs steps, per member + mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = read_eval(run_dir)
    values = data["score"]
    ylabel = "D4RL-normalised score"
    if values.size and np.all(np.isnan(values)):
        values, ylabel = data["return"], "episode return"
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(data.get("labels", [])):
        name = ", ".join(f"{k}={v}" for k, v in zip(data["label_keys"], label))
        ax.plot(data["step"], values[i], alpha=0.5, linewidth=1, label=name)
    if values.size:
        ax.plot(data["step"], np.nanmean(values, axis=0), color="black", linewidth=2, label="mean")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(run_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
