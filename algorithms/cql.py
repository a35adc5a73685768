"""CQL (Kumar et al., 2020): soft actor-critic with a conservative penalty on the critics, as in JaxCQL.

    critic loss_i = mean (Q_i(s, a) - y)^2 + w * mean [temp * logsumexp_j(cat_ij / temp) - Q_i(s, a)]
        cat_i = [Q_i(s, u) - log U(u),  Q_i(s, a~) - log pi(a~|s),  Q_i(s, a~') - log pi(a~'|s')],  N each,
        u ~ U[-1, 1]^|A|, a~ ~ pi(.|s), a~' ~ pi(.|s'); y = r + gamma (1 - d) min_i Q'_i(s', a'), a' ~ pi(.|s')
    policy loss   = mean (alpha log pi(a~|s) - min_i Q_i(s, a~))
    entropy loss  = -log alpha * mean (log pi(a~|s) - |A|)
    Lagrange (AntMaze): the penalty becomes alpha' * w * (diff_i - gap) and alpha' maximises it.

All losses use the parameters from before the step and every parameter group moves by the gradient of
its own loss only (as JaxCQL's per-loss gradients): the losses are summed with stop-gradients in place.

Run:  python algorithms/cql.py --config configs/cql_mujoco.py --config.dataset=hopper-medium-v2
Config reference: configs/cql_mujoco.py and configs/cql_antmaze.py (every field has a one-line comment).
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

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

ALGORITHM = "cql"
# Hyperparameters a sweep may vary per vmapped run without recompiling.
SWEEPABLE = ("min_q_weight", "discount", "tau", "target_action_gap", "cql_temp")
# Where this method's own numbers make sense (experiment.check_ranges; discount, tau, critic_lr: SHARED_RANGES).
RANGES = {"policy_lr": "(0, inf)", "min_q_weight": "[0, inf)", "alpha_multiplier": "[0, inf)",
          "cql_temp": "(0, inf)", "action_clip": "(0, 1)",  # action_clip < 1: log pi is infinite at +-1
          "log_alpha_prime_init": LOG_ALPHA_PRIME_INIT_RANGE}
NUM_CRITICS = 2
CRITIC_OUTPUT_SCALE = 1e-2  # variance scale of the critics' last layer (JaxCQL and the MISA code)


# ------------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------------


class CQLState(NamedTuple):
    policy: TrainState
    critic: TrainState  # both critics, stacked on a leading axis (nn.vmap ensemble)
    critic_target: dict
    log_alpha: TrainState  # SAC entropy temperature: params {"value": log alpha}
    log_alpha_prime: TrainState  # Lagrange multiplier of the penalty: params {"value": log alpha'}
    rng: jax.Array
    step: jax.Array
    hparams: dict


# ------------------------------------------------------------------------------------------------
# Losses (the TD loss, alpha' and its Lagrange loss are shared with MISA: common/losses.py)
# ------------------------------------------------------------------------------------------------


class StepNoise(NamedTuple):
    """Every random draw of one training step, so that the step is a pure function of (state, batch, noise)."""

    next_eps: jax.Array  # (B, T + N, A) standard normal: T target actions (T = N with max-target backup, else 1),
    #                      then the N penalty actions ~ pi(.|s')
    pi_eps: jax.Array  # (B, 1 + N, A): the policy loss's a~ ~ pi(.|s), then the N penalty actions ~ pi(.|s)
    uniform: jax.Array  # (B, N, A): the penalty's actions u ~ U[-1, 1]^|A|


def draw_step_noise(rng, batch_size: int, num_samples: int, num_target_actions: int, act_dim: int) -> StepNoise:
    """The draws of one training step from one key."""
    next_key, pi_key, uniform_key = jax.random.split(rng, 3)
    return StepNoise(jax.random.normal(next_key, (batch_size, num_target_actions + num_samples, act_dim)),
                     jax.random.normal(pi_key, (batch_size, 1 + num_samples, act_dim)),
                     jax.random.uniform(uniform_key, (batch_size, num_samples, act_dim), minval=-1.0, maxval=1.0))


def uniform_log_density(act_dim: int):
    """log U(u) = |A| log 0.5 of u ~ U[-1, 1]^|A| (a scalar)."""
    return act_dim * jnp.log(0.5)


def cql_importance_weighted_q(q_uniform, q_pi, q_next_pi, log_density_uniform, log_pi, log_pi_next):
    """cat = [Q(s, u) - log U(u), Q(s, a~) - log pi(a~|s), Q(s, a~') - log pi(a~'|s')]: (C, B, N) x 3 -> (C, B, 3N)."""
    return jnp.concatenate([q_uniform - log_density_uniform, q_pi - log_pi, q_next_pi - log_pi_next], axis=-1)


def cql_conservative_penalty(q_cat, q_data, temp):
    """diff_i = mean_B [temp * logsumexp_j(cat_ij / temp) - Q_i(s, a)]: (C, B, K), (C, B) -> (C,), one per critic."""
    chex.assert_rank(q_cat, 3)
    chex.assert_shape(q_data, q_cat.shape[:2])
    return jnp.mean(temp * jax.scipy.special.logsumexp(q_cat / temp, axis=-1) - q_data, axis=-1)


def cql_critic_penalty(diff, min_q_weight, alpha_prime, target_action_gap, lagrange: bool):
    """R_i = w * diff_i, or alpha' * w * (diff_i - gap) in the Lagrange variant (alpha' fixed for the critics)."""
    if lagrange:
        return jax.lax.stop_gradient(alpha_prime) * min_q_weight * (diff - target_action_gap)
    return min_q_weight * diff


def max_target_backup(next_q, next_log_pi):
    """Of N next actions per state, the one maximising min_i Q'_i(s', a'_j): (B, N), (B, N) -> (B,), (B,)."""
    best = jnp.argmax(next_q, axis=-1)[:, None]
    return jnp.take_along_axis(next_q, best, -1)[:, 0], jnp.take_along_axis(next_log_pi, best, -1)[:, 0]


def soft_td_target(rewards, dones, next_q, next_log_pi, alpha, discount, backup_entropy: bool):
    """y = r + gamma (1 - d) (min_i Q'_i(s', a') [- alpha log pi(a'|s') with backup_entropy])."""
    if backup_entropy:
        next_q = next_q - alpha * next_log_pi
    return rewards + discount * (1.0 - dones) * next_q


def sac_policy_loss(alpha, log_pi, q_pi):
    """L_pi = mean_B [alpha log pi(a~|s) - min_i Q_i(s, a~)], a~ reparameterised; q_pi: (C, B)."""
    return jnp.mean(alpha * log_pi - jnp.min(q_pi, axis=0))


def bc_policy_loss(alpha, log_pi, log_pi_data):
    """L_BC = mean_B [alpha log pi(a~|s) - log pi(a|s)]: the warm-up's maximum likelihood of dataset actions."""
    return jnp.mean(alpha * log_pi - log_pi_data)


def entropy_temperature_loss(log_alpha, log_pi, target_entropy):
    """L_alpha = -log alpha * mean_B (log pi(a~|s) + H_target), H_target = -|A|."""
    return -log_alpha * jnp.mean(jax.lax.stop_gradient(log_pi) + target_entropy)


# ------------------------------------------------------------------------------------------------
# The agent: its data, networks and update
# ------------------------------------------------------------------------------------------------


def prepare_data(dataset: Dataset, config) -> Transitions:
    """The device-resident Q-learning view: rewards r * scale + bias, actions clipped to +-action_clip."""
    data = buffer.to_device(dataset.transitions)
    return data._replace(rewards=data.rewards * config.reward_scale + config.reward_bias,
                         actions=jnp.clip(data.actions, -config.action_clip, config.action_clip))


def make_agent(config, dataset: Dataset) -> Agent:
    obs_dim, act_dim = dataset.stats["obs_dim"], dataset.stats["act_dim"]
    n = config.cql_n_actions
    num_target_actions = n if config.max_target_backup else 1
    target_entropy = -float(act_dim)
    hidden = tuple(config.hidden_dims)
    policy_net = TanhGaussianPolicy(act_dim, hidden, config.policy_activation, config.layer_norm)
    critic_net = CriticEnsemble(NUM_CRITICS, hidden, config.critic_activation, config.layer_norm, "flax",
                                CRITIC_OUTPUT_SCALE)

    def init(rng, hparams):
        rng, policy, critic = actor_critic_states(rng, policy_net, critic_net, obs_dim, act_dim, config.policy_lr,
                                                  config.critic_lr)
        return CQLState(
            policy=policy,
            critic=critic,
            critic_target=critic.params,
            log_alpha=scalar_train_state(0.0, config.policy_lr),
            log_alpha_prime=scalar_train_state(config.log_alpha_prime_init, config.critic_lr),
            rng=rng,
            step=jnp.zeros((), jnp.int32),
            hparams=hparams,
        )

    def entropy_alpha(log_alpha):
        if config.use_automatic_entropy_tuning:
            return jnp.exp(log_alpha) * config.alpha_multiplier
        return jnp.asarray(config.alpha_multiplier, jnp.float32)

    def losses(params, state: CQLState, batch: Transitions, next_samples, target, noise: StepNoise):
        """Sum of the four losses, each reaching only its own parameters; returns (total, metrics)."""
        hp = state.hparams
        batch_size = batch.rewards.shape[0]
        alpha = jax.lax.stop_gradient(entropy_alpha(params["log_alpha"]["value"]))
        # The policy at s: one network call serves the policy loss (1 sample) and the penalty (N samples).
        mean, log_std = policy_net.apply(params["policy"], batch.observations)
        actions, log_pis = tanh_gaussian_from_normal(mean[:, None], log_std[:, None], noise.pi_eps)
        new_actions, new_log_pi = actions[:, 0], log_pis[:, 0]
        pi_actions, pi_log_pi = jax.lax.stop_gradient((actions[:, 1:], log_pis[:, 1:]))
        next_pi_actions, next_pi_log_pi = next_samples

        # The critics' first layer s·W_s + a·W_a + b: its state half is computed once and serves all 2 + 3N actions.
        state_half = critic_state_half(params["critic"], batch.observations)  # (C, B, H)
        q_new = critic_from_state_half(critic_net, jax.lax.stop_gradient(params["critic"]),
                                       jax.lax.stop_gradient(state_half), new_actions)
        policy_loss = sac_policy_loss(alpha, new_log_pi, q_new)
        if config.bc_steps > 0:
            log_pi_data = tanh_gaussian_log_prob(mean, log_std, batch.actions)
            policy_loss = jnp.where(state.step < config.bc_steps, bc_policy_loss(alpha, new_log_pi, log_pi_data),
                                    policy_loss)

        # The critics at s on [dataset action, N uniform, N from pi(.|s), N from pi(.|s')] in one call.
        rand_actions, log_density_uniform = noise.uniform, uniform_log_density(act_dim)
        all_actions = jnp.concatenate([batch.actions[:, None], rand_actions, pi_actions, next_pi_actions], axis=1)
        q_all = critic_from_state_half(critic_net, params["critic"], state_half[:, :, None], all_actions)
        chex.assert_shape(q_all, (NUM_CRITICS, batch_size, 1 + 3 * n))
        q_data = q_all[..., 0]
        q_cat = cql_importance_weighted_q(q_all[..., 1:1 + n], q_all[..., 1 + n:1 + 2 * n], q_all[..., 1 + 2 * n:],
                                          log_density_uniform, pi_log_pi, next_pi_log_pi)
        diff = cql_conservative_penalty(q_cat, q_data, hp["cql_temp"])
        alpha_prime = alpha_prime_value(params["log_alpha_prime"]["value"])
        penalty = cql_critic_penalty(diff, hp["min_q_weight"], alpha_prime, hp["target_action_gap"], config.lagrange)
        td_loss = critic_td_loss(q_data, target)
        critic_loss = td_loss + jnp.sum(penalty)

        total = policy_loss + critic_loss
        if config.use_automatic_entropy_tuning:
            total += entropy_temperature_loss(params["log_alpha"]["value"], new_log_pi, target_entropy)
        if config.lagrange:
            total += lagrange_multiplier_loss(params["log_alpha_prime"]["value"], diff, hp["min_q_weight"],
                                              hp["target_action_gap"])
        return total, {
            "critic_loss": critic_loss,
            "td_loss": td_loss,
            "cql_diff": jnp.mean(diff),
            "policy_loss": policy_loss,
            "log_pi": jnp.mean(new_log_pi),
            "alpha": alpha,
            "alpha_prime": alpha_prime if config.lagrange else jnp.zeros(()),
            "q_data": jnp.mean(q_data),
            "q_uniform": jnp.mean(q_all[..., 1:1 + n]),
            "q_target": jnp.mean(target),
        }

    def train_step(state: CQLState, batch: Transitions, key):
        """One step of every parameter group from the same state; `update` advances state.step after it."""
        hp = state.hparams
        noise = draw_step_noise(key, batch.rewards.shape[0], n, num_target_actions, act_dim)
        # The policy at s' (no gradient reaches it): target actions and the penalty's next-state actions.
        next_mean, next_log_std = policy_net.apply(state.policy.params, batch.next_observations)
        next_actions, next_log_pi = tanh_gaussian_from_normal(next_mean[:, None], next_log_std[:, None], noise.next_eps)
        target_actions, target_log_pi = next_actions[:, :num_target_actions], next_log_pi[:, :num_target_actions]
        next_half = critic_state_half(state.critic_target, batch.next_observations)[:, :, None]  # one per s'
        next_q = jnp.min(critic_from_state_half(critic_net, state.critic_target, next_half, target_actions), axis=0)
        if config.max_target_backup:
            next_q, target_log_pi = max_target_backup(next_q, target_log_pi)
        else:
            next_q, target_log_pi = next_q[:, 0], target_log_pi[:, 0]
        target = soft_td_target(batch.rewards, batch.dones, next_q, target_log_pi,
                                entropy_alpha(state.log_alpha.params["value"]), hp["discount"], config.backup_entropy)
        next_samples = (next_actions[:, num_target_actions:], next_log_pi[:, num_target_actions:])

        params = {"policy": state.policy.params, "critic": state.critic.params,
                  "log_alpha": state.log_alpha.params, "log_alpha_prime": state.log_alpha_prime.params}
        grads, metrics = jax.grad(losses, has_aux=True)(params, state, batch, next_samples, target,
                                                        noise)
        critic = state.critic.apply_gradients(grads=grads["critic"])
        log_alpha, log_alpha_prime = state.log_alpha, state.log_alpha_prime
        if config.use_automatic_entropy_tuning:
            log_alpha = log_alpha.apply_gradients(grads=grads["log_alpha"])
        if config.lagrange:
            log_alpha_prime = log_alpha_prime.apply_gradients(grads=grads["log_alpha_prime"])
        return state._replace(
            policy=state.policy.apply_gradients(grads=grads["policy"]),
            critic=critic,
            critic_target=optax.incremental_update(critic.params, state.critic_target, hp["tau"]),
            log_alpha=log_alpha,
            log_alpha_prime=log_alpha_prime,
        ), metrics

    def act(policy_params, obs):
        """The deterministic evaluation action tanh(mean(s))."""
        return jnp.tanh(policy_net.apply(policy_params, obs)[0])

    return Agent(init, scan_update(train_step, config.batch_size), lambda state: state.policy.params, act,
                 hparams_from_config(config, SWEEPABLE))


def validate_config(config):
    """Algorithm-specific config checks (one-line errors); the shared ones: common/experiment/configuration.py."""
    experiment.check_ranges(config, RANGES)
    if config.cql_n_actions < 1:
        raise experiment.ConfigError(f"cql_n_actions must be >= 1, got {config.cql_n_actions}")
    if config.bc_steps < 0:
        raise experiment.ConfigError(f"bc_steps must be >= 0, got {config.bc_steps}")
    for name in ("policy_activation", "critic_activation"):
        if config[name] not in ACTIVATIONS:
            raise experiment.ConfigError(f"{name} must be one of {sorted(ACTIVATIONS)}, got {config[name]!r}")


# ------------------------------------------------------------------------------------------------
# Entry points: `make_train` (one pure function of the whole run) and the command line
# ------------------------------------------------------------------------------------------------

METHOD = Method(ALGORITHM, make_agent, prepare_data, validate_config, default_config="configs/cql_mujoco.py")
make_train = METHOD.make_train


def main(argv=None) -> int:
    return experiment.main(METHOD, argv)


if __name__ == "__main__":
    sys.exit(main())
