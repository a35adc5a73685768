"""`run`: one training job as its named steps,

    prepare -> place -> restore -> compile -> open logs -> train (the loop) -> summarise.

It owns the signal handling around them: during set-up a signal stops the run at the end of the step under way
(an exception raised inside XLA's compilation leaves the process to crash at exit), and says nothing was lost;
during training it stops after the interval under way, with a checkpoint of it.
"""

from __future__ import annotations

import jax

from common.agent import Method
from common.datasets import Dataset
from common.experiment.errors import Interrupted, WriteFailed
from common.experiment.job import Job, prepare
from common.experiment.loop import train
from common.experiment.preemption import Preemption
from common.experiment.program import compile_interval, place
from common.experiment.progress import Progress, open_logs, restore
from common.experiment.summary import summarise


def run(method: Method, config, dataset: Dataset | None = None) -> dict:
    """Trains the config's members with `method`; returns the summary dict (with its run directory).

    Raises ConfigError / DatasetError / CheckpointError (bad input), Diverged, WriteFailed, or Interrupted
    (SIGINT / SIGTERM; a checkpoint of the last completed interval is on disk when its detail says so).
    """
    with Preemption() as preemption, jax.default_matmul_precision(config.get("matmul_precision", "highest")):
        try:
            with preemption.shielded():
                job = prepare(method, config, dataset)
        except Interrupted as e:  # a second signal, not waiting for the set-up step under way
            e.detail = "stopped before the run started; nothing was written: rerun the same command"
            raise
        progress = None
        try:
            with preemption.shielded():  # a signal stops the set-up between its steps, never inside a JAX call
                preemption.check()
                program, state = place(job)
                preemption.check()
                progress = restore(job, program, state)
                preemption.check()
                compile_interval(job, program, progress.state)
                preemption.check()
                open_logs(job, program, progress)
                preemption.check()
            with preemption.deferred():
                train(job, program, progress, preemption)
                progress.close()
                return summarise(job, program, progress)
        except Interrupted as e:
            if not e.detail:
                e.detail = _where_interrupted(job, progress, second=preemption.signum is not None)
            raise
        except OSError as e:
            where = e.filename or job.run_dir
            continuation = progress.how_to_continue() if progress is not None else "rerun the same command"
            raise WriteFailed(f"cannot write {where} ({e.strerror or e}); {continuation}") from None
        finally:
            if progress is not None:
                progress.close()
            job.close()


def _where_interrupted(job: Job, progress: Progress | None, second: bool) -> str:
    """The detail of an interrupt that did not wait for the end of an interval (before training, or a second
    signal)."""
    if not second and (progress is None or progress.step == progress.start_step):
        if job.start == "checkpoint":
            return "stopped before training resumed; the checkpoint is unchanged: continue with --config.resume=True"
        return "stopped before the first training step; nothing to lose: rerun the same command"
    return (f"stopped at once{' (second signal)' if second else ''}, after step {progress.step}; "
            f"{progress.how_to_continue()}")
