"""TD3+BC: losses against numpy, vmap/determinism invariants, the CLI end to end (learning: tests/test_learning.py)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, rollout_raw, write_hdf5

from algorithms import td3_bc
from common import datasets
from configs import td3_bc_mujoco


def tiny_config(**overrides):
    config = td3_bc_mujoco.get_config()
    config.update(dict(total_steps=40, eval_every=20, batch_size=32, hidden_dims=(32, 32), eval_episodes=0))
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def hopper(hopper_random_file):
    return datasets.load_dataset(str(hopper_random_file))


def numpy_mlp(params, x, final_tanh=False):
    layers = params["params"]["MLP_0"]
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    for i, name in enumerate(names):
        dense = layers[name]["Dense_0"]
        x = x @ np.asarray(dense["kernel"]) + np.asarray(dense["bias"])
        if i < len(names) - 1:
            x = np.maximum(x, 0)
    return np.tanh(x) if final_tanh else x


def numpy_critics(params, obs, act):
    layers = params["params"]["VmapCritic_0"]["MLP_0"]
    names = sorted(layers, key=lambda n: int(n.split("_")[1]))
    out = []
    for c in range(2):
        x = np.concatenate([obs, act], -1)
        for i, name in enumerate(names):
            dense = layers[name]["Dense_0"]
            x = x @ np.asarray(dense["kernel"][c]) + np.asarray(dense["bias"][c])
            if i < len(names) - 1:
                x = np.maximum(x, 0)
        out.append(x[:, 0])
    return np.stack(out)


def test_losses_match_numpy_on_a_fixed_batch(hopper):
    config = tiny_config()
    agent = td3_bc.make_agent(config, hopper)
    state = agent.init(jax.random.PRNGKey(0), agent.hparams)
    data = td3_bc.prepare_data(hopper, config)
    dones = np.asarray(data.dones)
    rows = np.concatenate([np.flatnonzero(dones == 1)[:8], np.flatnonzero(dones == 0)[:8]])  # both target branches
    batch = jax.tree.map(lambda x: np.asarray(x)[rows], data)
    assert batch.dones.sum() == 8
    noise = np.clip(0.2 * np.random.default_rng(0).normal(size=batch.actions.shape), -0.5, 0.5).astype(np.float32)

    # critic: y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + eps)); loss = sum_i mean (Q_i - y)^2
    next_act = np.clip(numpy_mlp(state.actor_target, batch.next_observations, final_tanh=True) + noise, -1, 1)
    y = batch.rewards + 0.99 * (1 - batch.dones) * numpy_critics(state.critic_target, batch.next_observations,
                                                                 next_act).min(0)
    q = numpy_critics(state.critic.params, batch.observations, batch.actions)
    expected_critic = ((q - y) ** 2).mean(axis=1).sum()
    critic_apply = lambda p, o, a: td3_bc.CriticEnsemble(2, (32, 32), init_style="torch").apply(p, o, a)
    target = td3_bc.td_target(lambda a: critic_apply(state.critic_target, batch.next_observations, a),
                              jnp.asarray(next_act), batch.rewards, batch.dones, 0.99)
    got_critic = td3_bc.critic_td_loss(critic_apply(state.critic.params, batch.observations, batch.actions), target)
    np.testing.assert_allclose(got_critic, expected_critic, rtol=1e-4)

    # actor: -alpha / mean|Q1| * mean Q1(s, pi(s)) + mean (pi(s) - a)^2
    pi = numpy_mlp(state.actor.params, batch.observations, final_tanh=True)
    q1 = numpy_critics(state.critic.params, batch.observations, pi)[0]
    expected_actor = -2.5 / np.abs(q1).mean() * q1.mean() + ((pi - batch.actions) ** 2).mean()
    got_actor, (bc, lmbda) = td3_bc.actor_td3_bc_loss(jnp.asarray(q1), jnp.asarray(pi), batch.actions, 2.5)
    np.testing.assert_allclose(got_actor, expected_actor, rtol=1e-4)
    np.testing.assert_allclose(lmbda, 2.5 / np.abs(q1).mean(), rtol=1e-5)
    bc_only, _ = td3_bc.actor_td3_bc_loss(jnp.asarray(q1), jnp.asarray(pi), batch.actions, 2.5, bc_only=True)
    np.testing.assert_allclose(bc_only, ((pi - batch.actions) ** 2).mean(), rtol=1e-5)


def test_vmapped_seeds_equal_separate_runs_and_runs_repeat(hopper):
    train = td3_bc.make_train(tiny_config(), hopper)
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
    batched_state, batched_metrics = jax.jit(jax.vmap(train))(keys)
    for i in range(2):
        state, metrics = jax.jit(train)(keys[i])
        for a, b in zip(jax.tree.leaves(state.actor.params), jax.tree.leaves(batched_state.actor.params)):
            np.testing.assert_allclose(a, b[i], rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["critic_loss"], batched_metrics["critic_loss"][i], rtol=2e-5)
    again, _ = jax.jit(train)(keys[0])
    first, _ = jax.jit(train)(keys[0])
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(first)):
        np.testing.assert_array_equal(a, b)
    assert int(first.step) == 40


def test_cli_end_to_end_writes_every_output(hopper_random_file, tmp_path):
    argv = ["td3_bc", f"--config={ROOT}/configs/td3_bc_mujoco.py", f"--config.dataset={hopper_random_file}",
            "--config.num_seeds=3", "--config.total_steps=200", "--config.eval_every=100",
            "--config.eval_episodes=2", "--config.batch_size=64", f"--config.log_dir={tmp_path}",
            "--config.run_name=e2e", "--config.progress=False"]
    assert td3_bc.main(argv) == 0
    run = tmp_path / "e2e"
    for name in ("config.json", "metrics.csv", "eval.csv", "summary.json", "curves.png"):
        assert (run / name).stat().st_size > 0, name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("algorithm", "dataset", "env", "num_seeds", "total_steps", "normalized_score_final",
                "normalized_score_best", "normalized_score_final_mean", "normalized_score_final_std",
                "steps_per_second", "compile_seconds", "dataset_stats"):
        assert key in summary, key
    assert summary["num_seeds"] == 3 and len(summary["normalized_score_final"]) == 3
    assert summary["env"] == "Hopper-v4"
    assert summary["dataset_stats"]["obs_dim"] == 11 and summary["dataset_stats"]["act_dim"] == 3
    eval_rows = (run / "eval.csv").read_text().strip().splitlines()
    assert len(eval_rows) == 1 + 2 * 3  # header + 2 evaluations x 3 seeds
    assert (run / "checkpoints" / "LATEST").exists()


def test_cli_refuses_a_malformed_file_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.hdf5"
    raw = rollout_raw("Hopper-v4", 300)
    raw["actions"][7, 1] = np.nan
    write_hdf5(bad, raw)
    argv = ["td3_bc", f"--config.dataset={bad}", f"--config.log_dir={tmp_path / 'runs'}", "--config.progress=False"]
    assert td3_bc.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "non-finite value in 'actions'" in err
    assert not (tmp_path / "runs").exists()
