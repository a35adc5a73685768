"""MISA end to end on a tiny synthetic dataset: every flag trains, seeds batch exactly, configs load."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import misa
from common.datasets import from_raw
from common.networks import TanhGaussianPolicy

CONFIG_FILES = ("misa_mujoco", "misa_antmaze", "misa_kitchen", "misa_adroit")


def tiny_dataset(rows=300, obs_dim=5, act_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    terminals = np.zeros(rows, bool)
    terminals[50::60] = True
    raw = dict(observations=rng.normal(size=(rows, obs_dim)).astype(np.float32),
               actions=rng.uniform(-1, 1, (rows, act_dim)).astype(np.float32),
               rewards=rng.normal(size=rows).astype(np.float32), terminals=terminals)
    return from_raw(raw, "tiny", None, "synthetic")


def tiny_config(**overrides):
    config = importlib.import_module("configs.misa_mujoco").get_config()
    config.update(dict(total_steps=4, eval_every=2, batch_size=16, n_actions=4, hmc_num_samples=3, hmc_burn_in=2,
                       hidden_dims=(32, 32)))
    config.update(overrides)
    misa.validate_config(config)
    return config


@pytest.fixture(scope="module")
def dataset():
    return tiny_dataset()


FLAG_SETS = {  # every flag of the config, in two programs (each compile costs seconds)
    "dv_lagrange_add_positive_layer_norm": dict(bound="dv", lagrange=True, add_positive=True, layer_norm=True,
                                                hmc_persist_step_size=True, reward_transform="antmaze"),
    "nwj_fixed_alpha_biased_gradient": dict(bound="nwj", fixed_alpha=True, unbiased_grad=False,
                                            reward_transform="minmax"),
}


@pytest.mark.parametrize("name", list(FLAG_SETS))
def test_every_flag_trains_with_finite_metrics(dataset, name):
    flags = FLAG_SETS[name]
    state, metrics = jax.jit(misa.make_train(tiny_config(**flags), dataset))(jax.random.PRNGKey(0))
    for key, value in metrics.items():
        assert value.shape == (2,), key
        assert np.all(np.isfinite(value)), key
    assert int(state.step) == 4
    if flags.get("lagrange"):
        assert np.all(np.asarray(metrics["alpha_prime"]) > 0)
        assert float(state.log_alpha_prime.params["value"]) != 1.0  # alpha' was trained
    if flags.get("fixed_alpha"):
        np.testing.assert_array_equal(metrics["alpha"], 1.0)
        assert float(state.log_alpha.params["value"]) == 0.0
    if flags.get("unbiased_grad") is False:
        np.testing.assert_array_equal(metrics["hmc_accept_prob"], 0.0)


def test_dataset_samples_train_as_chains_that_reject_every_proposal(dataset):
    """unbiased_samples="dataset" gives the numbers of HMC whose every proposal is rejected: an initial step of 100
    throws each leapfrog step out of the (-1, 1) box, so every chain keeps its dataset action; a mixing chain
    (step 0.05) moves and trains differently."""
    def run(**flags):
        return jax.jit(misa.make_train(tiny_config(**flags), dataset))(jax.random.PRNGKey(0))

    rejected_state, rejected = run(hmc_init_step_size=100.0)
    state, metrics = run(unbiased_samples="dataset", hmc_init_step_size=100.0)
    np.testing.assert_array_equal(rejected["hmc_accept_prob"], 0.0)
    np.testing.assert_array_equal(rejected["hmc_unmoved"], 1.0)
    for a, b in zip(jax.tree.leaves(state._replace(hmc_step_size=0.0)),
                    jax.tree.leaves(rejected_state._replace(hmc_step_size=0.0))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("policy_loss", "critic_loss", "log_pi", "hmc_unmoved", "hmc_grad_cosine"):
        np.testing.assert_allclose(metrics[name], rejected[name], rtol=1e-5, atol=1e-6, err_msg=name)
    mixing_state, mixing = run(hmc_init_step_size=0.05)
    assert float(np.min(mixing["hmc_unmoved"])) < 0.5
    moved = jax.tree.leaves(mixing_state.policy.params)
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(moved, jax.tree.leaves(state.policy.params))) > 1e-6


@pytest.fixture(scope="module")
def default_train(dataset):
    """The mujoco config (shrunk) as one pure function, jitted alone and vmapped over (seed, hparams)."""
    config = tiny_config()
    train = misa.make_train(config, dataset)
    return jax.jit(train), jax.jit(jax.vmap(train)), misa.make_agent(config, dataset)


@pytest.fixture(scope="module")
def default_runs(default_train):
    """Two seeds vmapped in one program, and each seed alone (the first twice)."""
    single, batched, agent = default_train
    keys = jax.random.split(jax.random.PRNGKey(7), 2)
    hparams = jax.tree.map(lambda x: jnp.stack([x, x]), agent.hparams)
    return batched(keys, hparams), [single(k) for k in keys], single(keys[0]), keys


def test_vmapped_seeds_equal_separate_runs(default_runs):
    (batched_state, batched_metrics), singles, _, _ = default_runs
    for i, (state, metrics) in enumerate(singles):
        for a, b in zip(jax.tree.leaves(batched_state.policy.params), jax.tree.leaves(state.policy.params)):
            np.testing.assert_allclose(a[i], b, rtol=1e-4, atol=1e-5)
        for key in metrics:
            np.testing.assert_allclose(batched_metrics[key][i], metrics[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert not np.allclose(batched_metrics["critic_loss"][0], batched_metrics["critic_loss"][1])  # seeds differ


def test_same_seed_same_numbers(default_runs):
    _, singles, again, _ = default_runs
    for a, b in zip(jax.tree.leaves(singles[0]), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def test_default_run_learns_something_and_uses_hmc(default_train, default_runs):
    _, [(state, metrics), _], _, keys = default_runs
    agent = default_train[2]
    initial = jax.jit(agent.init)(keys[0], agent.hparams)
    for name in ("policy", "critic"):
        before, after = jax.tree.leaves(getattr(initial, name).params), jax.tree.leaves(getattr(state, name).params)
        assert all(not np.allclose(a, b) for a, b in zip(before, after)), name
    assert np.all(np.asarray(metrics["hmc_step_size"]) > 0)
    assert np.all(np.asarray(metrics["alpha"]) < 1.0)  # log alpha tuned away from 0


def test_hparams_sweep_without_recompiling(default_train):
    """min_q_weight is a traced hyperparameter: two values in the same compiled program give different critics."""
    _, batched, agent = default_train
    swept = {k: jnp.stack([v, v]) for k, v in agent.hparams.items()}
    swept["min_q_weight"] = jnp.asarray([0.0, 50.0])
    keys = jnp.stack([jax.random.PRNGKey(0)] * 2)
    batched(keys, {k: jnp.stack([v, v]) for k, v in agent.hparams.items()})  # compiled here if not yet
    compiled_before = batched._cache_size()
    _, metrics = batched(keys, swept)
    assert batched._cache_size() == compiled_before
    assert metrics["mi_penalty"].shape == (2, 2)
    assert not np.allclose(metrics["critic_loss"][0], metrics["critic_loss"][1])


def test_act_is_tanh_of_mean(default_train, dataset):
    agent = default_train[2]
    params = agent.policy_params(jax.jit(agent.init)(jax.random.PRNGKey(0), agent.hparams))
    obs = jnp.asarray(dataset.transitions.observations[:7])
    actions = jax.jit(agent.act)(params, obs)
    mean, _ = TanhGaussianPolicy(2, (32, 32)).apply(params, obs)
    assert actions.shape == (7, 2)
    np.testing.assert_allclose(actions, jnp.tanh(mean), rtol=1e-5, atol=1e-6)


def test_prepare_data_transforms_rewards_and_clips_actions(dataset):
    raw_rewards = dataset.transitions.rewards
    for transform in misa.REWARD_TRANSFORMS:
        data = misa.prepare_data(dataset, tiny_config(reward_transform=transform))
        assert float(jnp.max(jnp.abs(data.actions))) <= 0.999 + 1e-7
        rewards = np.asarray(data.rewards)
        if transform == "none":
            np.testing.assert_allclose(rewards, raw_rewards)
        elif transform == "antmaze":
            np.testing.assert_allclose(rewards, (raw_rewards - 0.5) * 4, rtol=1e-6)
        else:
            assert rewards.min() == pytest.approx(-1.0) and rewards.max() == pytest.approx(1.0)
            np.testing.assert_allclose(np.argsort(rewards), np.argsort(raw_rewards))  # monotone
    np.testing.assert_array_equal(misa.transform_rewards(np.ones(4, np.float32), "minmax"), 0.0)


@pytest.mark.parametrize("field, value", [("bound", "infonce"), ("reward_transform", "clip"), ("n_actions", 0),
                                          ("action_clip", 1.0), ("hmc_leapfrog_steps", 0),
                                          ("hmc_init_step_size", 0.0), ("hmc_burn_in", -1),
                                          ("unbiased_samples", "langevin")])
def test_bad_config_is_one_clear_error(field, value):
    config = tiny_config()
    config[field] = value
    with pytest.raises(misa.experiment.ConfigError, match=field):
        misa.validate_config(config)


@pytest.mark.parametrize("module", CONFIG_FILES)
def test_every_config_file_and_variant_loads(module):
    config_module = importlib.import_module(f"configs.{module}")
    assert config_module.VARIANTS
    for variant in [None] + list(config_module.VARIANTS):
        config = config_module.get_config(variant)
        misa.validate_config(config)
        assert config.total_steps % config.eval_every == 0
        if variant not in (None, "demo"):
            assert config.dataset == variant
        assert set(misa.SWEEPABLE) <= set(config.sweep)
    config = config_module.get_config()
    expected = {
        "misa_mujoco": dict(total_steps=1_200_000, eval_every=10_000, n_actions=50, bc_weight=0.5, lagrange=False),
        "misa_antmaze": dict(total_steps=2_000_000, eval_every=50_000, eval_episodes=100, lagrange=True,
                             target_action_gap=3.0, add_positive=True, layer_norm=True, critic_lr=1e-4,
                             reward_transform="antmaze"),
        "misa_kitchen": dict(total_steps=1_000_000, bc_weight=3.0, layer_norm=True, critic_lr=1e-4,
                             reward_transform="minmax"),
        "misa_adroit": dict(total_steps=1_000_000, bc_weight=5.0, fixed_alpha=True, layer_norm=True,
                            reward_transform="minmax"),
    }[module]
    for key, value in expected.items():
        assert config[key] == value, key


def test_demo_variant_is_reduced():
    config_module = importlib.import_module("configs.misa_mujoco")
    demo = config_module.get_config("demo")
    assert demo.dataset == config_module.DEMO_DATASET
    assert demo.total_steps < config_module.get_config().total_steps
