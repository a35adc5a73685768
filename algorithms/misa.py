"""MISA (Ma et al., 2023): offline RL regularised by a lower bound on the mutual information I(S; A).

The bound (Barber-Agakov with the energy-based family q(a|s) = pi(a|s) e^{Q(s,a)} / Z(s)):

    I(S; A) >= E_D[log pi(a|s)] + E_D[Q(s,a)] - E_s[log Z(s)] + H(A),      Z(s) = E_{a~pi(.|s)} e^{Q(s,a)}

    critic loss = sum_i mean (Q_i(s,a) - y)^2 + gamma1 (E_s[log-mean-exp_j Q_i(s,a_j)] - E_D[Q_i(s,a)]),  a_j ~ pi(.|s)
    policy loss = gamma2 E[alpha log pi(a~|s) - log pi(a|s)] - E[min_i Q_i(s,a~)] + gamma3 E_{a'~q(.|s)}[log pi(a'|s)]
    y = r + gamma (1 - d) min_i Q'_i(s', a'),  a' ~ pi(.|s');   a' ~ q by Hamiltonian Monte Carlo (no gradient)

The last policy term is the unbiased gradient of -E_s log Z(s), since grad log Z(s) = E_{q(.|s)}[grad log pi(a|s)].
`bound` = "dv" (Donsker-Varadhan, log outside the state expectation) or "nwj" (f-divergence, log x <= x/e)
gives the looser variants; `unbiased_grad=False` drops the HMC term; `unbiased_samples="dataset"` evaluates it at
the dataset action a' = a, which is what a chain that rejects every proposal keeps (no HMC is run).

Run:  python algorithms/misa.py --config configs/misa_mujoco.py --config.dataset=hopper-medium-v2
Config reference: configs/misa_mujoco.py (every field has a one-line comment there).
"""

from __future__ import annotations

import sys
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState
from jax.scipy.special import logsumexp

from common import buffer, experiment
from common.agent import Agent, Method, actor_critic_states, hparams_from_config, scalar_train_state, scan_update
from common.datasets import Dataset, Transitions
from common.losses import LOG_ALPHA_PRIME_INIT_RANGE, alpha_prime_value, critic_td_loss, lagrange_multiplier_loss
from common.networks import (
    ACTIVATIONS,
    CriticEnsemble,
    TanhGaussianPolicy,
    critic_from_state_half,
    critic_state_half,
    tanh_gaussian_from_normal,
    tanh_gaussian_log_prob,
)

ALGORITHM = "misa"
# Hyperparameters a sweep may vary per vmapped run without recompiling.
SWEEPABLE = ("min_q_weight", "bc_weight", "unbiased_weight", "discount", "tau", "target_action_gap")
# Where this method's own numbers make sense (experiment.check_ranges; discount, tau, critic_lr: SHARED_RANGES).
RANGES = {"policy_lr": "(0, inf)", "alpha_lr": "(0, inf)", "min_q_weight": "[0, inf)", "bc_weight": "[0, inf)",
          "unbiased_weight": "[0, inf)", "hmc_init_step_size": "(0, inf)", "action_clip": "(0, 1)",  # log pi(+-1) = inf
          "log_alpha_prime_init": LOG_ALPHA_PRIME_INIT_RANGE, "n_actions": "[1, inf)", "hmc_num_samples": "[1, inf)",
          "hmc_burn_in": "[0, inf)", "hmc_leapfrog_steps": "[1, inf)"}
BOUNDS = ("misa", "dv", "nwj")
REWARD_TRANSFORMS = ("none", "antmaze", "minmax")
# Units of target_action_gap: "n" compares it with the penalty as defined here (log Z normalised by log N_set);
# "batch" with the penalty normalised by log(batch size) instead, as the authors' code does.
GAP_NORMALISATIONS = ("n", "batch")
# Where the unbiased term's samples a' come from: HMC chains ("hmc", the paper), or the dataset actions the chains
# start at ("dataset": a chain that rejects every proposal keeps exactly these, at no cost).
UNBIASED_SAMPLES = ("hmc", "dataset")
# Step-size adaptation of the HMC sampler (the authors' settings): during the first 80 % of burn-in,
# multiply the shared step size by 1 + rate when the chains' mean acceptance probability exceeds the target.
HMC_TARGET_ACCEPT = 0.75
HMC_ADAPTATION_RATE = 0.01
HMC_ADAPTATION_FRACTION = 0.8


