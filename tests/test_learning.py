"""Every method learns: trained offline on data from a competent but noisy controller, each beats the data's
average return and a random policy by a clear margin.

Data: 20,000 InvertedPendulum-v4 steps of a PD balance controller with heavy action noise (tests/conftest.py;
its episodes last about 370 of 1000 steps). Each method trains with its paper loss code and its config file's
settings (MISA with the HMC unbiased gradient on, as configured); only the budget is reduced: 64-64 networks,
1,000 (BC, TD3+BC) or 3,000 (CQL, MISA) steps, MISA with N = 10 and 10 HMC samples. Fixed seed 0. A return is
the mean over 5 episodes of the deterministic evaluation policy (at most 1000).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import rollout_raw

from algorithms import cql, misa, td3_bc
from common import datasets
from common.evaluation import Evaluator
from configs import cql_mujoco, misa_mujoco, td3_bc_mujoco

ENV = "InvertedPendulum-v4"
EPISODES = 5
SEED = 0
COMMON = dict(batch_size=256, hidden_dims=(64, 64), seed=SEED, num_seeds=1, eval_episodes=EPISODES)
# name: (algorithm module, config module, overrides of the config file's settings)
METHODS = {
    "bc": (td3_bc, td3_bc_mujoco, dict(bc_only=True, total_steps=1000)),
    "td3_bc": (td3_bc, td3_bc_mujoco, dict(total_steps=1000)),
    "cql": (cql, cql_mujoco, dict(total_steps=3000)),
    "misa": (misa, misa_mujoco, dict(total_steps=3000, n_actions=10, hmc_num_samples=10)),
}
# A clear margin: at least this many times the data's average return, and this many times a random policy's.
OVER_DATA = 1.5
OVER_RANDOM = 20.0


@pytest.fixture(scope="module")
def pendulum(pendulum_noisy_file):
    data = datasets.load_dataset(str(pendulum_noisy_file))
    random_return = datasets.episode_returns(rollout_raw(ENV, 2000, seed=1)).mean()
    assert 0 < random_return < 20 and data.episode_returns.mean() > 5 * random_return  # the recipe itself
    return data, float(data.episode_returns.mean()), float(random_return)


def evaluate(agent, policies, obs_dim, act_dim) -> list[float]:
    """Mean return of each policy's deterministic actions over the same EPISODES episodes."""
    evaluator = Evaluator(ENV, agent.act, 1, EPISODES, obs_dim, act_dim, SEED)
    try:
        return [float(evaluator(jax.tree.map(lambda x: x[None], params), 0).mean()) for params in policies]
    finally:
        evaluator.close()


def train_and_evaluate(name, data):
    """(untrained return, trained return, per-interval metrics) of one seed trained as one jitted program."""
    module, config_module, overrides = METHODS[name]
    config = config_module.get_config()
    config.update(dict(COMMON, **overrides))
    config.eval_every = config.total_steps
    if hasattr(module, "validate_config"):
        module.validate_config(config)
    agent = module.make_agent(config, data)
    key = jax.random.PRNGKey(config.seed)
    state, metrics = jax.jit(module.make_train(config, data))(key)
    obs_dim, act_dim = data.stats["obs_dim"], data.stats["act_dim"]
    untrained, learned = evaluate(agent, [agent.policy_params(agent.init(key, agent.hparams)),
                                          agent.policy_params(state)], obs_dim, act_dim)
    return config, untrained, learned, metrics


@pytest.mark.parametrize("name", list(METHODS))
def test_beats_the_data_and_a_random_policy(name, pendulum):
    data, data_return, random_return = pendulum
    config, untrained, learned, metrics = train_and_evaluate(name, data)
    print(f"learning {name}: return {learned:.1f} (untrained {untrained:.1f}) vs data {data_return:.1f} "
          f"vs random {random_return:.1f}")
    for key, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), key
    assert learned >= OVER_DATA * data_return, (learned, data_return)
    assert learned >= OVER_RANDOM * random_return, (learned, random_return)
    if name == "misa":  # the unbiased (HMC) gradient was on: a finite policy, much better than where it started
        assert config.unbiased_grad and config.unbiased_weight > 0
        assert learned >= 10 * untrained, (learned, untrained)
