"""Soft Actor-Critic (Haarnoja et al., 2018), online, used to make the behaviour policies of the datasets.

    critic loss  = sum_i mean (Q_i(s, a) - y)^2,  y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))
    actor loss   = mean (alpha log pi(a|s) - min_i Q_i(s, a)),  a ~ pi(.|s) reparameterised
    entropy loss = -mean log_alpha (log pi(a|s) + H_target),  H_target = -|A|

The loop is fused: `chunk_steps` environment steps are collected on the host (one jitted policy call per
step), pushed into a device-resident replay buffer, and then the same number of gradient updates runs in
one `lax.scan` with batches sampled inside. Evaluation rolls out the stochastic policy (as D4RL's
behaviour data did) in a few environments stepped side by side with one batched policy call per step.

Run:  python datagen/sac.py --env hopper --total-steps 300000 --out runs/sac_hopper
Environments are gymnasium MuJoCo v4 by default (D4RL's reference scores apply to v4); `--env-version v5`
is offered but its returns are NOT comparable to D4RL's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import typing
from pathlib import Path
from typing import Callable, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

from common.agent import actor_critic_states
from common.domains import LOCOMOTION_ENVS
from common.networks import CriticEnsemble, TanhGaussianPolicy, tanh_gaussian_sample
from datagen.rollouts import EPISODE_KEYS, concat_episodes, env_action, make_env, rollout_episodes

ENV_VERSIONS = ("v4", "v5")  # v4: D4RL-comparable returns


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


def _field(default, doc: str, **argparse_kwargs):
    """A config field whose `doc` is also its command-line help (see `option`)."""
    return dataclasses.field(default=default, metadata={"doc": doc, **argparse_kwargs})


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC's settings, declared once: each field's doc is also its --help (`option`; sac.py offers CLI_FIELDS)."""

    env: str = _field("hopper", "hopper | halfcheetah | walker2d | ant, or a gymnasium id such as Hopper-v4")
    env_version: str = _field("v4", "v4 matches D4RL; v5 returns are NOT comparable to D4RL's reference scores",
                              choices=ENV_VERSIONS)
    seed: int = _field(0, "seeds the networks, the replay sampling, the policy noise and the environments")
    total_steps: int = _field(1_000_000, "environment steps (and, after learning_starts, as many gradient updates)")
    learning_starts: int = _field(5_000, "uniformly random actions for this many first steps; updates start after")
    chunk_steps: int = _field(1_000, "env steps collected between two fused update scans (and updates per scan)")
    buffer_size: int = _field(1_000_000, "replay capacity in transitions (oldest overwritten when full)")
    batch_size: int = _field(256, "transitions per gradient step")
    hidden_dims: tuple = _field((256, 256), "hidden layer widths of the policy and of each critic (ReLU)")
    actor_lr: float = _field(3e-4, "Adam learning rate of the policy")
    critic_lr: float = _field(3e-4, "Adam learning rate of the twin critics")
    alpha_lr: float = _field(3e-4, "Adam learning rate of log(alpha)")
    discount: float = _field(0.99, "discount factor gamma")
    tau: float = _field(5e-3, "soft target update rate")
    init_alpha: float = _field(1.0, "initial entropy temperature")
    eval_every: int = _field(5_000, "environment steps between evaluations (a multiple of chunk_steps)")
    eval_episodes: int = _field(5, "evaluation episodes (stochastic policy) per evaluation")
    stop_return: float | None = _field(None, "stop once an evaluation's mean return reaches this (None: never)")

    @property
    def env_id(self) -> str:
        return env_id_of(self.env, self.env_version)


def env_id_of(env: str, version: str = "v4") -> str:
    """'hopper' -> 'Hopper-v4'; a full gymnasium id is returned unchanged."""
    if "-v" in env:
        return env
    if env not in LOCOMOTION_ENVS:
        raise ValueError(f"unknown env '{env}': use one of {', '.join(LOCOMOTION_ENVS)} or a gymnasium id")
    if version not in ENV_VERSIONS:
        raise ValueError(f"unknown env version '{version}': use v4 (D4RL-comparable) or v5")
    return LOCOMOTION_ENVS[env].removesuffix("-v4") + f"-{version}"


# ------------------------------------------------------------------------------------------------
# State
# ------------------------------------------------------------------------------------------------


class SACState(NamedTuple):
    actor: TrainState
    critic: TrainState
    critic_target: dict
    log_alpha: TrainState
    rng: jax.Array
    step: jax.Array


class ReplayBuffer(NamedTuple):
    """Device-resident ring buffer; `size` counts the filled rows, `ptr` is where the next row goes."""

    observations: jax.Array
    actions: jax.Array
    rewards: jax.Array
    next_observations: jax.Array
    dones: jax.Array
    size: jax.Array
    ptr: jax.Array


