"""A learning test that behaviour cloning cannot pass: a one-step task whose reward peaks away from the data.

Data: states s ~ N(0, I), actions uniform on [-1, 1] (mean 0), reward r(a) = 1 - 4 (a - 0.6)^2, every transition
terminal, so Q(s, a) = r(a) and the best action is 0.6 everywhere. Cloning the data gives actions near 0; every
method that uses its critic must move its policy towards 0.6. (Its Q term deleted, TD3+BC stays at 0; a flipped
policy-gradient sign in CQL or MISA drives the policy to -1.)
"""

from __future__ import annotations

import importlib

import jax
import numpy as np
import pytest

from algorithms import cql, misa, td3_bc
from common.datasets import from_raw

PEAK, ROWS, OBS_DIM = 0.6, 4096, 2


def bandit_dataset(seed=0):
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (ROWS, 1)).astype(np.float32)
    raw = dict(observations=rng.normal(size=(ROWS, OBS_DIM)).astype(np.float32), actions=actions,
               rewards=(1.0 - 4.0 * (actions[:, 0] - PEAK) ** 2).astype(np.float32),
               terminals=np.ones(ROWS, bool))
    return from_raw(raw, "bandit", None, "synthetic")


# Small networks, policy lr 1e-3 for the SAC-style policies (their 1e-4 default needs ~10x the steps).
METHODS = {
    "td3_bc": (td3_bc, "td3_bc_mujoco", {}),
    "bc": (td3_bc, "td3_bc_mujoco", {"bc_only": True}),
    "cql": (cql, "cql_mujoco", {"cql_n_actions": 4, "policy_lr": 1e-3}),
    "misa": (misa, "misa_mujoco", {"n_actions": 4, "hmc_num_samples": 4, "hmc_burn_in": 2, "policy_lr": 1e-3}),
    "misa_biased": (misa, "misa_mujoco", {"n_actions": 4, "unbiased_grad": False, "policy_lr": 1e-3}),
}


def mean_action(method, steps=800, seed=0):
    module, config_name, overrides = METHODS[method]
    config = importlib.import_module(f"configs.{config_name}").get_config()
    config.update(dict(total_steps=steps, eval_every=steps, batch_size=64, hidden_dims=(32, 32), eval_episodes=0,
                       **overrides))
    data = bandit_dataset()
    agent = module.make_agent(config, data)
    state, metrics = jax.jit(module.make_train(config, data))(jax.random.PRNGKey(seed))
    for key, value in metrics.items():
        assert np.all(np.isfinite(value)), key
    obs = np.random.default_rng(1).normal(size=(256, OBS_DIM)).astype(np.float32)
    return float(np.mean(agent.act(agent.policy_params(state), obs)))


def test_behaviour_cloning_stays_at_the_data_mean():
    assert abs(mean_action("bc")) < 0.15


@pytest.mark.parametrize("method", ["td3_bc", "cql", "misa", "misa_biased"])
def test_each_method_moves_its_policy_towards_the_reward_peak(method):
    """Half-way to the peak or further (TD3+BC's BC term holds it near 0.5: lambda |dQ/da| balances 2 (a - 0))."""
    action = mean_action(method)
    assert action > PEAK / 2, (method, action)