# ------------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------------


class MISAState(NamedTuple):
    policy: TrainState
    critic: TrainState  # the twin critics (one nn.vmap ensemble)
    critic_target: dict
    log_alpha: TrainState  # entropy temperature (unused when config.fixed_alpha)
    log_alpha_prime: TrainState  # Lagrange multiplier of the MI penalty (unused unless config.lagrange)
    hmc_step_size: jax.Array  # the step size the last HMC run ended with
    rng: jax.Array
    step: jax.Array
    hparams: dict


# ------------------------------------------------------------------------------------------------
# The mutual-information bounds
# ------------------------------------------------------------------------------------------------


def log_partition(q_samples, bound: str):
    """The bound's log Z term from Q at actions a_j ~ pi(.|s); q_samples (..., B, N) -> (...).

    misa: E_s[log (1/N) sum_j e^{Q(s,a_j)}]        per-state log-partition (the tightest)
    dv:   log (1/BN) sum_{s,j} e^{Q(s,a_j)}        Donsker-Varadhan: the log outside E_s
    nwj:  e^{-1} (1/BN) sum_{s,j} e^{Q(s,a_j)}     NWJ / f-divergence: log x <= x / e
    """
    num_states, num_samples = q_samples.shape[-2:]
    if bound == "misa":
        return jnp.mean(logsumexp(q_samples, axis=-1), axis=-1) - jnp.log(num_samples)
    log_mean_all = logsumexp(q_samples, axis=(-2, -1)) - jnp.log(num_states * num_samples)
    if bound == "dv":
        return log_mean_all
    if bound == "nwj":
        return jnp.exp(log_mean_all - 1.0)
    raise ValueError(f"unknown bound '{bound}' (use one of {BOUNDS})")


def mi_critic_penalty(q_data, q_samples, bound: str):
    """Conservative term = log Z term - E_D[Q(s,a)]; q_data (..., B), q_samples (..., B, N) -> (...)."""
    return log_partition(q_samples, bound) - jnp.mean(q_data, axis=-1)


def mi_lower_bound(log_pi_data, log_marginal_data, q_data, q_samples, bound: str):
    """I(S;A) >= E_D[log pi(a|s) - log p(a)] + E_D[Q(s,a)] - log Z term (p(a) the action marginal)."""
    return jnp.mean(log_pi_data - log_marginal_data) - mi_critic_penalty(q_data, q_samples, bound)


def correction_state_weights(q_min_samples, bound: str):
    """w(s) such that E_s[w(s) E_{q(.|s)} grad log pi] is the gradient of the bound's log Z term.

    misa: 1;  dv: Z(s) / mean_s Z(s);  nwj: Z(s) / e;  with Z(s) = mean_j e^{min_i Q_i(s,a_j)}.
    """
    log_z = logsumexp(q_min_samples, axis=-1) - jnp.log(q_min_samples.shape[-1])
    if bound == "misa":
        return jnp.ones_like(log_z)
    if bound == "dv":
        return log_z.shape[-1] * jax.nn.softmax(log_z, axis=-1)
    return jnp.exp(log_z - 1.0)


# ------------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------------


def td_target(next_q_min, rewards, dones, discount):
    """y = r + gamma (1 - d) min_i Q'_i(s', a'), a' ~ pi(.|s') (no entropy in the backup)."""
    return rewards + discount * (1.0 - dones) * next_q_min


def misa_critic_loss(q_data, q_samples, target, bound, min_q_weight, alpha_prime, action_gap, lagrange: bool):
    """L_Q = sum_i [mean (Q_i(s,a) - y)^2 + gamma1 (alpha' (penalty_i - gap) if lagrange else penalty_i)].

    q_data (C, B) at the dataset actions, q_samples (C, B, N) at the sampled actions.
    """
    td_loss = critic_td_loss(q_data, target)
    penalty = mi_critic_penalty(q_data, q_samples, bound)  # (C,)
    conservative = alpha_prime * min_q_weight * (penalty - action_gap) if lagrange else min_q_weight * penalty
    return td_loss + jnp.sum(conservative), (td_loss, penalty)