def empty_buffer(capacity: int, obs_dim: int, act_dim: int) -> ReplayBuffer:
    z = lambda *shape: jnp.zeros(shape, jnp.float32)  # noqa: E731
    return ReplayBuffer(z(capacity, obs_dim), z(capacity, act_dim), z(capacity), z(capacity, obs_dim), z(capacity),
                        jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def buffer_add(buf: ReplayBuffer, obs, actions, rewards, next_obs, dones) -> ReplayBuffer:
    """Writes a chunk of rows at `ptr` (wrapping around)."""
    capacity = buf.rewards.shape[0]
    idx = (buf.ptr + jnp.arange(rewards.shape[0])) % capacity
    return ReplayBuffer(
        buf.observations.at[idx].set(obs), buf.actions.at[idx].set(actions), buf.rewards.at[idx].set(rewards),
        buf.next_observations.at[idx].set(next_obs), buf.dones.at[idx].set(dones),
        jnp.minimum(buf.size + rewards.shape[0], capacity), (buf.ptr + rewards.shape[0]) % capacity,
    )


# ------------------------------------------------------------------------------------------------
# Losses
# ------------------------------------------------------------------------------------------------


def soft_td_target(rewards, dones, next_q, next_log_prob, alpha, discount):
    """y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))  (next_q: (num_critics, B))."""
    return rewards + discount * (1.0 - dones) * (jnp.min(next_q, axis=0) - alpha * next_log_prob)


def critic_loss(q_values, target):
    """L_Q = sum_i mean_B (Q_i(s, a) - y)^2."""
    return jnp.sum(jnp.mean((q_values - jax.lax.stop_gradient(target)) ** 2, axis=-1))


def actor_loss(q_values, log_prob, alpha):
    """L_pi = mean_B (alpha log pi(a|s) - min_i Q_i(s, a))."""
    return jnp.mean(alpha * log_prob - jnp.min(q_values, axis=0))


def entropy_temperature_loss(params, log_prob, target_entropy):
    """L_alpha = -mean_B log_alpha (log pi(a|s) + H_target)."""
    return -jnp.mean(params["log_alpha"] * jax.lax.stop_gradient(log_prob + target_entropy))


# ------------------------------------------------------------------------------------------------
# Agent: init, fused update, policy
# ------------------------------------------------------------------------------------------------


class SACFunctions(NamedTuple):
    init: Callable  # (rng) -> SACState
    update: Callable  # (state, buffer) -> (state, metrics): chunk_steps updates in one scan
    add: Callable  # (buffer, obs, actions, rewards, next_obs, dones) -> buffer (jitted)
    sample_actions: Callable  # (actor_params, obs (n, obs_dim), rng) -> actions (n, act_dim) in (-1, 1)
    mean_actions: Callable  # (actor_params, obs) -> tanh(mean) (deterministic)
    actor_net: TanhGaussianPolicy


def make_sac(config: SACConfig, obs_dim: int, act_dim: int) -> SACFunctions:
    actor_net = TanhGaussianPolicy(act_dim, tuple(config.hidden_dims))
    critic_net = CriticEnsemble(2, tuple(config.hidden_dims))
    target_entropy = -float(act_dim)

    def init(rng):
        rng, actor, critic = actor_critic_states(rng, actor_net, critic_net, obs_dim, act_dim, config.actor_lr,
                                                 config.critic_lr)
        log_alpha0 = {"log_alpha": jnp.log(jnp.asarray(config.init_alpha, jnp.float32))}
        log_alpha = TrainState.create(apply_fn=None, params=log_alpha0, tx=optax.adam(config.alpha_lr))
        return SACState(actor, critic, critic.params, log_alpha, rng, jnp.zeros((), jnp.int32))

    def update_step(state: SACState, buf: ReplayBuffer):
        rng, batch_key, next_key, pi_key = jax.random.split(state.rng, 4)
        idx = jax.random.randint(batch_key, (config.batch_size,), 0, buf.size)
        obs, actions, rewards = buf.observations[idx], buf.actions[idx], buf.rewards[idx]
        next_obs, dones = buf.next_observations[idx], buf.dones[idx]
        alpha = jnp.exp(state.log_alpha.params["log_alpha"])

        next_actions, next_log_prob = tanh_gaussian_sample(*actor_net.apply(state.actor.params, next_obs), next_key)
        next_q = critic_net.apply(state.critic_target, next_obs, next_actions)
        target = soft_td_target(rewards, dones, next_q, next_log_prob, alpha, config.discount)

        def critic_loss_fn(params):
            q = critic_net.apply(params, obs, actions)
            return critic_loss(q, target), q

        (q_loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic.params)
        critic = state.critic.apply_gradients(grads=grads)

        def actor_loss_fn(params):
            new_actions, log_prob = tanh_gaussian_sample(*actor_net.apply(params, obs), pi_key)
            return actor_loss(critic_net.apply(critic.params, obs, new_actions), log_prob, alpha), log_prob

        (pi_loss, log_prob), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor.params)
        actor = state.actor.apply_gradients(grads=grads)

        a_loss, grads = jax.value_and_grad(entropy_temperature_loss)(state.log_alpha.params, log_prob, target_entropy)
        log_alpha = state.log_alpha.apply_gradients(grads=grads)

        state = SACState(actor, critic, optax.incremental_update(critic.params, state.critic_target, config.tau),
                         log_alpha, rng, state.step + 1)
        metrics = {"critic_loss": q_loss, "actor_loss": pi_loss, "alpha_loss": a_loss, "alpha": alpha,
                   "q_mean": jnp.mean(q), "entropy": -jnp.mean(log_prob)}
        return state, metrics

    @jax.jit
    def update(state: SACState, buf: ReplayBuffer):
        state, metrics = jax.lax.scan(lambda s, _: update_step(s, buf), state, None, length=config.chunk_steps)
        return state, jax.tree.map(jnp.mean, metrics)

    @jax.jit
    def sample_actions(actor_params, obs, rng):
        actions, _ = tanh_gaussian_sample(*actor_net.apply(actor_params, obs), rng)
        return actions

    @jax.jit
    def mean_actions(actor_params, obs):
        return jnp.tanh(actor_net.apply(actor_params, obs)[0])

    return SACFunctions(init, update, jax.jit(buffer_add, donate_argnums=0), sample_actions, mean_actions, actor_net)


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------


