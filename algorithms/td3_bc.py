"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term and Q normalisation.

    actor loss  = -lambda * Q1(s, pi(s)) + (pi(s) - a)^2,   lambda = alpha / mean|Q1(s, pi(s))|
    critic loss = sum_i (Q_i(s, a) - y)^2,  y = r + gamma (1 - d) min_i Q'_i(s', clip(pi'(s') + eps))

Run:  python algorithms/td3_bc.py --config configs/td3_bc_mujoco.py --config.dataset=hopper-medium-v2
Config reference: configs/td3_bc_mujoco.py (every field has a one-line comment there).
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from common import buffer, experiment
from common.agent import Agent, Method, actor_critic_states, hparams_from_config
from common.datasets import Dataset, Transitions
from common.losses import critic_td_loss
from common.networks import CriticEnsemble, DeterministicActor, first_critic

ALGORITHM = "td3_bc"
# Hyperparameters a sweep may vary per vmapped run without recompiling.
SWEEPABLE = ("alpha", "discount", "tau", "policy_noise", "noise_clip")
# Where this method's own numbers make sense (experiment.check_ranges; discount, tau, critic_lr: SHARED_RANGES).
INIT_STYLES = ("torch", "flax")  # common/networks.Linear: PyTorch's Linear default, else flax's LeCun normal
RANGES = {"actor_lr": "(0, inf)", "alpha": "[0, inf)", "policy_noise": "[0, inf)", "noise_clip": "[0, inf)",
          "normalization_eps": "[0, inf)"}


# ------------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------------


class TD3BCState(NamedTuple):
    actor: TrainState
    critic: TrainState
    actor_target: dict
    critic_target: dict
    rng: jax.Array
    step: jax.Array
    hparams: dict


# ------------------------------------------------------------------------------------------------
# Losses (the critics' TD loss, L_Q = sum_i mean_B (Q_i(s, a) - y)^2, is shared: common/losses.py)
# ------------------------------------------------------------------------------------------------


def td_target(critic_target_q, next_actions_target, rewards, dones, discount):
    """y = r + gamma (1 - d) min_i Q'_i(s', a'), with a' the smoothed target-policy action."""
    return rewards + discount * (1.0 - dones) * jnp.min(critic_target_q(next_actions_target), axis=0)


def actor_td3_bc_loss(q1_policy, policy_actions, data_actions, alpha, bc_only=False):
    """L_pi = -lambda mean Q1(s, pi(s)) + mean (pi(s) - a)^2,  lambda = alpha / mean|Q1| (no grad)."""
    bc = jnp.mean((policy_actions - data_actions) ** 2)
    if bc_only:
        return bc, (bc, jnp.zeros(()))
    lmbda = alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q1_policy)))
    return -lmbda * jnp.mean(q1_policy) + bc, (bc, lmbda)


# ------------------------------------------------------------------------------------------------
# The agent: its data, networks and update
# ------------------------------------------------------------------------------------------------


def normalization_stats(dataset: Dataset, config):
    """State mean and std (+ eps) of the dataset, used in training and evaluation alike."""
    obs = dataset.transitions.observations
    if not config.normalize_states:
        return jnp.zeros(obs.shape[1]), jnp.ones(obs.shape[1])
    return jnp.asarray(obs.mean(0)), jnp.asarray(obs.std(0) + config.normalization_eps)


def prepare_data(dataset: Dataset, config) -> Transitions:
    """The device-resident Q-learning view with normalised states."""
    mean, std = normalization_stats(dataset, config)
    data = buffer.to_device(dataset.transitions)
    return data._replace(
        observations=(data.observations - mean) / std, next_observations=(data.next_observations - mean) / std
    )