def unbiased_policy_correction(log_pi_hmc, state_weights=None):
    """E_s[w(s) E_{a'~q(.|s)} log pi(a'|s)], a' from HMC (no gradient): its gradient is that of the log Z term.

    log_pi_hmc: (K, B) at K samples per state; w(s): (B,), 1 for the per-state bound.
    """
    weights = jnp.ones(log_pi_hmc.shape[-1]) if state_weights is None else jax.lax.stop_gradient(state_weights)
    return jnp.mean(weights * log_pi_hmc)


def misa_policy_loss(log_pi_new, log_pi_data, q_new, alpha, bc_weight, log_pi_hmc=None, unbiased_weight=0.0,
                     state_weights=None):
    """L_pi = gamma2 E[alpha log pi(a~|s) - log pi(a|s)] - E[min_i Q_i(s,a~)] + gamma3 E_s[w(s) E_{a'~q} log pi(a'|s)].

    log_pi_new, log_pi_data, q_new: (B,); log_pi_hmc: (K, B) or None (biased gradient); w(s): (B,).
    """
    bc_loss = jnp.mean(alpha * log_pi_new - log_pi_data)
    loss = bc_weight * bc_loss - jnp.mean(q_new)
    if log_pi_hmc is not None:
        loss = loss + unbiased_weight * unbiased_policy_correction(log_pi_hmc, state_weights)
    return loss, bc_loss


# ------------------------------------------------------------------------------------------------
# Hamiltonian Monte Carlo in the action box (-1, 1)^A
# ------------------------------------------------------------------------------------------------


class HMCResult(NamedTuple):
    samples: jax.Array  # (num_samples, B, A), every one strictly inside (-1, 1)
    step_size: jax.Array  # the shared step size after adaptation
    accept_prob: jax.Array  # mean acceptance probability over the kept iterations and chains


def hmc_draws(rng, num_iterations: int, batch: int, act_dim: int):
    """The random draws of `num_iterations` HMC iterations: momenta (T, B, A) ~ N(0, 1), log u (T, B), u ~ U(0, 1)."""
    momentum_key, accept_key = jax.random.split(rng)
    return (jax.random.normal(momentum_key, (num_iterations, batch, act_dim)),
            jnp.log(jax.random.uniform(accept_key, (num_iterations, batch))))


def hmc_sample(log_density: Callable, init, rng, step_size, *, num_burn_in: int, num_samples: int,
               leapfrog_steps: int) -> HMCResult:
    """hmc_chain with fresh draws from `rng`."""
    momenta, log_uniforms = hmc_draws(rng, num_burn_in + num_samples, *init.shape)
    return hmc_chain(log_density, init, momenta, log_uniforms, step_size, num_burn_in=num_burn_in,
                     leapfrog_steps=leapfrog_steps)


