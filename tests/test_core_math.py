"""Observable behaviour of the core math, one named bug per test (each was checked to fail on its bug).

Every test drives a whole training step (`agent.update`) or a shared function with inputs chosen so the right
answer is known without recomputing the formula: an all-terminal batch's TD target is its reward, an offset target
critic moves the target only through the min, a step of the critic loss lowers the penalty it minimises, a density
integrates to 1, a soft update is a convex combination, the entropy and Lagrange temperatures move the right way.
"""

from __future__ import annotations

import functools
import importlib
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import cql, misa, td3_bc
from common import buffer
from common.datasets import from_raw
from common.networks import tanh_gaussian_log_prob, tanh_gaussian_sample

OBS_DIM, ACT_DIM, ROWS = 4, 2, 256
DISCOUNT = 0.99


def dataset(terminal: bool, reward=None, seed=0):
    """ROWS transitions, all terminal or none (one episode end at the last row), constant or random reward."""
    rng = np.random.default_rng(seed)
    terminals = np.full(ROWS, terminal)
    timeouts = np.zeros(ROWS, bool)
    timeouts[-1] = not terminal
    rewards = np.full(ROWS, reward, np.float32) if reward is not None else rng.normal(size=ROWS).astype(np.float32)
    raw = dict(observations=rng.normal(size=(ROWS, OBS_DIM)).astype(np.float32),
               actions=rng.uniform(-0.9, 0.9, (ROWS, ACT_DIM)).astype(np.float32),
               rewards=rewards, terminals=terminals, timeouts=timeouts)
    return from_raw(raw, "core", None, "synthetic")


def config_of(module, **overrides):
    config = importlib.import_module(f"configs.{module}").get_config()
    config.update(dict(batch_size=32, hidden_dims=(32, 32), eval_episodes=0, total_steps=10, eval_every=10))
    if module == "misa_mujoco":
        config.update(dict(n_actions=4, hmc_num_samples=3, hmc_burn_in=2))
    if module == "cql_mujoco":
        config.update(dict(cql_n_actions=4))
    config.update(overrides)
    return config


ALGORITHMS = {"misa": (misa, "misa_mujoco"), "cql": (cql, "cql_mujoco")}
STEPS = 30  # the one multi-step length used below (each distinct length is one more compile)


@functools.lru_cache(maxsize=None)
def built(name, **flags):
    """One compiled update per algorithm (and static flag set); datasets and hyperparameters vary as arguments.

    critic_lr 1e-2 so that STEPS steps move the tiny critics measurably."""
    module, config_name = ALGORITHMS[name]
    config = config_of(config_name, critic_lr=1e-2, **flags)
    agent = module.make_agent(config, dataset(terminal=False))  # uses only obs/act sizes
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), agent.hparams)
    return SimpleNamespace(module=module, config=config, state=state,
                           update=jax.jit(agent.update, static_argnums=2))


def build(name, data, lagrange=False, **hparams):
    """(agent bundle, device data, initial state with the given sweepable hyperparameters, update)."""
    b = built(name, **({"lagrange": True} if lagrange else {}))
    state = b.state._replace(hparams={**b.state.hparams, **{k: jnp.float32(v) for k, v in hparams.items()}})
    return b, b.module.prepare_data(data, b.config), state, b.update


def output_bias_offset(critic_params, offsets):
    """Adds offsets[i] to critic i's output bias (the only bias leaf of shape (num_critics, 1))."""
    def shift(path, leaf):
        if "bias" in jax.tree_util.keystr(path) and leaf.shape == (2, 1):
            return leaf + jnp.asarray(offsets, leaf.dtype)[:, None]
        return leaf
    return jax.tree_util.tree_map_with_path(shift, critic_params)


def twin_of_first(critic_params):
    """Both critics set to critic 0 (so their minimum is known)."""
    return jax.tree.map(lambda x: x.at[1].set(x[0]), critic_params)


