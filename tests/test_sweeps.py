"""Seed x hyperparameter grids: one batched program, sharded over (forced) host devices, equal to separate runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from algorithms import td3_bc
from common import datasets, experiment
from common.experiment.members import build_members
from configs import td3_bc_mujoco

TINY = ["--config.total_steps=40", "--config.eval_every=20", "--config.batch_size=32",
        "--config.hidden_dims=(32, 32)", "--config.eval_episodes=0", "--config.progress=False"]


def with_defaults(args, defaults=TINY):
    """`defaults` for the fields `args` does not set, then `args` (a field may be given only once)."""
    given = {a.split("=", 1)[0] for a in args}
    return [d for d in defaults if d.split("=", 1)[0] not in given] + list(args)


def run_cli(args, devices: int, tmp_path):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "algorithms" / "td3_bc.py"), f"--config.log_dir={tmp_path}",
           *with_defaults(args)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def checkpoint_actor(run_dir):
    latest = (run_dir / "checkpoints" / "LATEST").read_text().strip()
    raw = flax.serialization.msgpack_restore((run_dir / "checkpoints" / latest / "state.msgpack").read_bytes())
    return jax.tree.leaves(raw["actor"]["params"])


def separate_run(dataset, seed, alpha):
    config = td3_bc_mujoco.get_config()
    config.update(dict(total_steps=40, eval_every=20, batch_size=32, hidden_dims=(32, 32), eval_episodes=0))
    train = td3_bc.make_train(config, dataset)
    hparams = {**td3_bc.make_agent(config, dataset).hparams, "alpha": jnp.float32(alpha)}
    state, _ = jax.jit(train)(jax.random.PRNGKey(seed), hparams)
    return jax.tree.leaves(state.actor.params)


def test_grid_on_four_devices_equals_the_four_runs_one_by_one(hopper_random_file, tmp_path):
    result = run_cli([f"--config.dataset={hopper_random_file}", "--config.num_seeds=2", "--config.sweep.alpha=1,4",
                      "--config.run_name=grid"], 4, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| alpha | final score | seeds |" in result.stdout
    summary = json.loads((tmp_path / "grid" / "summary.json").read_text())
    assert summary["members"] == [{"seed": 0, "alpha": 1.0}, {"seed": 1, "alpha": 1.0},
                                  {"seed": 0, "alpha": 4.0}, {"seed": 1, "alpha": 4.0}]
    grid = checkpoint_actor(tmp_path / "grid")
    dataset = datasets.load_dataset(str(hopper_random_file))
    for i, member in enumerate(summary["members"]):
        alone = separate_run(dataset, member["seed"], member["alpha"])
        for a, b in zip(alone, grid):
            np.testing.assert_allclose(a, b[i], rtol=2e-5, atol=1e-6)


def test_uneven_grid_is_padded_and_only_real_members_reported(hopper_random_file, tmp_path):
    result = run_cli([f"--config.dataset={hopper_random_file}", "--config.num_seeds=3", "--config.run_name=uneven"],
                     4, tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "uneven" / "summary.json").read_text())
    assert [m["seed"] for m in summary["members"]] == [0, 1, 2]
    rows = (tmp_path / "uneven" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * 3


def test_sweep_parsing_and_refusals():
    config = td3_bc_mujoco.get_config()
    config.sweep.alpha = "1, 2.5,5"
    config.sweep.tau = "0.005,0.01"
    config.num_seeds = 2
    members, hparams = build_members(config, {"alpha": 2.5, "tau": 0.005, "discount": 0.99})
    assert len(members) == 3 * 2 * 2
    assert members[0] == {"seed": 0, "alpha": 1.0, "tau": 0.005}
    np.testing.assert_allclose(hparams["discount"], np.full(12, 0.99))
    np.testing.assert_allclose(hparams["alpha"][:4], [1.0, 1.0, 1.0, 1.0])
    config.sweep.actor_lr = "1e-4,3e-4"
    with pytest.raises(experiment.ConfigError, match="sweep.actor_lr: this field changes the compiled program"):
        build_members(config, {"alpha": 2.5, "tau": 0.005})
    config.sweep.actor_lr = ""
    config.sweep.alpha = "1,x"
    with pytest.raises(experiment.ConfigError, match="comma-separated numbers"):
        build_members(config, {"alpha": 2.5, "tau": 0.005})