def hmc_chain(log_density: Callable, init, momenta, log_uniforms, step_size, *, num_burn_in: int,
              leapfrog_steps: int) -> HMCResult:
    """One HMC chain per row of `init` (B, A), targeting exp(log_density(x)) restricted to (-1, 1)^A.

    log_density(x: (B, A)) -> (B,), rows independent. A trajectory that leaves the box has zero density
    and is rejected. The step size, shared by all chains, is multiplied by 1.01 after each of the first
    int(0.8 * num_burn_in) iterations whose mean acceptance probability exceeds 0.75, else divided by 1.01.
    Each leapfrog step costs one value-and-gradient; the gradient at the end point is carried forward.
    Iteration t uses momentum momenta[t] (B, A) and accepts where log_uniforms[t] (B,) < log acceptance ratio;
    the states after the first `num_burn_in` iterations are kept.
    """
    batch, act_dim = init.shape
    edge = 1.0 - 1e-6  # evaluate at a point inside the box; positions outside it are rejected anyway

    def value_and_grad(x):
        value, pullback = jax.vjp(lambda y: log_density(jnp.clip(y, -edge, edge)), x)
        return value, pullback(jnp.ones_like(value))[0]

    total = momenta.shape[0]
    chex.assert_shape(momenta, (total, batch, act_dim))
    chex.assert_shape(log_uniforms, (total, batch))
    num_adaptation = int(HMC_ADAPTATION_FRACTION * num_burn_in)

    def iteration(carry, inputs):
        x, log_p, grad, eps = carry
        momentum, log_u, i = inputs
        y, p, inside = x, momentum + 0.5 * eps * grad, jnp.ones((batch,), bool)
        for leapfrog in range(leapfrog_steps):
            y = y + eps * p
            inside &= jnp.all(jnp.abs(y) < 1.0, axis=-1)
            log_p_y, grad_y = value_and_grad(y)
            p = p + (0.5 * eps if leapfrog == leapfrog_steps - 1 else eps) * grad_y
        energy_change = (log_p_y - 0.5 * jnp.sum(p**2, -1)) - (log_p - 0.5 * jnp.sum(momentum**2, -1))
        log_accept = jnp.where(inside & jnp.isfinite(energy_change), jnp.minimum(energy_change, 0.0), -jnp.inf)
        accept = log_u < log_accept
        keep = lambda new, old: jnp.where(accept.reshape(accept.shape + (1,) * (new.ndim - 1)), new, old)  # noqa: E731
        accept_prob = jnp.mean(jnp.exp(log_accept))
        adapted = jnp.where(accept_prob > HMC_TARGET_ACCEPT, eps * (1 + HMC_ADAPTATION_RATE),
                            eps / (1 + HMC_ADAPTATION_RATE))
        eps = jnp.where(i < num_adaptation, adapted, eps)
        x, log_p, grad = keep(y, x), keep(log_p_y, log_p), keep(grad_y, grad)
        return (x, log_p, grad, eps), (x, accept_prob)

    log_p0, grad0 = value_and_grad(init)
    carry = (init, log_p0, grad0, jnp.asarray(step_size, jnp.float32))
    (_, _, _, step_size), (chain, accept_probs) = jax.lax.scan(
        iteration, carry, (momenta, log_uniforms, jnp.arange(total)))
    return HMCResult(chain[num_burn_in:], step_size, jnp.mean(accept_probs[num_burn_in:]))


def hmc_diagnostics(hmc: HMCResult, data_actions, policy_gradient: Callable, mean, log_std, state_weights) -> dict:
    """How much the unbiased-gradient term adds beyond behaviour cloning, per training step.

    hmc_unmoved: fraction of kept samples still at their chain's start (the dataset action);
    hmc_grad_cosine: cosine, over the policy's parameters, between the gradient of the term
    E_{a'~q}[w(s) log pi(a'|s)] and that of E_D[log pi(a|s)]; 1 when every chain stayed put and w = 1.
    `policy_gradient(f)` is the parameter gradient of f(mean, log_std) through the policy network.
    """
    def hmc_term(mean, log_std):
        return unbiased_policy_correction(
            tanh_gaussian_log_prob(mean, log_std, jax.lax.stop_gradient(hmc.samples)), state_weights)

    def data_term(mean, log_std):
        return jnp.mean(tanh_gaussian_log_prob(mean, log_std, data_actions))

    g_hmc, g_data = (jnp.concatenate([x.ravel() for x in jax.tree.leaves(policy_gradient(f))])
                     for f in (hmc_term, data_term))
    cosine = jnp.vdot(g_hmc, g_data) / jnp.maximum(jnp.linalg.norm(g_hmc) * jnp.linalg.norm(g_data), 1e-30)
    return {"hmc_unmoved": jnp.mean(jnp.all(hmc.samples == data_actions[None], axis=-1)),
            "hmc_grad_cosine": cosine}


# ------------------------------------------------------------------------------------------------
# make_agent
# ------------------------------------------------------------------------------------------------