def make_agent(config, dataset: Dataset) -> Agent:
    obs_dim, act_dim = dataset.stats["obs_dim"], dataset.stats["act_dim"]
    actor_net = DeterministicActor(act_dim, tuple(config.hidden_dims), init_style=config.init_style)
    critic_net = CriticEnsemble(2, tuple(config.hidden_dims), init_style=config.init_style)
    q1_net = CriticEnsemble(1, tuple(config.hidden_dims), init_style=config.init_style)  # critic 1 alone
    obs_mean, obs_std = normalization_stats(dataset, config)

    def init(rng, hparams):
        rng, actor, critic = actor_critic_states(rng, actor_net, critic_net, obs_dim, act_dim, config.actor_lr,
                                                 config.critic_lr)
        return TD3BCState(actor, critic, actor.params, critic.params, rng, jnp.zeros((), jnp.int32), hparams)

    def critic_step(state: TD3BCState, batch: Transitions, noise_key):
        hp = state.hparams
        noise = jnp.clip(hp["policy_noise"] * jax.random.normal(noise_key, batch.actions.shape),
                         -hp["noise_clip"], hp["noise_clip"])
        next_actions = jnp.clip(actor_net.apply(state.actor_target, batch.next_observations) + noise, -1.0, 1.0)
        target = td_target(lambda a: critic_net.apply(state.critic_target, batch.next_observations, a),
                           next_actions, batch.rewards, batch.dones, hp["discount"])

        def loss_fn(params):
            q = critic_net.apply(params, batch.observations, batch.actions)
            return critic_td_loss(q, target), q

        (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic.params)
        return state._replace(critic=state.critic.apply_gradients(grads=grads)), loss, jnp.mean(q)

    def actor_step(state: TD3BCState, batch: Transitions):
        def loss_fn(params):
            actions = actor_net.apply(params, batch.observations)
            # The actor's loss reads Q1 only: critic 1 alone (the ensemble call would compute Q2 as well).
            q1 = q1_net.apply(first_critic(state.critic.params), batch.observations, actions)[0]
            return actor_td3_bc_loss(q1, actions, batch.actions, state.hparams["alpha"], config.bc_only)

        (loss, (bc, lmbda)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.actor.params)
        actor = state.actor.apply_gradients(grads=grads)
        tau = state.hparams["tau"]
        return state._replace(
            actor=actor,
            actor_target=optax.incremental_update(actor.params, state.actor_target, tau),
            critic_target=optax.incremental_update(state.critic.params, state.critic_target, tau),
        ), loss, bc, lmbda

    def update(state: TD3BCState, data: Transitions, num_steps: int):
        """`num_steps` critic updates; the actor and targets every `policy_freq`-th (a static unroll)."""
        freq = config.policy_freq

        def body(state, _):
            rng, *keys = jax.random.split(state.rng, 2 * freq + 1)
            state = state._replace(rng=rng)
            critic_losses, q_means = [], []
            for i in range(freq):
                batch = buffer.sample_batch(data, keys[2 * i], config.batch_size)
                state, critic_loss, q_mean = critic_step(state, batch, keys[2 * i + 1])
                critic_losses.append(critic_loss)
                q_means.append(q_mean)
            state, actor_loss, bc_loss, lmbda = actor_step(state, batch)
            state = state._replace(step=state.step + freq)
            repeat = lambda x: jnp.full((freq,), x)  # noqa: E731
            return state, {
                "critic_loss": jnp.stack(critic_losses),
                "q_mean": jnp.stack(q_means),
                "actor_loss": repeat(actor_loss),
                "bc_loss": repeat(bc_loss),
                "lambda": repeat(lmbda),
            }

        state, metrics = jax.lax.scan(body, state, None, length=num_steps // freq)
        return state, jax.tree.map(lambda x: x.reshape(-1), metrics)

    def act(actor_params, obs):
        return actor_net.apply(actor_params, (obs - obs_mean) / obs_std)

    return Agent(init, update, lambda state: state.actor.params, act, hparams_from_config(config, SWEEPABLE))


def validate_config(config):
    """Algorithm-specific config checks (one-line errors); the shared ones: common/experiment/configuration.py."""
    experiment.check_ranges(config, RANGES)
    if config.init_style not in INIT_STYLES:
        raise experiment.ConfigError(f"init_style must be one of {INIT_STYLES}, got {config.init_style!r}")
    if config.policy_freq < 1 or config.eval_every % config.policy_freq:
        raise experiment.ConfigError(f"eval_every ({config.eval_every}) must be a multiple of policy_freq "
                                     f"({config.policy_freq}), which must be >= 1")


# ------------------------------------------------------------------------------------------------
# Entry points: `make_train` (one pure function of the whole run) and the command line
# ------------------------------------------------------------------------------------------------

METHOD = Method(ALGORITHM, make_agent, prepare_data, validate_config, default_config="configs/td3_bc_mujoco.py")
make_train = METHOD.make_train


def main(argv=None) -> int:
    return experiment.main(METHOD, argv)


if __name__ == "__main__":
    sys.exit(main())
