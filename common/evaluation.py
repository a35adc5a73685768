"""Evaluation: every episode of every run at once, one jitted call of the vmapped policy per env step.

Runs (seeds x hyperparameter values) are the leading axis of the policy parameters; each run gets
`episodes` gymnasium envs. Env seeds depend only on (seed, evaluation round, episode), so a resumed
run evaluates exactly as an uninterrupted one.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import jax
import numpy as np

from common.datasets import DatasetError, dataset_family, normalized_score


def make_env(env_id: str) -> gym.Env:
    try:
        with warnings.catch_warnings():  # v4 is chosen on purpose: D4RL's reference scores apply to it
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            env = gym.make(env_id)
    except Exception as e:  # gymnasium raises several types for unknown or unavailable ids
        reason = str(e).strip().splitlines()[0] if str(e).strip() else f"{type(e).__name__} (no message)"
        raise DatasetError(f"cannot make evaluation env '{env_id}': {reason}") from None
    if not isinstance(env.observation_space, gym.spaces.Box) or not isinstance(env.action_space, gym.spaces.Box):
        raise DatasetError(f"evaluation env '{env_id}' must have Box observations and actions")
    return env


def observation_padding(env_id: str, env_obs_dim: int, data_obs_dim: int) -> int:
    """Zeros appended to env observations: D4RL ant data has 111 dims (27 + zero contact forces)."""
    if dataset_family(env_id) == "ant" and env_obs_dim < data_obs_dim:
        return data_obs_dim - env_obs_dim
    return 0


def check_env_matches(env: gym.Env, env_id: str, obs_dim: int, act_dim: int) -> None:
    env_obs = env.observation_space.shape[0] + observation_padding(env_id, env.observation_space.shape[0], obs_dim)
    env_act = env.action_space.shape[0]
    if env_obs != obs_dim:
        raise DatasetError(f"observation size {obs_dim} of the dataset differs from env '{env_id}' ({env_obs})")
    if env_act != act_dim:
        raise DatasetError(f"action size {act_dim} of the dataset differs from env '{env_id}' ({env_act})")


class Evaluator:
    """evaluate(policy_params, round_index) -> episode returns of shape (num_runs, episodes)."""

    def __init__(self, env_id: str, act_fn, num_runs: int, episodes: int, obs_dim: int, act_dim: int, seed: int):
        self.env_id, self.num_runs, self.episodes, self.seed = env_id, num_runs, episodes, seed
        self.envs = [make_env(env_id) for _ in range(num_runs * episodes)]
        check_env_matches(self.envs[0], env_id, obs_dim, act_dim)
        self.pad = observation_padding(env_id, self.envs[0].observation_space.shape[0], obs_dim)
        space = self.envs[0].action_space
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)
        self.rescale = not (np.allclose(self.low, -1.0) and np.allclose(self.high, 1.0))
        # Defined once: params (runs, ...), obs (runs, episodes, obs_dim) -> actions (runs, episodes, act_dim).
        self._act = jax.jit(jax.vmap(act_fn))
        self.family = dataset_family(env_id)

    def _observe(self, obs):
        obs = np.asarray(obs, np.float32)
        return np.pad(obs, (0, self.pad)) if self.pad else obs

    def __call__(self, policy_params, round_index: int) -> np.ndarray:
        n = len(self.envs)
        obs = np.stack([
            self._observe(env.reset(seed=int(self.seed * 1_000_003 + round_index * 10_007 + i))[0])
            for i, env in enumerate(self.envs)
        ])
        returns = np.zeros(n)
        alive = np.ones(n, bool)
        while alive.any():
            actions = np.asarray(self._act(policy_params, obs.reshape(self.num_runs, self.episodes, -1)))
            actions = actions.reshape(n, -1).astype(np.float64)
            if self.rescale:
                actions = self.low + (np.clip(actions, -1, 1) + 1.0) * 0.5 * (self.high - self.low)
            for i in np.flatnonzero(alive):
                next_obs, reward, terminated, truncated, _ = self.envs[i].step(actions[i])
                returns[i] += reward
                obs[i] = self._observe(next_obs)
                alive[i] = not (terminated or truncated)
        return returns.reshape(self.num_runs, self.episodes)

    def normalized(self, returns):
        return normalized_score(self.family, returns)

    def close(self):
        for env in self.envs:
            env.close()