class StepNoise(NamedTuple):
    """Every random draw of one training step, so that the step is a pure function of (state, batch, noise)."""

    next_eps: jax.Array  # (B, A) standard normal: a' ~ pi(.|s') of the TD target
    sample_eps: jax.Array  # (B, N, A): the N actions a_j ~ pi(.|s) of the log-partition
    new_eps: jax.Array  # (B, A): the reparameterised a~ ~ pi(.|s) of the policy loss
    hmc_momenta: jax.Array  # (T, B, A), T = burn-in + kept samples: HMC momenta
    hmc_log_uniforms: jax.Array  # (T, B): log U(0, 1) of the HMC accept tests


def draw_step_noise(rng, batch_size: int, n_actions: int, act_dim: int, hmc_iterations: int) -> StepNoise:
    """The draws of one training step from one key."""
    next_key, sample_key, new_key, hmc_key = jax.random.split(rng, 4)
    return StepNoise(jax.random.normal(next_key, (batch_size, act_dim)),
                     jax.random.normal(sample_key, (batch_size, n_actions, act_dim)),
                     jax.random.normal(new_key, (batch_size, act_dim)),
                     *hmc_draws(hmc_key, hmc_iterations, batch_size, act_dim))


def lagrange_gap_offset(config) -> float:
    """What to add to target_action_gap so that it is compared with our penalty in its own units.

    The authors' code normalises log Z by log(batch size) where the bound has log N_set (N_set = N, +1 with
    add_positive): their penalty is ours - log(B / N_set), so their threshold g is our g + log(B / N_set).
    """
    if config.gap_normalisation == "batch":
        return float(np.log(config.batch_size / (config.n_actions + int(config.add_positive))))
    return 0.0


def transform_rewards(rewards: np.ndarray, transform: str) -> np.ndarray:
    """none: r;  antmaze: (r - 0.5) * 4;  minmax: rewards scaled linearly onto [-1, 1]."""
    if transform == "antmaze":
        return (rewards - 0.5) * 4.0
    if transform == "minmax":
        low, span = rewards.min(), np.ptp(rewards)
        return (rewards - low) / span * 2.0 - 1.0 if span > 0 else np.zeros_like(rewards)
    return rewards


def prepare_data(dataset: Dataset, config) -> Transitions:
    """The device-resident Q-learning view: rewards transformed per domain, actions clipped to +-action_clip."""
    t = dataset.transitions
    t = t._replace(rewards=transform_rewards(np.asarray(t.rewards, np.float32), config.reward_transform),
                   actions=np.clip(t.actions, -config.action_clip, config.action_clip))
    return buffer.to_device(t)


def value_and_grad_by_chunks(loss_fn, params, inputs, num_chunks: int):
    """jax.value_and_grad(loss_fn, has_aux=True) of a loss that is a mean over the states (the leading axis of
    every input), computed over `num_chunks` equal groups of states in turn: the mean of the groups' values and
    gradients. Aux values come back stacked per group, (num_chunks, ...)."""
    in_chunks = lambda x: x.reshape((num_chunks, -1) + x.shape[1:])  # noqa: E731
    (losses, aux), grads = jax.lax.map(lambda chunk: jax.value_and_grad(loss_fn, has_aux=True)(params, *chunk),
                                       jax.tree.map(in_chunks, inputs))
    mean = lambda tree: jax.tree.map(lambda x: jnp.mean(x, axis=0), tree)  # noqa: E731
    return (jnp.mean(losses), aux), mean(grads)


def resolve_critic_chunks(config) -> int:
    """Groups of states the critic loss is computed over in turn (same result; on a CPU small groups keep the
    N-sample activations in cache). Only the per-state "misa" bound is a sum over states; "dv"/"nwj" use 1."""
    if config.bound != "misa":
        return 1
    if config.critic_chunks:
        return config.critic_chunks
    return 8 if jax.default_backend() == "cpu" and config.batch_size % 8 == 0 else 1


