"""MISA's mutual-information bounds and their special cases (CQL(H), TD3+BC's BC term), checked numerically."""

from __future__ import annotations

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from algorithms import misa, td3_bc
from common.networks import Critic, CriticEnsemble, tanh_gaussian_log_prob


def _log_normal(x, mean, var):
    return -0.5 * (x - mean) ** 2 / var - 0.5 * np.log(2 * np.pi * var)


@pytest.fixture(scope="module")
def correlated_gaussian():
    """s ~ N(0,1), a = rho s + sqrt(1 - rho^2) eps: I(S;A) = -0.5 log(1 - rho^2); the prior p(a) = N(0,1)."""
    rho, num_states, num_samples = 0.5, 20_000, 200
    rng = np.random.default_rng(0)
    s = rng.normal(size=num_states)
    a = rho * s + np.sqrt(1 - rho**2) * rng.normal(size=num_states)
    a_prior = rng.normal(size=(num_states, num_samples))  # a_j ~ pi(.|s) = p(a)

    def log_ratio(s, a):  # log p(a|s) - log p(a): the optimal critic
        return _log_normal(a, rho * s, 1 - rho**2) - _log_normal(a, 0.0, 1.0)

    return dict(s=s, a=a, a_prior=a_prior, log_ratio=log_ratio, true_mi=-0.5 * np.log(1 - rho**2))


def _bounds(g, scale, state_shift):
    """The three bounds with pi = p(a) (so the BA part is 0) and critic Q = scale * log ratio + shift * s."""
    s = g["s"]
    q_data = scale * g["log_ratio"](s, g["a"]) + state_shift * s
    q_samples = scale * g["log_ratio"](s[:, None], g["a_prior"]) + state_shift * s[:, None]
    log_pi = _log_normal(g["a"], 0.0, 1.0)
    args = [jnp.asarray(x, jnp.float32) for x in (log_pi, log_pi, q_data, q_samples)]
    return {bound: float(misa.mi_lower_bound(*args, bound)) for bound in misa.BOUNDS}


def test_bounds_ordered_below_true_mi(correlated_gaussian):
    """I_nwj <= I_dv <= I_misa <= I(S;A); MISA is tight with the optimal critic, whatever its per-state shift."""
    mi = correlated_gaussian["true_mi"]
    tight = _bounds(correlated_gaussian, 1.0, 0.5)  # Q = log ratio + 0.5 s: Z(s) = e^{0.5 s}
    assert abs(tight["misa"] - mi) < 0.02
    # Closed forms with the shift: DV = MI - log E e^{0.5 s} = MI - 0.125, NWJ = MI - e^{-1} e^{0.125}.
    assert tight["dv"] == pytest.approx(mi - 0.125, abs=0.03)
    assert tight["nwj"] == pytest.approx(mi - np.exp(0.125 - 1.0), abs=0.03)
    assert tight["nwj"] < tight["dv"] - 0.2 and tight["dv"] < tight["misa"] - 0.08
    for scale in (0.5, 2.0):  # suboptimal critics: every bound strictly below the MI
        loose = _bounds(correlated_gaussian, scale, 0.3)
        assert loose["nwj"] <= loose["dv"] + 1e-3 <= loose["misa"] + 2e-3 <= mi - 0.02


def test_dv_and_nwj_equal_misa_when_partition_is_constant():
    """With Z(s) the same for every state, DV = MISA; NWJ = MISA exactly when that constant is log Z = 1."""
    q = jax.random.normal(jax.random.PRNGKey(0), (6, 32))
    q = q - (jax.scipy.special.logsumexp(q, axis=-1, keepdims=True) - jnp.log(32.0)) + 1.0  # log Z(s) = 1
    values = {b: float(misa.log_partition(q, b)) for b in misa.BOUNDS}
    assert values["misa"] == pytest.approx(1.0, abs=1e-5)
    assert values["dv"] == pytest.approx(1.0, abs=1e-5)
    assert values["nwj"] == pytest.approx(1.0, abs=1e-5)


def test_uniform_prior_penalty_is_cql_h_up_to_a_constant():
    """Uniform actions in place of pi: MISA's penalty = CQL(H)'s importance-sampled logsumexp - log N - |A| log 2."""
    batch, num_actions, obs_dim, act_dim = 8, 16, 3, 2
    key_obs, key_data, key_uniform = jax.random.split(jax.random.PRNGKey(1), 3)
    obs = jax.random.normal(key_obs, (batch, obs_dim))
    data_actions = jax.random.uniform(key_data, (batch, act_dim), minval=-1, maxval=1)
    uniform_actions = jax.random.uniform(key_uniform, (batch, num_actions, act_dim), minval=-1, maxval=1)
    critic = Critic((16, 16), "elu")
    obs_repeated = jnp.broadcast_to(obs[:, None], (batch, num_actions, obs_dim))

    def misa_penalty(params):
        q_uniform = critic.apply(params, obs_repeated, uniform_actions)
        return misa.mi_critic_penalty(critic.apply(params, obs, data_actions), q_uniform, "misa")

    q_values = jax.jit(lambda params: (critic.apply(params, obs_repeated, uniform_actions),
                                       critic.apply(params, obs, data_actions)))

    def cql_h_numpy(params):  # brute force, float64, one state at a time
        q_uniform, q_data = (np.asarray(q, np.float64) for q in q_values(params))
        log_density = act_dim * np.log(0.5)
        per_state = [np.log(np.sum(np.exp(q_uniform[b] - log_density))) - q_data[b] for b in range(batch)]
        return float(np.mean(per_state))

    def cql_h_jax(params):
        q_uniform = critic.apply(params, obs_repeated, uniform_actions)
        lse = jax.scipy.special.logsumexp(q_uniform - act_dim * jnp.log(0.5), axis=-1)
        return jnp.mean(lse - critic.apply(params, obs, data_actions))

    misa_value_and_grad, cql_grad = jax.jit(jax.value_and_grad(misa_penalty)), jax.jit(jax.grad(cql_h_jax))
    constant = np.log(num_actions) + act_dim * np.log(2.0)
    for seed in range(4):
        params = jax.jit(critic.init)(jax.random.PRNGKey(10 + seed), obs, data_actions)
        params = jax.tree.map(lambda x, k=1.0 + seed: x * k, params)  # larger weights: Q values of order 1-10
        value, grads_misa = misa_value_and_grad(params)
        assert float(value) == pytest.approx(cql_h_numpy(params) - constant, abs=1e-4)
        grads_cql = cql_grad(params)
        for g_misa, g_cql in zip(jax.tree.leaves(grads_misa), jax.tree.leaves(grads_cql)):
            np.testing.assert_allclose(g_misa, g_cql, rtol=1e-4, atol=1e-6)


