"""The contract between an algorithm file and the shared training loop.

An algorithm file builds an `Agent` from (config, dataset). Everything in it is a pure JAX function
of one run; the loop vmaps it over runs (seeds x hyperparameter values), so

    train = make_train(config, dataset)          # train(rng) -> (final state, metrics per interval)
    states, metrics = jax.jit(jax.vmap(train))(jax.random.split(rng, 8))

trains eight seeds in one program. The host (`common/experiment/`) drives the same functions one
evaluation interval at a time, evaluating, logging and checkpointing between intervals.

A method file ends with its `Method`: the name its checkpoints carry, its `make_agent`, its
`prepare_data`, its config checks and its default config. `Method.make_train` is the pure run above;
`common.experiment.main(method)` is its command line.

Two building blocks the Q-learning methods share: `scan_update(train_step, batch_size)`, the `update` of an
agent whose step is train_step(state, batch, key), and `scalar_train_state`, a learned temperature or multiplier.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from common import buffer
from common.datasets import Dataset, Transitions


class Agent(NamedTuple):
    """What an algorithm provides.

    init(rng, hparams) -> state: a pytree holding everything the run needs to continue (parameters,
        targets, optimiser states, rng, step counter, `hparams`).
    update(state, data, num_steps) -> (state, metrics): `num_steps` (static) gradient steps in one
        `lax.scan`, batches sampled inside from `data` (the device-resident Transitions); metrics is a
        dict of per-step arrays of shape (num_steps,).
    policy_params(state) -> the parameters `act` needs.
    act(policy_params, obs) -> deterministic evaluation actions in [-1, 1] for a batch of observations.
    hparams: default values of the hyperparameters that may differ between vmapped runs, read by the
        update from `state.hparams` as traced scalars (a sweep changes them without recompiling).
    """

    init: Callable[[jax.Array, dict], Any]
    update: Callable[[Any, Transitions, int], tuple[Any, dict]]
    policy_params: Callable[[Any], Any]
    act: Callable[[Any, jax.Array], jax.Array]
    hparams: dict


class Method(NamedTuple):
    """One algorithm file's entry points, as the host, the tools and `load_run` use them.

    make_agent(config, dataset) -> Agent;
    prepare_data(dataset, config) -> the device-resident Transitions the updates sample from;
    validate_config(config) raises a one-line ConfigError (common/experiment/errors.py) on a config it cannot run;
    default_config: the config file (relative to the repository root) its command line starts from.
    """

    name: str
    make_agent: Callable[[Any, Dataset], Agent]
    prepare_data: Callable[[Dataset, Any], Transitions]
    validate_config: Callable[[Any], None]
    default_config: str

    def make_train(self, config, dataset: Dataset):
        """train(rng) -> (final state, per-interval mean metrics): the whole run as one pure function."""
        self.validate_config(config)
        agent = self.make_agent(config, dataset)
        return make_pure_train(agent, self.prepare_data(dataset, config), config.total_steps, config.eval_every)


def hparams_from_config(config, names) -> dict:
    """The sweepable hyperparameters of a config, as float32 scalars."""
    return {name: jnp.asarray(float(config[name]), jnp.float32) for name in names}


def make_pure_train(agent: Agent, data: Transitions, total_steps: int, eval_every: int):
    """train(rng, hparams=None) -> (state, metrics) running all `total_steps` updates with no evaluation.

    Metrics are the per-interval means, shape (total_steps // eval_every,) each.
    """
    if total_steps % eval_every:
        raise ValueError(f"total_steps ({total_steps}) must be a multiple of eval_every ({eval_every})")

    def train(rng, hparams=None):
        state = agent.init(rng, agent.hparams if hparams is None else hparams)

        def interval(state, _):
            state, metrics = agent.update(state, data, eval_every)
            return state, jax.tree.map(jnp.mean, metrics)

        return jax.lax.scan(interval, state, None, length=total_steps // eval_every)

    return train


def scan_update(train_step: Callable, batch_size: int):
    """update(state, data, num_steps) -> (state, metrics per step): `num_steps` train steps in one lax.scan.

    Each step splits state.rng into (rng, batch key, step key), draws a batch with `buffer.sample_batch` (looked up
    at trace time, so a test may replace it), runs train_step(state, batch, step key) -> (state, metrics) on the
    state carrying the new rng, then advances state.step by one: train_step reads the step number it runs as.
    The state is a NamedTuple with fields `rng` and `step`.
    """

    def update(state, data: Transitions, num_steps: int):
        def body(state, _):
            rng, batch_key, step_key = jax.random.split(state.rng, 3)
            batch = buffer.sample_batch(data, batch_key, batch_size)
            state, metrics = train_step(state._replace(rng=rng), batch, step_key)
            return state._replace(step=state.step + 1), metrics

        return jax.lax.scan(body, state, None, length=num_steps)

    return update


def actor_critic_states(rng, actor_net, critic_net, obs_dim: int, act_dim: int, actor_lr: float, critic_lr: float):
    """(rng, actor TrainState, critic TrainState): rng split into (rng, actor key, critic key), the networks
    initialised on a dummy (1, obs_dim) observation and (1, act_dim) action, each with its own Adam."""
    rng, actor_key, critic_key = jax.random.split(rng, 3)
    dummy_obs, dummy_act = jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))
    actor = TrainState.create(apply_fn=actor_net.apply, params=actor_net.init(actor_key, dummy_obs),
                              tx=optax.adam(actor_lr))
    critic = TrainState.create(apply_fn=critic_net.apply, params=critic_net.init(critic_key, dummy_obs, dummy_act),
                               tx=optax.adam(critic_lr))
    return rng, actor, critic


def scalar_train_state(value, learning_rate: float) -> TrainState:
    """A TrainState over params {"value": scalar} (a dict, as apply_gradients expects) with Adam: a learned
    temperature or Lagrange multiplier, stored as its log."""
    params = {"value": jnp.asarray(value, jnp.float32)}
    return TrainState.create(apply_fn=None, params=params, tx=optax.adam(learning_rate))
