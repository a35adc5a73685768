"""MISA's HMC sampler (moments, box constraint, step-size adaptation) and the unbiased policy gradient it feeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from algorithms import misa
from common.networks import tanh_gaussian_log_prob


def _gaussian_log_density(mean, std):
    mean, std = jnp.asarray(mean), jnp.asarray(std)
    return lambda x: jnp.sum(-0.5 * ((x - mean) / std) ** 2, axis=-1)


@pytest.mark.parametrize("mean, std", [((0.3, -0.6), (0.4, 0.3)), ((0.9,), (0.5,))])
def test_hmc_reproduces_truncated_gaussian_moments(mean, std):
    """A Gaussian restricted to (-1, 1)^A: sample mean and variance match the truncated normal's."""
    chains = 2048
    run = jax.jit(lambda key: misa.hmc_sample(
        _gaussian_log_density(mean, std), jnp.zeros((chains, len(mean))), key, 0.3,
        num_burn_in=50, num_samples=100, leapfrog_steps=3))
    result = run(jax.random.PRNGKey(0))
    samples = np.asarray(result.samples).reshape(-1, len(mean))
    assert np.all(np.abs(samples) < 1.0)
    for dim, (m, s) in enumerate(zip(mean, std)):
        truth = stats.truncnorm((-1 - m) / s, (1 - m) / s, loc=m, scale=s)
        assert samples[:, dim].mean() == pytest.approx(truth.mean(), abs=0.01)
        assert samples[:, dim].var() == pytest.approx(truth.var(), rel=0.05)
    assert 0.2 < float(result.accept_prob) < 1.0


def test_hmc_with_paper_settings_never_leaves_the_box():
    """Step size 1, 2 leapfrog steps, 5 burn-in from dataset actions near the edge: every sample inside (-1, 1)."""
    batch, act_dim = 512, 3
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    mean, log_std = jax.random.normal(keys[0], (batch, act_dim)), jnp.full((batch, act_dim), -1.0)
    data_actions = jnp.clip(jax.random.uniform(keys[1], (batch, act_dim), minval=-1, maxval=1), -0.999, 0.999)
    weights = jax.random.normal(keys[2], (act_dim,))
    log_q = lambda a: tanh_gaussian_log_prob(mean, log_std, a) + 3.0 * jnp.sin(a @ weights)  # noqa: E731
    result = jax.jit(lambda key: misa.hmc_sample(log_q, data_actions, key, 1.0, num_burn_in=5, num_samples=50,
                                                 leapfrog_steps=2))(keys[3])
    assert result.samples.shape == (50, batch, act_dim)
    assert bool(jnp.all(jnp.abs(result.samples) < 1.0))
    assert bool(jnp.all(jnp.isfinite(result.samples)))


def test_proposals_outside_the_box_are_rejected_even_where_the_density_is_highest():
    """A density rising towards the +1 edge (log q = 8 sum a): without the box check, leapfrog steps that overshoot
    the edge would be accepted (the density is evaluated at the clipped point, its highest value)."""
    batch, act_dim = 1024, 2
    log_q = lambda a: 8.0 * jnp.sum(a, axis=-1)  # noqa: E731
    result = jax.jit(lambda key: misa.hmc_sample(log_q, jnp.zeros((batch, act_dim)), key, 0.15, num_burn_in=20,
                                                 num_samples=30, leapfrog_steps=2))(jax.random.PRNGKey(5))
    samples = np.asarray(result.samples)
    assert np.all(np.abs(samples) < 1.0)
    # the chains travelled from 0 to the edge (the truncated exponential's mean is 1 - 1/8 per dimension) and keep
    # moving there, where many proposals overshoot
    assert samples.mean() > 0.8 and float(result.accept_prob) > 0.02


@pytest.mark.parametrize("init_step, burn_in, expected_power", [(1e-3, 5, 4), (50.0, 5, -4), (1e-3, 10, 8),
                                                                (1e-3, 1, 0)])