def test_barber_agakov_term_with_fixed_variance_is_td3_bc_squared_error():
    """-E log pi(a|s) with fixed sigma = |A| / (2 sigma^2) * TD3+BC's mean (mu(s) - a)^2 + const (pre-tanh space)."""
    batch, act_dim, log_std = 64, 3, -0.7
    key_a, key_mu = jax.random.split(jax.random.PRNGKey(2))
    data_actions = jax.random.uniform(key_a, (batch, act_dim), minval=-0.99, maxval=0.99)
    pre_tanh_targets = jnp.arctanh(data_actions)

    def ba_term(mu):  # MISA's policy loss with alpha = 0, no Q, no HMC, bc_weight 1: -E_D log pi(a|s)
        log_pi_data = tanh_gaussian_log_prob(mu, jnp.full_like(mu, log_std), data_actions)
        zeros = jnp.zeros(batch)
        return misa.misa_policy_loss(zeros, log_pi_data, zeros, alpha=0.0, bc_weight=1.0)[0]

    def td3_bc_term(mu):
        return td3_bc.actor_td3_bc_loss(None, mu, pre_tanh_targets, 2.5, bc_only=True)[0]

    scale = act_dim / (2.0 * np.exp(2 * log_std))
    mus = [0.3 * jax.random.normal(jax.random.PRNGKey(k), (batch, act_dim)) for k in range(3)]
    ba_value_and_grad = jax.jit(jax.value_and_grad(ba_term))
    td3_value_and_grad = jax.jit(jax.value_and_grad(td3_bc_term))
    offsets = []
    for mu in mus:
        (ba, ba_grad), (bc, bc_grad) = ba_value_and_grad(mu), td3_value_and_grad(mu)
        offsets.append(float(ba - scale * bc))
        np.testing.assert_allclose(ba_grad, scale * bc_grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(offsets, offsets[0], atol=1e-3)  # the same constant for every mu


def test_unknown_bound_is_an_error():
    with pytest.raises(ValueError, match="unknown bound"):
        misa.log_partition(jnp.zeros((2, 3)), "infonce")


@pytest.mark.parametrize("lagrange", [False, True])
def test_misa_critic_loss_by_chunks_equals_whole_batch(lagrange):
    """The per-state bound makes the critic loss a mean over states: groups of states give the same value and grads."""
    batch, num_actions, obs_dim, act_dim = 8, 5, 3, 2
    keys = jax.random.split(jax.random.PRNGKey(5), 4)
    obs = jax.random.normal(keys[0], (batch, obs_dim))
    actions = jax.random.uniform(keys[1], (batch, num_actions + 1, act_dim), minval=-1, maxval=1)
    target = jax.random.normal(keys[2], (batch,))
    critic = CriticEnsemble(2, (16, 16), "elu")
    params = critic.init(keys[3], obs, actions[:, 0])

    def loss_fn(params, obs, actions, target):
        q = critic.apply(params, jnp.broadcast_to(obs[:, None], actions.shape[:2] + (obs_dim,)), actions)
        return misa.misa_critic_loss(q[..., 0], q[..., 1:], target, "misa", 5.0, 2.0, 1.0, lagrange)

    run = jax.jit(misa.value_and_grad_by_chunks, static_argnums=(0, 3))
    (whole, whole_aux), whole_grads = run(loss_fn, params, (obs, actions, target), 1)
    for chunks in (2, 4):
        (value, aux), grads = run(loss_fn, params, (obs, actions, target), chunks)
        assert float(value) == pytest.approx(float(whole), rel=1e-5)
        for part, part_whole in zip(aux, whole_aux):  # per-group TD loss and penalty average to the whole's
            np.testing.assert_allclose(jnp.mean(part, axis=0), part_whole[0], rtol=1e-5, atol=1e-6)
        for g, g_whole in zip(jax.tree.leaves(grads), jax.tree.leaves(whole_grads)):
            np.testing.assert_allclose(g, g_whole, rtol=1e-4, atol=1e-6)


def test_only_the_per_state_bound_is_chunked():
    config = importlib.import_module("configs.misa_mujoco").get_config()
    config.critic_chunks = 4
    assert misa.resolve_critic_chunks(config) == 4
    for bound in ("dv", "nwj"):
        config.bound = bound
        assert misa.resolve_critic_chunks(config) == 1
