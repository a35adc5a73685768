"""Progress: where training stands (the state after `step` updates, the evaluations so far, the logs).

`restore` starts it: from step 0, or on resume from the latest checkpoint once its identity (dataset content
and the config fields that change the computation) matches the run's. `open_logs` opens metrics.csv and
eval.csv (cut back to the restored step) and the progress bar.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax

from common import checkpoints
from common.experiment.configuration import resume_changes
from common.experiment.errors import ConfigError
from common.experiment.job import Job, checkpoint_meta
from common.experiment.placement import put_global
from common.experiment.program import Program
from common.logger import RunLogger, append_history, csv_problem, read_history, run_columns, write_json_atomic


@dataclass
class Progress:
    """Where training stands: the state after `step` updates and everything logged up to it."""

    state: Any
    step: int
    eval_history: list
    last_checkpoint: int | None  # step of the newest checkpoint on disk; None: none yet
    start_step: int = 0
    train_seconds: float = 0.0
    logger: RunLogger | None = None
    bar: Any = None

    def close(self) -> None:
        """Closes the logs and the progress bar (once; a second call does nothing)."""
        if self.logger is not None:
            self.logger.close()
        if self.bar is not None:
            self.bar.close()
        self.logger = self.bar = None

    def how_to_continue(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint yet: rerun with --config.resume=True to start again from step 0"
        return f"last checkpoint: step {self.last_checkpoint}; continue with --config.resume=True"


def restore(job: Job, program: Program, state) -> Progress:
    """Restore: a resume continues from the latest checkpoint once its identity matches (dataset content and
    computation-changing config); config.json keeps the original config and history.jsonl gets one line."""
    config = job.config
    progress = Progress(state, 0, [], None)
    changed = []
    if job.start == "checkpoint":
        path = checkpoints.latest(job.run_dir)
        host_state, meta = checkpoints.restore(path, state, checkpoint_meta(job))
        changed = checkpoints.check_identity(f"checkpoint {path}", meta.get("identity", {}), job.identity(),
                                             resume_changes(config))
        progress.step = progress.last_checkpoint = progress.start_step = int(meta["step"])
        progress.eval_history = meta["eval_history"]
        if progress.step > config.total_steps or (
                progress.step == config.total_steps and (job.run_dir / "summary.json").exists()):
            raise ConfigError(f"nothing to resume: the checkpoint is at step {progress.step}, total_steps is "
                              f"{config.total_steps}")
        progress.state = (put_global(host_state, program.sharding) if program.sharding is not None
                          else jax.device_put(host_state))
    elif job.start == "step 0":
        started = [e for e in read_history(job.run_dir) if e.get("event") == "start"]
        recorded = {"dataset_sha256": started[0].get("dataset_sha256") if started else None,
                    "config": checkpoints.config_identity(_read_config(job.run_dir))}
        changed = checkpoints.check_identity(f"the run in {job.run_dir}", recorded, job.identity(),
                                             resume_changes(config))
    if job.is_main and job.start != "new":
        check_logs(job, program, progress.step)
    if job.is_main:
        entry = {"event": "start" if job.start == "new" else "resume", "time": _now(), "step": progress.step,
                 "pid": os.getpid(), "dataset_sha256": job.fingerprint}
        if job.start == "new":
            write_json_atomic(job.run_dir / "config.json", config.to_dict())
        else:
            entry.update(changed=changed, config=config.to_dict())
        append_history(job.run_dir, entry)
    return progress


def check_logs(job: Job, program: Program, step: int) -> None:
    """A resume continues metrics.csv and eval.csv: each must be as the logger writes it, up to `step` (a
    hand-edited file would otherwise fail only after training); refused before anything is written."""
    columns = run_columns(list(job.members[0]), program.metric_names, bool(job.config.eval_episodes))
    for name, names in columns.items():
        problem = csv_problem(job.run_dir / name, names, step)
        if problem:
            raise ConfigError(f"cannot resume {job.run_dir}: {name} {problem}")


def _read_config(run_dir: Path) -> dict:

    try:
        return json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot resume {run_dir}: its config.json is unreadable ({str(e).splitlines()[0]})") \
            from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def open_logs(job: Job, program: Program, progress: Progress) -> None:
    """metrics.csv / eval.csv (cut back to the restored step on resume) and the progress bar, on process 0."""
    if not job.is_main:
        return
    config = job.config
    progress.logger = RunLogger(job.run_dir, job.members, program.metric_names,
                                None if job.start == "new" else progress.step, config.tensorboard, config.wandb,
                                config.to_dict(), evaluate=bool(config.eval_episodes))
    progress.bar = _progress(config, progress.step)


def _progress(config, start_step):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