# ------------------------------------------------------------------------------------------------
# TD targets
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_all_terminal_batch_targets_its_reward_exactly(name):
    """(1 - d) in the target: on terminal transitions y = r, however large the target critics are."""
    agent, data, state, update = build(name, dataset(terminal=True, reward=1.25))
    state = state._replace(critic_target=output_bias_offset(state.critic_target, [3.0, 3.0]))
    _, metrics = update(state, data, 1)
    np.testing.assert_allclose(metrics["q_target"], 1.25, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_target_is_the_minimum_over_target_critics(name):
    """Raising one of two equal target critics leaves y unchanged; lowering it by c lowers y by gamma * c."""
    agent, data, state, update = build(name, dataset(terminal=False))
    base = state._replace(critic_target=twin_of_first(state.critic_target))
    targets = {}
    for label, offset in (("same", 0.0), ("up", 2.0), ("down", -2.0)):
        shifted = base._replace(critic_target=output_bias_offset(base.critic_target, [0.0, offset]))
        targets[label] = float(update(shifted, data, 1)[1]["q_target"][0])
    assert targets["up"] == pytest.approx(targets["same"], abs=1e-5)
    assert targets["same"] - targets["down"] == pytest.approx(DISCOUNT * 2.0, abs=1e-4)


def test_td3_bc_target_masks_terminals_and_takes_the_min():
    """The TD3+BC target on a batch holding both terminal and non-terminal rows, and one critic offset."""
    rewards, dones = jnp.array([1.0, -0.5, 2.0, 0.0]), jnp.array([0.0, 1.0, 0.0, 1.0])
    q = jnp.array([0.3, 7.0, -1.0, 4.0])
    y = td3_bc.td_target(lambda a: jnp.stack([q, q + 5.0]), None, rewards, dones, DISCOUNT)
    np.testing.assert_allclose(y, [1.0 + DISCOUNT * 0.3, -0.5, 2.0 - DISCOUNT * 1.0, 0.0], rtol=1e-6)
    y_down = td3_bc.td_target(lambda a: jnp.stack([q, q - 5.0]), None, rewards, dones, DISCOUNT)
    np.testing.assert_allclose(y - y_down, DISCOUNT * 5.0 * (1 - dones), rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# Conservative terms: the critic step lowers the penalty it minimises
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, metric", [("misa", "mi_penalty"), ("cql", "cql_diff")])
def test_critic_steps_lower_the_conservative_penalty_and_raise_q_at_the_data(name, metric):
    """STEPS steps from one init with weight 5 vs 0 (TD only), measured on one reference batch: the weighted run ends
    with the lower MI / CQL penalty and the higher Q(s, a_data)."""
    after = {}
    for weight in (0.0, 5.0):
        agent, data, state, update = build(name, dataset(terminal=True, reward=0.0), min_q_weight=weight)
        trained, _ = update(state, data, STEPS)
        after[weight] = update(trained._replace(rng=state.rng), data, 1)[1]
    assert float(after[5.0][metric][0]) < float(after[0.0][metric][0]) - 0.03, (after[0.0][metric], after[5.0][metric])
    assert float(after[5.0]["q_data"][0]) > float(after[0.0]["q_data"][0]) + 0.01


# ------------------------------------------------------------------------------------------------
# The tanh-Gaussian policy's densities
# ------------------------------------------------------------------------------------------------


def test_sampled_log_prob_equals_the_density_at_the_sample():
    """log pi returned with a reparameterised sample = tanh_gaussian_log_prob at that action (tanh Jacobian in both)."""
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    mean = jax.random.normal(keys[0], (64, 3))
    log_std = -1.0 + 0.5 * jax.random.normal(keys[1], (64, 3))
    actions, log_prob = tanh_gaussian_sample(mean, log_std, keys[2], 5)
    inside = np.all(np.abs(np.asarray(actions)) < 0.999, axis=-1)  # arctanh is exact away from the edge
    assert inside.mean() > 0.8
    expected = tanh_gaussian_log_prob(mean[:, None], log_std[:, None], actions)
    np.testing.assert_allclose(np.asarray(log_prob)[inside], np.asarray(expected)[inside], rtol=1e-4, atol=1e-4)
    single, single_log_prob = tanh_gaussian_sample(mean, log_std, keys[2])
    ok = np.all(np.abs(np.asarray(single)) < 0.999, axis=-1)
    np.testing.assert_allclose(np.asarray(single_log_prob)[ok],
                               np.asarray(tanh_gaussian_log_prob(mean, log_std, single))[ok], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mu, log_sigma", [(0.3, -0.5), (-1.2, 0.4)])
def test_tanh_gaussian_density_integrates_to_one(mu, log_sigma):
    grid = np.linspace(-1 + 1e-7, 1 - 1e-7, 400_001)
    log_density = tanh_gaussian_log_prob(jnp.full((grid.size, 1), mu), jnp.full((grid.size, 1), log_sigma),
                                         jnp.asarray(grid[:, None], jnp.float32))
    assert np.trapezoid(np.exp(np.asarray(log_density, np.float64)), grid) == pytest.approx(1.0, abs=2e-3)


# ------------------------------------------------------------------------------------------------
# Target networks and temperatures
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_soft_target_update_is_tau_towards_the_new_critic(name):
    """Q' <- tau Q_new + (1 - tau) Q'_old after every step, tau = 5e-3."""
    agent, data, state, update = build(name, dataset(terminal=False), tau=0.05)
    state = state._replace(critic_target=output_bias_offset(state.critic_target, [1.0, -1.0]))
    new, _ = update(state, data, 1)
    for old_t, new_q, new_t in zip(jax.tree.leaves(state.critic_target), jax.tree.leaves(new.critic.params),
                                   jax.tree.leaves(new.critic_target)):
        np.testing.assert_allclose(new_t, 0.05 * new_q + 0.95 * old_t, rtol=1e-5, atol=1e-7)


def test_td3_bc_targets_move_with_the_delayed_actor_step():
    data = dataset(terminal=False)
    config = config_of("td3_bc_mujoco", tau=0.05)
    agent = td3_bc.make_agent(config, data)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), agent.hparams)
    state = state._replace(critic_target=output_bias_offset(state.critic_target, [1.0, -1.0]))
    new, _ = jax.jit(agent.update, static_argnums=2)(state, td3_bc.prepare_data(data, config), config.policy_freq)
    pairs = [(state.critic_target, new.critic.params, new.critic_target),
             (state.actor_target, new.actor.params, new.actor_target)]
    for old, online, target in pairs:
        for o, q, t in zip(jax.tree.leaves(old), jax.tree.leaves(online), jax.tree.leaves(target)):
            np.testing.assert_allclose(t, 0.05 * q + 0.95 * o, rtol=1e-5, atol=1e-7)


def with_log_std_offset(policy_params, offset):
    """Sets the policy's learnable log-std offset o (the scalar initialised to -1)."""
    def set_offset(leaf):
        return jnp.full_like(leaf, offset) if leaf.shape == () and float(leaf) == -1.0 else leaf
    return jax.tree.map(set_offset, policy_params)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_entropy_temperature_rises_below_the_target_entropy_and_falls_above(name):
    """alpha grows while the policy's entropy is below -|A| (log std -4), shrinks while above it (log std -1)."""
    agent, data, state, update = build(name, dataset(terminal=False))
    for offset, direction in ((-4.0, 1.0), (-1.0, -1.0)):
        policy = state.policy.replace(params=with_log_std_offset(state.policy.params, offset))
        new, _ = update(state._replace(policy=policy), data, STEPS)
        assert direction * float(new.log_alpha.params["value"]) > 0, (offset, new.log_alpha.params)


def test_misa_lagrange_multiplier_grows_above_the_gap_and_shrinks_below():
    """alpha' maximises alpha' gamma1 (penalty - gap): it rises when the penalty exceeds the gap, else falls."""
    data = dataset(terminal=False)
    for gap, direction in ((-50.0, 1.0), (50.0, -1.0)):
        _, device_data, state, update = build("misa", data, lagrange=True, target_action_gap=gap)
        new, _ = update(state, device_data, STEPS)
        change = float(new.log_alpha_prime.params["value"] - state.log_alpha_prime.params["value"])
        assert direction * change > 0, (gap, change)


# ------------------------------------------------------------------------------------------------
# Plumbing the math relies on
# ------------------------------------------------------------------------------------------------


def test_batches_are_drawn_from_every_row():
    data = buffer.to_device(dataset(terminal=False).transitions)
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    rows = jax.vmap(lambda k: buffer.sample_batch(data, k, 32).rewards)(keys)
    seen = np.isin(np.asarray(data.rewards), np.asarray(rows).ravel())
    assert seen.mean() > 0.95  # 2048 draws from 255 rows leave each row out with probability e^-8


def test_td3_bc_evaluation_normalises_states_like_training():
    """act(raw obs) = actor((obs - mean) / std): the statistics of the training data, in the policy."""
    data = dataset(terminal=False)
    data = data._replace(transitions=data.transitions._replace(
        observations=data.transitions.observations * 5.0 + 3.0))
    config = config_of("td3_bc_mujoco")
    agent = td3_bc.make_agent(config, data)
    params = agent.policy_params(agent.init(jax.random.PRNGKey(0), agent.hparams))
    obs = np.asarray(data.transitions.observations[:8])
    all_obs = data.transitions.observations
    mean, std = all_obs.mean(0), all_obs.std(0) + config.normalization_eps
    net = td3_bc.DeterministicActor(ACT_DIM, (32, 32), init_style=config.init_style)
    np.testing.assert_allclose(agent.act(params, jnp.asarray(obs)), net.apply(params, (obs - mean) / std),
                               rtol=1e-4, atol=1e-5)
    trained_on = td3_bc.prepare_data(data, config).observations
    np.testing.assert_allclose(np.asarray(trained_on).mean(0), 0.0, atol=1e-3)


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("activation", ["elu", "relu"])
def test_split_first_layer_critic_equals_the_concat_critic(layer_norm, activation):
    """Q from the first layer's state half s·W_s + b plus a·W_a (one state half for many actions) equals the ensemble
    on concat(s, a). Bug it is for: the kernel sliced at the wrong row (W_s taking an action row), the bias added per
    action twice, LayerNorm or the activation skipped in the split path."""
    from common.networks import CriticEnsemble, critic_from_state_half, critic_state_half, first_critic

    net = CriticEnsemble(2, (32, 32), activation, layer_norm, "flax", 1e-2)
    keys = jax.random.split(jax.random.PRNGKey(7), 4)
    obs = jax.random.normal(keys[0], (16, 5))
    actions = jax.random.uniform(keys[1], (16, 9, 3), minval=-1, maxval=1)
    params = net.init(keys[2], obs[:1], actions[:1, 0])
    # Biases and output layer far from their zero / tiny initial values, so that each one shows.
    params = jax.tree.map(lambda x: x + 0.5 * jax.random.normal(keys[3], x.shape), params)
    concat = net.apply(params, jnp.broadcast_to(obs[:, None], (16, 9, 5)), actions)
    split = critic_from_state_half(net, params, critic_state_half(params, obs)[:, :, None], actions)
    assert split.shape == concat.shape == (2, 16, 9)
    np.testing.assert_allclose(split, concat, rtol=1e-6, atol=1e-6 * float(jnp.max(jnp.abs(concat))))
    one = CriticEnsemble(1, (32, 32), activation, layer_norm, "flax", 1e-2)
    np.testing.assert_array_equal(one.apply(first_critic(params), obs, actions[:, 0])[0],
                                  net.apply(params, obs, actions[:, 0])[0])
