"""Evaluation overlapped with training: the next interval is dispatched before the last one is evaluated.

Bug this is for: with the overlap, the parameters evaluated (or checkpointed) at step k are read after the update
of interval k + 1 was dispatched, i.e. from a donated buffer or from the next interval's state. Then eval.csv or a
checkpoint of the overlapped run differs from the same run in the old order (evaluate, then dispatch). On this CPU-only
machine "auto" would not overlap, so the test asks for "on".
"""

from __future__ import annotations

import contextlib
import io
import json

from conftest import rollout_raw, write_hdf5
from test_bad_inputs import cli_args

from algorithms import td3_bc

STEPS, EVERY = 80, 20


def run_files(data_file, log_dir, overlap: str) -> dict:
    argv = cli_args(data_file, log_dir, run_name="run", total_steps=STEPS, eval_every=EVERY, checkpoint_every=40,
                    eval_episodes=1, num_seeds=2, overlap_evaluation=overlap)
    with contextlib.redirect_stdout(io.StringIO()):
        assert td3_bc.main(argv) == 0
    run_dir = log_dir / "run"
    files = {name: (run_dir / name).read_bytes() for name in ("eval.csv", "metrics.csv")}
    for step in (40, 80):
        files[f"step_{step}"] = (run_dir / "checkpoints" / f"step_{step}" / "state.msgpack").read_bytes()
    files["evaluations"] = json.loads((run_dir / "summary.json").read_text())["evaluations"]
    return files


def test_overlapped_evaluation_writes_the_same_files_as_the_old_order(tmp_path):
    data_file = write_hdf5(tmp_path / "hopper-tiny.hdf5", rollout_raw("Hopper-v4", 300, seed=3),
                           {"env_id": "Hopper-v4"})
    overlapped = run_files(data_file, tmp_path / "overlapped", overlap="on")
    in_order = run_files(data_file, tmp_path / "in_order", overlap="off")
    assert overlapped["evaluations"] == STEPS // EVERY
    for name in in_order:
        assert overlapped[name] == in_order[name], name


def test_auto_overlaps_only_when_evaluation_has_a_device_of_its_own():
    """On a CPU-only machine the policy's calls would queue behind the dispatched interval: "auto" keeps the old
    order there; "on" and "off" are taken as given."""
    import types

    import jax

    from common.experiment import placement

    config = types.SimpleNamespace(overlap_evaluation="auto")
    assert placement.overlaps_evaluation(config) == (jax.default_backend() != "cpu")
    assert placement.overlaps_evaluation(types.SimpleNamespace(overlap_evaluation="on"))
    assert not placement.overlaps_evaluation(types.SimpleNamespace(overlap_evaluation="off"))