def test_step_size_adapts_only_in_first_80_percent_of_burn_in(init_step, burn_in, expected_power):
    """x1.01 per adaptation step with mean acceptance > 0.75 (tiny steps), /1.01 otherwise (steps leaving the box)."""
    result = jax.jit(lambda key: misa.hmc_sample(_gaussian_log_density((0.0,), (0.5,)), jnp.zeros((64, 1)), key,
                                                 init_step, num_burn_in=burn_in, num_samples=3, leapfrog_steps=2))(
        jax.random.PRNGKey(2))
    assert float(result.step_size) == pytest.approx(init_step * 1.01**expected_power, rel=1e-5)


# Two states with different critics over a 1-D action; the policy pi = tanh(N(mu, sigma)) is shared.
MU, LOG_STD = 0.2, -0.5
CRITICS = (lambda a: 1.5 * a - a**2, lambda a: 1.0 - 2.0 * a)


def _quadrature_gradient(bound, data_u):
    """Exact gradient wrt (mu, log sigma) of E_D log pi(a|s) - [the bound's log-partition term], by quadrature."""
    sigma = np.exp(LOG_STD)
    u = np.linspace(MU - 12 * sigma, MU + 12 * sigma, 200_001)
    density = stats.norm.pdf(u, MU, sigma)
    score = np.stack([(u - MU) / sigma**2, (u - MU) ** 2 / sigma**2 - 1.0])  # grad of log N(u; mu, sigma)
    partitions, partition_grads = [], []
    for critic in CRITICS:
        weight = density * np.exp(critic(np.tanh(u)))
        partitions.append(np.trapezoid(weight, u))
        partition_grads.append(np.trapezoid(weight * score, u, axis=-1))  # grad Z(s)
    z, dz = np.array(partitions), np.array(partition_grads)
    log_partition_grad = {
        "misa": np.mean(dz / z[:, None], axis=0),  # grad E_s log Z(s)
        "dv": np.mean(dz, axis=0) / np.mean(z),  # grad log E_s Z(s)
        "nwj": np.exp(-1.0) * np.mean(dz, axis=0),  # grad e^{-1} E_s Z(s)
    }[bound]
    data_grad = np.array([np.mean((data_u - MU) / sigma**2), np.mean((data_u - MU) ** 2 / sigma**2 - 1.0)])
    return data_grad - log_partition_grad


@pytest.mark.parametrize("bound", misa.BOUNDS)
def test_hmc_corrected_policy_gradient_matches_quadrature(bound):
    """-grad of MISA's policy loss (BA term + HMC correction, weights per bound) = grad of the bound.

    Tolerance 0.05 (observed errors <= 0.026 over seeds); the three bounds' gradients differ by >= 0.3 here.
    """
    chains_per_state, num_policy_samples = 2048, 256
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    state = jnp.repeat(jnp.arange(2), chains_per_state)  # the state of each chain
    data_u = -0.3 + 0.5 * jax.random.normal(keys[0], (2 * chains_per_state,))  # data: not q, not pi
    data_actions = jnp.tanh(data_u)[:, None]

    def critic(a):  # (B, 1) -> (B,) or (B, N, 1) -> (B, N)
        s = state.reshape(state.shape + (1,) * (a.ndim - 2))
        return jnp.where(s == 0, CRITICS[0](a[..., 0]), CRITICS[1](a[..., 0]))

    def policy_loss(params, hmc_samples, weights):
        mean, log_std = jnp.full_like(data_actions, params[0]), jnp.full_like(data_actions, params[1])
        log_pi_data = tanh_gaussian_log_prob(mean, log_std, data_actions)
        log_pi_hmc = tanh_gaussian_log_prob(mean, log_std, hmc_samples)
        zeros = jnp.zeros_like(log_pi_data)
        return misa.misa_policy_loss(zeros, log_pi_data, zeros, 0.0, 1.0, log_pi_hmc, 1.0, weights)[0]

    @jax.jit
    def estimate(params):
        mean, log_std = jnp.full_like(data_actions, params[0]), jnp.full_like(data_actions, params[1])
        log_q = lambda a: tanh_gaussian_log_prob(mean, log_std, a) + critic(a)  # noqa: E731
        hmc = misa.hmc_sample(log_q, data_actions, keys[1], 0.5, num_burn_in=100, num_samples=200, leapfrog_steps=2)
        policy_actions = jnp.tanh(params[0] + jnp.exp(params[1]) * jax.random.normal(
            keys[2], (2 * chains_per_state, num_policy_samples, 1)))
        weights = misa.correction_state_weights(critic(policy_actions), bound)
        return -jax.grad(policy_loss)(params, hmc.samples, weights)

    gradient = np.asarray(estimate(jnp.array([MU, LOG_STD])))
    np.testing.assert_allclose(gradient, _quadrature_gradient(bound, np.asarray(data_u)), atol=0.05)


