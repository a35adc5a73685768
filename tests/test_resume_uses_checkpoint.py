"""A resume continues from what the checkpoint holds (not from a fresh start that happens to repeat the same numbers).

The kill -9 test shows resume = uninterrupted, bit for bit; a resume that silently ignored the checkpoint and
retrained from step 0 with the same seed would pass it too. Here the checkpoint is perturbed before resuming: the
resumed run must end differently, must log each step once, and each seed must have its own numbers.
"""

from __future__ import annotations

import shutil

import flax.serialization
import numpy as np

from algorithms import td3_bc
from common import experiment
from common.datasets import from_raw
from configs import td3_bc_mujoco

STEPS, EVERY = 40, 20


def tiny_dataset(rows=400, seed=0):
    rng = np.random.default_rng(seed)
    terminals = np.zeros(rows, bool)
    terminals[49::50] = True
    raw = dict(observations=rng.normal(size=(rows, 5)).astype(np.float32),
               actions=rng.uniform(-1, 1, (rows, 2)).astype(np.float32),
               rewards=rng.normal(size=rows).astype(np.float32), terminals=terminals)
    return from_raw(raw, "tiny", None, "synthetic")


def run(log_dir, resume=False):
    config = td3_bc_mujoco.get_config()
    config.update(dict(dataset="tiny", total_steps=STEPS, eval_every=EVERY, checkpoint_every=EVERY, batch_size=32,
                       hidden_dims=(32, 32), eval_episodes=0, num_seeds=2, log_dir=str(log_dir), run_name="run",
                       progress=False, resume=resume))
    return experiment.run(td3_bc.METHOD, config, dataset=tiny_dataset())


def rewind_to_first_checkpoint(whole, copy):
    """A copy of a finished run as it was when it was stopped right after its first checkpoint."""
    shutil.copytree(whole, copy)
    shutil.rmtree(copy / "checkpoints" / f"step_{STEPS}")
    (copy / "checkpoints" / "LATEST").write_text(f"step_{EVERY}\n")
    (copy / "summary.json").unlink(missing_ok=True)
    return copy


def final_state(run_dir):
    return (run_dir / "checkpoints" / f"step_{STEPS}" / "state.msgpack").read_bytes()


def test_resume_continues_from_the_checkpoint_it_reads(tmp_path):
    run(tmp_path / "whole")
    whole = tmp_path / "whole" / "run"
    metric_rows = (whole / "metrics.csv").read_text().strip().splitlines()[1:]
    steps = [row.split(",")[0] for row in metric_rows]
    assert len(steps) == 2 * STEPS // EVERY  # a row per seed and interval
    by_seed = {}
    for row in metric_rows:
        by_seed.setdefault(row.split(",")[1], []).append(row.split(",")[2:])
    assert len(by_seed) == 2 and by_seed["0"] != by_seed["1"]  # each seed draws its own numbers

    plain = rewind_to_first_checkpoint(whole, tmp_path / "plain" / "run")
    run(tmp_path / "plain", resume=True)
    assert final_state(plain) == final_state(whole)
    assert (plain / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()  # each step logged once

    perturbed = rewind_to_first_checkpoint(whole, tmp_path / "perturbed" / "run")
    path = perturbed / "checkpoints" / f"step_{EVERY}" / "state.msgpack"
    state = flax.serialization.msgpack_restore(path.read_bytes())
    state["actor"]["params"] = _shift(state["actor"]["params"], 0.05)
    path.write_bytes(flax.serialization.msgpack_serialize(state))
    run(tmp_path / "perturbed", resume=True)
    resumed = flax.serialization.msgpack_restore(final_state(perturbed))
    expected = flax.serialization.msgpack_restore(final_state(whole))
    assert int(resumed["step"][0]) == STEPS
    gap = max(np.max(np.abs(a - b)) for a, b in zip(_leaves(resumed["actor"]["params"]),
                                                     _leaves(expected["actor"]["params"])))
    assert gap > 0.01, "the resumed run ignored the checkpoint it was given"


def _shift(tree, delta):
    if isinstance(tree, dict):
        return {k: _shift(v, delta) for k, v in tree.items()}
    return tree + np.asarray(delta, tree.dtype)


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k])]
    return [tree]