def evaluate(env_id: str, fns: SACFunctions, actor_params, episodes: int, seed: int, stochastic: bool = True):
    """Returns of `episodes` complete episodes of the policy (stochastic by default)."""
    if stochastic:
        act = lambda obs, key: fns.sample_actions(actor_params, obs, key)  # noqa: E731
    else:
        act = lambda obs, key: fns.mean_actions(actor_params, obs)  # noqa: E731
    eps = rollout_episodes(env_id, act, seed, num_envs=min(episodes, 10), num_episodes=episodes)
    return np.array([ep["rewards"].sum() for ep in eps])


# ------------------------------------------------------------------------------------------------
# The training loop (host collects, device updates)
# ------------------------------------------------------------------------------------------------


class _StopRequest:
    """SIGINT/SIGTERM during training end it after the current chunk (outputs are still written)."""

    def __init__(self):
        import signal
        import threading

        self.requested = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._request)

    def _request(self, signum, frame):
        self.requested = True

    def restore(self):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class SACResult(NamedTuple):
    state: SACState
    fns: SACFunctions
    evaluations: list  # [{"step", "return_mean", "return_std", "wall_s"}]
    replay: dict  # every env step in order: D4RL-layout rows with next_observations
    steps: int  # environment steps taken
    stopped_early: bool  # stop_return was reached