def test_correction_has_the_sign_of_the_bound():
    """Q rising with a tilts q above pi; -log Z(s) falls as pi moves up, so the correction pushes pi's mean down."""
    batch = 4096
    mean, log_std = jnp.zeros((batch, 1)), jnp.full((batch, 1), -1.0)
    log_q = lambda a: tanh_gaussian_log_prob(mean, log_std, a) + 4.0 * a[:, 0]  # noqa: E731
    hmc = jax.jit(lambda key: misa.hmc_sample(log_q, jnp.zeros((batch, 1)), key, 0.3, num_burn_in=20,
                                              num_samples=20, leapfrog_steps=2))(jax.random.PRNGKey(4))

    def correction(mu):
        return misa.misa_policy_loss(jnp.zeros(batch), jnp.zeros(batch), jnp.zeros(batch), 0.0, 0.0,
                                     tanh_gaussian_log_prob(mean + mu, log_std, hmc.samples), 1.0)[0]

    assert float(jax.jit(jax.grad(correction))(0.0)) > 0.5  # gradient descent on the loss moves the mean down


def test_hmc_diagnostics_tell_a_chain_that_stayed_put_from_one_that_moved():
    """Chains that never left the dataset action: every sample unmoved and the HMC term's policy gradient parallel
    to E_D log pi's (cosine 1); samples elsewhere: none unmoved and a different direction."""
    from common.networks import TanhGaussianPolicy

    batch, act_dim, samples = 64, 3, 5
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    obs = jax.random.normal(keys[0], (batch, 7))
    data_actions = jax.random.uniform(keys[1], (batch, act_dim), minval=-0.9, maxval=0.9)
    net = TanhGaussianPolicy(act_dim, (16, 16))
    params = net.init(keys[2], obs)
    (mean, log_std), pullback = jax.vjp(lambda p: net.apply(p, obs), params)

    def policy_gradient(f):
        return pullback(jax.grad(f, argnums=(0, 1))(mean, log_std))[0]

    def diagnose(chain):
        hmc = misa.HMCResult(chain, jnp.asarray(1.0), jnp.asarray(0.0))
        return misa.hmc_diagnostics(hmc, data_actions, policy_gradient, mean, log_std, jnp.ones(batch))

    stuck = diagnose(jnp.broadcast_to(data_actions, (samples, batch, act_dim)))
    assert float(stuck["hmc_unmoved"]) == 1.0
    assert float(stuck["hmc_grad_cosine"]) == pytest.approx(1.0, abs=1e-5)
    moved = diagnose(jax.random.uniform(keys[3], (samples, batch, act_dim), minval=-0.9, maxval=0.9))
    assert float(moved["hmc_unmoved"]) == 0.0
    assert float(moved["hmc_grad_cosine"]) < 0.99  # (both raise the std of an untrained policy: not far below)