def make_agent(config, dataset: Dataset) -> Agent:
    obs_dim, act_dim = dataset.stats["obs_dim"], dataset.stats["act_dim"]
    hidden = tuple(config.hidden_dims)
    policy_net = TanhGaussianPolicy(act_dim, hidden, config.policy_activation, config.layer_norm)
    critic_net = CriticEnsemble(2, hidden, config.critic_activation, config.layer_norm, "flax", 1e-2)
    target_entropy = -float(act_dim)
    n_actions, batch_size, bound = config.n_actions, config.batch_size, config.bound
    critic_chunks = resolve_critic_chunks(config)
    gap_offset = lagrange_gap_offset(config)

    def init(rng, hparams):
        rng, policy, critic = actor_critic_states(rng, policy_net, critic_net, obs_dim, act_dim, config.policy_lr,
                                                  config.critic_lr)
        return MISAState(
            policy=policy,
            critic=critic,
            critic_target=critic.params,
            log_alpha=scalar_train_state(0.0, config.alpha_lr),
            log_alpha_prime=scalar_train_state(config.log_alpha_prime_init, config.critic_lr),
            hmc_step_size=jnp.asarray(config.hmc_init_step_size, jnp.float32),
            rng=rng, step=jnp.zeros((), jnp.int32), hparams=hparams,
        )

    def min_q(critic_params, obs, actions):
        return jnp.min(critic_net.apply(critic_params, obs, actions), axis=0)

    def min_q_at_states(critic_params, obs):
        """actions (B, A) -> min_i Q_i(s, a) at the fixed states `obs`: one first-layer state half s·W_s + b serves
        every action set it is called with."""
        state_half = critic_state_half(critic_params, obs)
        return lambda actions: jnp.min(critic_from_state_half(critic_net, critic_params, state_half, actions), axis=0)

    def action_gap(hp):
        """The Lagrange threshold in our penalty's units (lagrange_gap_offset)."""
        return hp["target_action_gap"] + gap_offset

    def td_target_of(state: MISAState, batch: Transitions, next_eps):
        """y from a' ~ pi(.|s') (next_eps: its normals) and the target critics."""
        next_mean, next_log_std = policy_net.apply(state.policy.params, batch.next_observations)
        next_actions, _ = tanh_gaussian_from_normal(next_mean, next_log_std, next_eps)
        return td_target(min_q(state.critic_target, batch.next_observations, next_actions),
                         batch.rewards, batch.dones, state.hparams["discount"])

    def critic_update(state: MISAState, batch: Transitions, sampled_actions, target):
        """The critics' loss and gradient at each state's dataset action and N policy actions (B, N, A), one group of
        states at a time; the first layer's state half s·W_s + b is computed once per state for all N + 1 actions.
        Returns (gradient, Q (2, B, N + 1), penalty per critic (2,), metrics)."""
        hp = state.hparams
        alpha_prime = alpha_prime_value(state.log_alpha_prime.params["value"])

        def loss_fn(params, obs, actions, target):
            q = critic_from_state_half(critic_net, params, critic_state_half(params, obs)[:, :, None],
                                       actions)  # (2, states, N + 1)
            q_samples = q if config.add_positive else q[..., 1:]
            loss, aux = misa_critic_loss(q[..., 0], q_samples, target, bound, hp["min_q_weight"], alpha_prime,
                                         action_gap(hp), config.lagrange)
            return loss, (aux, q)

        actions = jnp.concatenate([batch.actions[:, None], sampled_actions], axis=1)
        (loss, ((td_losses, penalties), q)), grads = value_and_grad_by_chunks(
            loss_fn, state.critic.params, (batch.observations, actions, target), critic_chunks)
        penalty = jnp.mean(penalties, axis=0)  # like the TD loss, a mean over the groups of states
        chex.assert_shape(penalty, (2,))
        q = jnp.moveaxis(q, 0, 1).reshape(2, batch_size, n_actions + 1)
        return grads, q, penalty, {
            "critic_loss": loss, "td_loss": jnp.mean(td_losses), "mi_penalty": jnp.mean(penalty),
            "q_data": jnp.mean(q[..., 0]), "q_target": jnp.mean(target),
            "alpha_prime": alpha_prime if config.lagrange else jnp.zeros(()),
        }

    def unbiased_term_samples(state: MISAState, batch: Transitions, mean, log_std, min_q_at_obs, noise) -> HMCResult:
        """a' ~ q(a|s) ∝ pi(a|s) e^{min_i Q_i(s,a)}: one HMC chain per state from its dataset action.

        unbiased_samples="dataset": the chains' starts, as if every proposal were rejected; no samples (None) without
        unbiased_grad. The step size starts from the last run's with hmc_persist_step_size, else the initial one.
        """
        step_size = jnp.asarray(state.hmc_step_size if config.hmc_persist_step_size else config.hmc_init_step_size,
                                jnp.float32)
        if not config.unbiased_grad:
            return HMCResult(None, step_size, jnp.zeros(()))
        if config.unbiased_samples == "dataset":
            return HMCResult(batch.actions[None], step_size, jnp.zeros(()))

        def log_q(a):
            return tanh_gaussian_log_prob(mean, log_std, a) + min_q_at_obs(a)

        return hmc_chain(log_q, batch.actions, noise.hmc_momenta, noise.hmc_log_uniforms, step_size,
                         num_burn_in=config.hmc_burn_in, leapfrog_steps=config.hmc_leapfrog_steps)

    def policy_update(state: MISAState, batch: Transitions, policy_at_obs, min_q_at_obs, new_eps, hmc: HMCResult,
                      q_samples):
        """The policy loss's gradient through its one call at s, policy_at_obs = ((mean, log_std), vjp pullback).

        With unbiased_grad the HMC term weighs state s by w(s), from min_i Q_i(s, a_j) (q_samples: (2, B, N)).
        Returns (gradient, E log pi(a~|s), metrics).
        """
        hp = state.hparams
        (mean, log_std), pullback = policy_at_obs
        alpha = 1.0 if config.fixed_alpha else jnp.exp(state.log_alpha.params["value"])
        state_weights = correction_state_weights(jnp.min(q_samples, axis=0), bound) if config.unbiased_grad else None

        def loss_fn(mean, log_std):
            new_actions, log_pi_new = tanh_gaussian_from_normal(mean, log_std, new_eps)
            log_pi_data = tanh_gaussian_log_prob(mean, log_std, batch.actions)
            log_pi_hmc = (tanh_gaussian_log_prob(mean, log_std, jax.lax.stop_gradient(hmc.samples))
                          if config.unbiased_grad else None)
            loss, bc_loss = misa_policy_loss(log_pi_new, log_pi_data, min_q_at_obs(new_actions), alpha, hp["bc_weight"],
                                             log_pi_hmc, hp["unbiased_weight"], state_weights)
            return loss, (bc_loss, jnp.mean(log_pi_new))

        (loss, (bc_loss, log_pi)), output_grads = jax.value_and_grad(
            loss_fn, argnums=(0, 1), has_aux=True)(mean, log_std)
        (grads,) = pullback(output_grads)
        metrics = {"policy_loss": loss, "bc_loss": bc_loss, "log_pi": log_pi, "alpha": jnp.asarray(alpha, jnp.float32)}
        if config.unbiased_grad:
            def policy_gradient(f):
                return pullback(jax.grad(f, argnums=(0, 1))(mean, log_std))[0]

            metrics |= hmc_diagnostics(hmc, batch.actions, policy_gradient, mean, log_std, state_weights)
        return grads, log_pi, metrics

    def temperature_updates(state: MISAState, log_pi, penalty):
        """alpha towards entropy -|A| (unless fixed_alpha) by -(E log pi + target), the gradient of -log alpha (E log pi
        + target); alpha' (lagrange) maximises alpha' gamma1 (penalty - gap), by lagrange_multiplier_loss."""
        hp = state.hparams
        log_alpha = (state.log_alpha if config.fixed_alpha
                     else state.log_alpha.apply_gradients(grads={"value": -(log_pi + target_entropy)}))
        alpha_prime_grad = jax.grad(lagrange_multiplier_loss)(state.log_alpha_prime.params["value"], penalty,
                                                              hp["min_q_weight"], action_gap(hp))
        log_alpha_prime = (state.log_alpha_prime.apply_gradients(grads={"value": alpha_prime_grad}) if config.lagrange
                           else state.log_alpha_prime)
        return log_alpha, log_alpha_prime

    def train_step(state: MISAState, batch: Transitions, rng):
        """One step of every part from `state`: critics, the unbiased term's samples, policy, temperatures."""
        noise = draw_step_noise(rng, batch_size, n_actions, act_dim, config.hmc_burn_in + config.hmc_num_samples)
        target = td_target_of(state, batch, noise.next_eps)
        # The policy runs once on s; its (mean, log_std) serve every sample and log-density of the step.
        policy_at_obs = jax.vjp(lambda p: policy_net.apply(p, batch.observations), state.policy.params)
        (mean, log_std), _ = policy_at_obs
        sampled_actions, _ = tanh_gaussian_from_normal(mean[:, None], log_std[:, None], noise.sample_eps)  # (B, N, A)
        critic_grads, q, penalty, critic_metrics = critic_update(state, batch, sampled_actions, target)
        # The critics from before the step at s, with no gradient to them: HMC's log q and the policy loss.
        min_q_at_obs = min_q_at_states(state.critic.params, batch.observations)
        hmc = unbiased_term_samples(state, batch, mean, log_std, min_q_at_obs, noise)
        policy_grads, log_pi, policy_metrics = policy_update(state, batch, policy_at_obs, min_q_at_obs, noise.new_eps,
                                                             hmc, q[..., 1:])
        log_alpha, log_alpha_prime = temperature_updates(state, log_pi, penalty)

        critic = state.critic.apply_gradients(grads=critic_grads)
        return state._replace(
            policy=state.policy.apply_gradients(grads=policy_grads),
            critic=critic,
            critic_target=optax.incremental_update(critic.params, state.critic_target, state.hparams["tau"]),
            log_alpha=log_alpha,
            log_alpha_prime=log_alpha_prime,
            hmc_step_size=hmc.step_size,
        ), {**critic_metrics, **policy_metrics, "hmc_accept_prob": hmc.accept_prob, "hmc_step_size": hmc.step_size}

    def act(policy_params, obs):
        return jnp.tanh(policy_net.apply(policy_params, obs)[0])

    return Agent(init, scan_update(train_step, batch_size), lambda state: state.policy.params, act,
                 hparams_from_config(config, SWEEPABLE))