def train(config: SACConfig, snapshot_dir: str | Path | None = None, log: Callable[[str], None] = print) -> SACResult:
    """Runs SAC; evaluates every `eval_every` steps; optionally saves a policy snapshot per evaluation."""
    if config.eval_every % config.chunk_steps or config.learning_starts % config.chunk_steps:
        raise ValueError("eval_every and learning_starts must be multiples of chunk_steps")
    env_id = config.env_id
    env = make_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    fns = make_sac(config, obs_dim, act_dim)
    rng = jax.random.PRNGKey(config.seed)
    rng, init_key, act_key = jax.random.split(rng, 3)
    state = fns.init(init_key)
    buf = empty_buffer(min(config.buffer_size, config.total_steps), obs_dim, act_dim)
    explore = np.random.default_rng(config.seed)
    if snapshot_dir is not None:
        snapshot_dir = Path(snapshot_dir)
        snapshot_dir.mkdir(parents=True, exist_ok=True)

    rows = {k: [] for k in EPISODE_KEYS}
    evaluations = []
    interrupted = _StopRequest()
    obs, _ = env.reset(seed=config.seed)
    episodes_started = 1
    start = time.time()
    step, stopped = 0, False
    try:
        while step < config.total_steps and not stopped and not interrupted.requested:
            chunk = {k: [] for k in EPISODE_KEYS}
            for _ in range(config.chunk_steps):
                if step < config.learning_starts:
                    action = explore.uniform(-1.0, 1.0, act_dim).astype(np.float32)
                else:
                    act_key, key = jax.random.split(act_key)
                    action = np.asarray(fns.sample_actions(state.actor.params, obs[None].astype(np.float32), key))[0]
                next_obs, reward, terminated, truncated, _ = env.step(env_action(env, action))
                row = (obs, action, reward, terminated, truncated and not terminated, next_obs)
                for k, v in zip(EPISODE_KEYS, row):
                    chunk[k].append(v)
                obs = next_obs
                step += 1
                if terminated or truncated:
                    obs, _ = env.reset(seed=config.seed + episodes_started * 7919)
                    episodes_started += 1
            arrays = concat_episodes([{k: np.asarray(v) for k, v in chunk.items()}])
            for k in EPISODE_KEYS:
                rows[k].append(arrays[k])
            buf = fns.add(buf, arrays["observations"], arrays["actions"], arrays["rewards"],
                          arrays["next_observations"], arrays["terminals"].astype(np.float32))
            metrics = None
            if step > config.learning_starts:
                state, metrics = fns.update(state, buf)
            if step % config.eval_every == 0:
                returns = evaluate(env_id, fns, state.actor.params, config.eval_episodes,
                                   seed=10_000 + config.seed + step)
                record = {"step": step, "return_mean": float(returns.mean()), "return_std": float(returns.std()),
                          "wall_s": round(time.time() - start, 1)}
                if metrics is not None:
                    record.update({k: float(v) for k, v in metrics.items()})
                evaluations.append(record)
                sps = step / (time.time() - start)
                extra = f" alpha {record['alpha']:.3f} q {record['q_mean']:.1f}" if metrics is not None else ""
                log(f"[sac {env_id} seed {config.seed}] step {step:>8d}/{config.total_steps}  return "
                    f"{record['return_mean']:8.1f} +- {record['return_std']:6.1f}{extra}  {sps:6.1f} steps/s  "
                    f"{record['wall_s']:.0f}s")
                if snapshot_dir is not None:
                    save_policy(snapshot_dir / f"policy_step{step:08d}.msgpack", state.actor.params, record, config)
                if config.stop_return is not None and record["return_mean"] >= config.stop_return:
                    stopped = True
    finally:
        env.close()
        interrupted.restore()
    if interrupted.requested:
        log(f"[sac {env_id}] stopped on request at step {step}")
    replay = {k: np.concatenate(v) for k, v in rows.items()}
    return SACResult(state, fns, evaluations, replay, step, stopped)


# ------------------------------------------------------------------------------------------------
# Snapshots
# ------------------------------------------------------------------------------------------------


def save_policy(path: str | Path, actor_params, record: dict, config: SACConfig) -> None:
    """Writes the policy parameters (flax msgpack) and, next to them, a .json with the measured return."""
    path = Path(path)
    path.write_bytes(flax.serialization.to_bytes(actor_params))
    meta = {"env_id": config.env_id, "config": dataclasses.asdict(config), **record}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=1))


def load_policy(path: str | Path, obs_dim: int, act_dim: int, hidden_dims=(256, 256)):
    """Reads a snapshot written by `save_policy`: (actor params, its .json record)."""
    path = Path(path)
    net = TanhGaussianPolicy(act_dim, tuple(hidden_dims))
    template = net.init(jax.random.PRNGKey(0), jnp.zeros((1, obs_dim)))
    params = flax.serialization.from_bytes(template, path.read_bytes())
    return params, json.loads(path.with_suffix(".json").read_text())


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


# The config fields that are command-line options of this file (the others keep their defaults).
CLI_FIELDS = ("env", "env_version", "seed", "total_steps", "learning_starts", "chunk_steps", "eval_every",
              "eval_episodes", "stop_return")


def option(name: str) -> dict:
    """argparse keywords of SACConfig field `name`: its type, default, help and any other keywords it declares."""
    field = {f.name: f for f in dataclasses.fields(SACConfig)}[name]
    hint = typing.get_type_hints(SACConfig)[name]
    value_type = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
    extra = {k: v for k, v in field.metadata.items() if k != "doc"}
    return {"type": value_type, "default": field.default, "help": field.metadata["doc"], **extra}


def parse_args(argv=None) -> tuple[SACConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in CLI_FIELDS:
        p.add_argument("--" + name.replace("_", "-"), **option(name))
    p.add_argument("--out", default=None, help="directory for policy snapshots, evals.json and replay.npz")
    p.add_argument("--save-replay", action="store_true", help="also write the replay buffer (out/replay.npz)")
    args = p.parse_args(argv)
    return SACConfig(**{name: getattr(args, name) for name in CLI_FIELDS}), args


def main(argv=None) -> int:
    try:
        config, args = parse_args(argv)
        config.env_id  # noqa: B018  (validates env and version)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else None
    result = train(config, snapshot_dir=out / "snapshots" if out else None, log=lambda s: print(s, flush=True))
    if out:
        (out / "evals.json").write_text(json.dumps(result.evaluations, indent=1))
        if args.save_replay:
            np.savez_compressed(out / "replay.npz", **result.replay)
    return 0


if __name__ == "__main__":
    sys.exit(main())
