"""Environments and rollouts of the dataset generator: episodes of a policy in several envs stepped side by side.

`rollout_episodes` is a pure function of its arguments (env seeds from `seed`), so that a dataset is the same file
every time it is generated; `concat_episodes` lays episodes out as D4RL rows.
"""

from __future__ import annotations

import warnings
from typing import Callable

import gymnasium as gym
import jax
import numpy as np

from common.evaluation import to_env_action


def make_env(env_id: str) -> gym.Env:
    """The gymnasium env, its version warnings silenced (v4 is chosen on purpose: D4RL's scores apply to it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gym.make(env_id)


def env_action(env, action: np.ndarray) -> np.ndarray:
    """A policy action in [-1, 1] in the env's action box (float32, as the env steps it)."""
    space = env.action_space
    return to_env_action(np.asarray(action, np.float64), space.low.astype(np.float64),
                         space.high.astype(np.float64)).astype(np.float32)


EPISODE_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations")


def rollout_episodes(env_id: str, act: Callable, seed: int, num_envs: int = 10, num_episodes: int | None = None,
                     min_transitions: int | None = None) -> list[dict]:
    """Complete episodes of `act(obs_batch, rng) -> actions in [-1, 1]` in `num_envs` envs stepped together.

    Stops once `num_episodes` episodes, or episodes totalling at least `min_transitions` rows, are complete.
    Episodes are returned in order of completion (ties by env index); env i's k-th episode is reset with
    seed `seed + i + k * num_envs`, so the result is a pure function of the arguments.
    """
    if (num_episodes is None) == (min_transitions is None):
        raise ValueError("give exactly one of num_episodes and min_transitions")
    envs = [make_env(env_id) for _ in range(num_envs)]
    counts = [0] * num_envs
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    current = [{k: [] for k in EPISODE_KEYS} for _ in range(num_envs)]
    done_episodes: list[dict] = []
    rng = jax.random.PRNGKey(seed)
    collected = 0

    def finished() -> bool:
        return (len(done_episodes) >= num_episodes) if num_episodes is not None else collected >= min_transitions

    while not finished():
        rng, key = jax.random.split(rng)
        actions = np.asarray(act(np.stack(obs).astype(np.float32), key))
        for i, env in enumerate(envs):
            next_obs, reward, terminated, truncated, _ = env.step(env_action(env, actions[i]))
            ep = current[i]
            ep["observations"].append(obs[i])
            ep["actions"].append(actions[i])
            ep["rewards"].append(reward)
            ep["terminals"].append(terminated)
            ep["timeouts"].append(truncated and not terminated)
            ep["next_observations"].append(next_obs)
            obs[i] = next_obs
            if terminated or truncated:
                episode = {k: np.asarray(v) for k, v in ep.items()}
                done_episodes.append(episode)
                collected += len(episode["rewards"])
                counts[i] += 1
                obs[i] = env.reset(seed=seed + i + counts[i] * num_envs)[0]
                current[i] = {k: [] for k in EPISODE_KEYS}
                if finished():
                    break
    for env in envs:
        env.close()
    return done_episodes if num_episodes is None else done_episodes[:num_episodes]


def concat_episodes(episodes: list[dict]) -> dict:
    """Episodes -> D4RL-layout rows (float32 arrays, bool terminals/timeouts)."""
    out = {}
    for key in EPISODE_KEYS:
        values = np.concatenate([ep[key] for ep in episodes])
        out[key] = values.astype(bool) if key in ("terminals", "timeouts") else values.astype(np.float32)
    return out