def validate_config(config):
    """Algorithm-specific config checks (one-line errors); the shared ones: common/experiment/configuration.py."""
    experiment.check_ranges(config, RANGES)
    checks = [
        (config.bound in BOUNDS, f"bound must be one of {BOUNDS}, got '{config.bound}'"),
        (config.unbiased_samples in UNBIASED_SAMPLES,
         f"unbiased_samples must be one of {UNBIASED_SAMPLES}, got '{config.unbiased_samples}'"),
        (config.gap_normalisation in GAP_NORMALISATIONS,
         f"gap_normalisation must be one of {GAP_NORMALISATIONS}, got '{config.gap_normalisation}'"),
        (config.reward_transform in REWARD_TRANSFORMS,
         f"reward_transform must be one of {REWARD_TRANSFORMS}, got '{config.reward_transform}'"),
        *[(config[name] in ACTIVATIONS, f"{name} must be one of {sorted(ACTIVATIONS)}, got {config[name]!r}")
          for name in ("policy_activation", "critic_activation")],
        (config.critic_chunks >= 0 and (config.critic_chunks == 0 or config.batch_size % config.critic_chunks == 0),
         f"critic_chunks must be 0 (auto) or divide batch_size ({config.batch_size}), got {config.critic_chunks}"),
    ]
    for ok, message in checks:
        if not ok:
            raise experiment.ConfigError(message)


# ------------------------------------------------------------------------------------------------
# Entry points: `make_train` (one pure function of the whole run) and the command line
# ------------------------------------------------------------------------------------------------

METHOD = Method(ALGORITHM, make_agent, prepare_data, validate_config, default_config="configs/misa_mujoco.py")
make_train = METHOD.make_train


def main(argv=None) -> int:
    return experiment.main(METHOD, argv)


if __name__ == "__main__":
    sys.exit(main())
