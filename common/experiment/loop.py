"""The interval loop: train an interval, evaluate, checkpoint when due, and stop cleanly when a signal came.

`train` below is the loop; the functions after it are its steps, in the order it calls them.
"""

from __future__ import annotations

import threading
import time

import jax
import numpy as np

from common import checkpoints
from common.experiment.divergence import check_finite
from common.experiment.errors import Diverged, Interrupted, WriteFailed
from common.experiment.job import Job, checkpoint_meta
from common.experiment.placement import evaluation_device, overlaps_evaluation, to_host
from common.experiment.preemption import Preemption
from common.experiment.program import Program
from common.experiment.progress import Progress


def train(job: Job, program: Program, progress: Progress, preemption: Preemption) -> None:
    """Every remaining interval: train, evaluate, checkpoint when due; stops cleanly when a signal came.

    With overlaps_evaluation(config) the next interval is dispatched before the one just finished is evaluated, so
    that the devices train while the host steps the evaluation envs; the same parameters are evaluated with the
    same seeds, so every file is the same as without. A stop request that arrives while an interval is under way
    (dispatched) lets it finish: it is evaluated, checkpointed, and the run stops there.
    """
    config = job.config
    overlap = overlaps_evaluation(config)
    running = None  # the next interval, dispatched before this one's evaluation (overlap only)
    while progress.step < config.total_steps:
        finish_interval(job, progress, running or Dispatched(program, progress.state))
        preemption.check()
        stop_requested = preemption.requested()  # (a collective with several processes: every one asks)
        params = evaluation_params(job, program, progress)
        running, host_state = None, None
        if overlap and progress.step < config.total_steps and not stop_requested:
            if checkpoint_due(config, progress.step):
                host_state = to_host(progress.state)  # before the next interval's update is donated the state
            running = Dispatched(program, progress.state, watch=True)
        evaluate(job, progress, params)
        preemption.check()
        if checkpoint_due(config, progress.step):
            save_checkpoint(job, progress, host_state)
        if preemption.requested() and running is None and progress.step < config.total_steps:
            stop(job, progress, preemption)
        show_progress(progress, config)


def stop(job: Job, progress: Progress, preemption: Preemption) -> None:
    """A signal asked the run to stop: a checkpoint of the interval just finished, then Interrupted saying so."""
    if progress.last_checkpoint != progress.step:
        save_checkpoint(job, progress)
    raise Interrupted(preemption.signum, f"stopped after step {progress.step} of {job.config.total_steps} and "
                                         f"saved a checkpoint there; continue with --config.resume=True")


def show_progress(progress: Progress, config) -> None:
    """The progress bar moves one interval and shows the members' mean score of the latest evaluation."""
    if progress.bar is None:
        return
    progress.bar.update(config.eval_every)
    if progress.eval_history:
        score = np.asarray(progress.eval_history[-1]["score"], np.float64)
        if np.isfinite(score).any():
            progress.bar.set_postfix(score=f"{np.nanmean(score):.1f}")


class Dispatched:
    """One interval's update, dispatched (JAX runs it asynchronously): its outputs (state, metrics, params_finite)
    and the seconds from its dispatch to its results being ready. With `watch` (an evaluation runs meanwhile) a
    thread waits for the results and notes when they are ready, so that the evaluation is not counted as training;
    otherwise the interval ends when its results reach the host."""

    def __init__(self, program: Program, state, watch: bool = False):
        self.started = time.perf_counter()
        self.outputs = program.update(state, program.data)  # donates `state`
        self.ready_at = None
        # Not a daemon: at exit Python joins it (it ends with the interval, which XLA finishes anyway) instead of
        # killing it inside JAX's wait, which aborts the process.
        self._watcher = threading.Thread(target=self._wait) if watch else None
        if self._watcher is not None:
            self._watcher.start()

    def _wait(self) -> None:
        jax.block_until_ready(self.outputs)
        self.ready_at = time.perf_counter()

    def seconds(self) -> float:
        if self._watcher is None:
            return time.perf_counter() - self.started
        self._watcher.join()
        return self.ready_at - self.started


def finish_interval(job: Job, progress: Progress, dispatched: Dispatched) -> None:
    """Waits for a dispatched interval (`eval_every` updates of every member): its state becomes progress.state;
    Diverged on the first non-finite value; the metrics are logged."""
    config = job.config
    state, metrics, params_finite = dispatched.outputs
    metrics, params_finite = to_host((metrics, params_finite))
    progress.train_seconds += dispatched.seconds()
    progress.state = state
    progress.step += config.eval_every
    try:
        check_finite(metrics, params_finite, job.members, progress.step, config.eval_every)
    except Diverged as e:
        if progress.last_checkpoint is None:
            raise Diverged(f"{e}; no checkpoint yet: start again with --config.overwrite=True") from None
        raise Diverged(f"{e}; last checkpoint: step {progress.last_checkpoint}") from None
    if progress.logger is not None:
        progress.logger.log_metrics(progress.step,
                                    {k: v[: len(job.members)].mean(axis=1) for k, v in metrics.items()})


def evaluation_params(job: Job, program: Program, progress: Progress):
    """A copy of the members' policy parameters on the evaluation device (process 0; None elsewhere or with no
    evaluation): taken before the next interval is dispatched, since that call donates the state's buffers."""
    if not job.config.eval_episodes:
        return None
    params = program.policy_params(progress.state)
    if jax.process_count() > 1:
        params = to_host(params)  # a collective: every process takes part
    if job.evaluator is None:
        return None
    return jax.device_put(params, evaluation_device(job.config), may_alias=False)


def evaluate(job: Job, progress: Progress, params) -> None:
    """Evaluate: every episode of every member at once (process 0); scores join the evaluation history."""
    if params is None:
        return
    returns = job.evaluator(params, progress.step // job.config.eval_every)
    scores = job.evaluator.normalized(returns)
    progress.logger.log_eval(progress.step, returns, scores)
    progress.eval_history.append({"step": progress.step, "score": scores.mean(axis=1).tolist(),
                                  "return": returns.mean(axis=1).tolist()})


def checkpoint_due(config, step: int) -> bool:
    """At the end, and at the first interval end at or past each multiple of checkpoint_every."""
    every = config.checkpoint_every
    return step == config.total_steps or bool(every and step // every > (step - config.eval_every) // every)


def save_checkpoint(job: Job, progress: Progress, host_state=None) -> None:
    """Checkpoint: the state after `progress.step` updates (`host_state`: that state already fetched to the host),
    the evaluation history and the run's identity."""
    host_state = to_host(progress.state) if host_state is None else host_state
    if job.is_main:
        meta = {**checkpoint_meta(job), "identity": job.identity(), "eval_history": progress.eval_history}
        try:
            checkpoints.save(job.run_dir, progress.step, host_state, meta)
        except OSError as e:
            raise WriteFailed(f"cannot write checkpoint step_{progress.step} in {job.run_dir / 'checkpoints'} "
                              f"({e.strerror or e}); {progress.how_to_continue()}") from None
    progress.last_checkpoint = progress.step
