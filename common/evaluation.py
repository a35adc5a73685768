"""Evaluation: every episode of every run at once, one jitted call of the vmapped policy per env step.

Runs (seeds x hyperparameter values) are the leading axis of the policy parameters; each run gets
`episodes` gymnasium envs. Env seeds depend only on (seed, evaluation round, the member's place in its run,
episode), so a resumed run evaluates exactly as an uninterrupted one, and a member evaluated alone exactly as
in the evaluation of all.

What is evaluated, and how it is scored, is one `EvalSetup` per dataset: `common.domains.setup_for_dataset`
picks it (D4RL protocol for D4RL files, the dataset's own env spec and reference scores for Minari, the env id
for generated data or `--config.env`); `make_env` here builds it.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import jax
import numpy as np

from common import domains
from common.domains import EvalSetup
from common.errors import DatasetError

# ----------------------------------------------------------------------------------------------
# Building the env
# ----------------------------------------------------------------------------------------------


def _needs_robotics(env_id: str) -> bool:
    return domains.domain_of_env(env_id) in ("adroit", "kitchen") or env_id.startswith(("AntMaze_", "PointMaze"))


def _make_base(setup: EvalSetup, render: dict) -> gym.Env:
    from common import d4rl_envs  # registers AntMazeD4RL_*

    if _needs_robotics(setup.env_id):
        try:
            d4rl_envs.import_gymnasium_robotics()
        except ImportError:
            raise DatasetError(f"evaluation env '{setup.env_id}' needs gymnasium-robotics "
                               "(pip install gymnasium-robotics==1.4.2)") from None
    if setup.minari_id:
        import minari

        if _robotics_installed():  # Adroit/Kitchen/AntMaze specs: registered, and Kitchen shimmed for mujoco 4
            d4rl_envs.import_gymnasium_robotics()
        data = minari.load_dataset(setup.minari_id, download=False)
        return data.recover_environment(eval_env=setup.env_spec_source == "eval_env_spec", **render)
    kwargs = {**setup.env_kwargs, **render}
    if setup.horizon:
        kwargs["max_episode_steps"] = setup.horizon
    with warnings.catch_warnings():  # v4 is chosen on purpose: D4RL's reference scores apply to it
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        warnings.filterwarnings("ignore", message=".*reward functions were updated.*")
        return gym.make(setup.env_id, **kwargs)


def _robotics_installed() -> bool:
    try:
        import gymnasium_robotics  # noqa: F401
    except ImportError:
        return False
    return True


def make_env(setup: EvalSetup | str, **render) -> gym.Env:
    """The evaluation env of a setup, with its reward fix and observation adapter; DatasetError if it can't be built.

    `render` (e.g. render_mode="rgb_array", width, height) goes to the env's constructor."""
    from common import d4rl_envs

    if isinstance(setup, str):
        setup = domains.setup_for_env(setup, "config.env", domains.locomotion_reference(setup), "")
    if setup.reward_fix == "d4rl_adroit_sign":
        import gymnasium_robotics

        if gymnasium_robotics.__version__ not in d4rl_envs.SIGN_BUG_VERSIONS:
            raise DatasetError(f"gymnasium-robotics {gymnasium_robotics.__version__}: the Adroit {setup.task} reward "
                               f"is only checked against D4RL's for {', '.join(d4rl_envs.SIGN_BUG_VERSIONS)}; "
                               "install gymnasium-robotics==1.4.2")
    d4rl_envs.route_mujoco_warnings()
    try:
        env = _make_base(setup, render)
    except DatasetError:
        raise
    except Exception as e:  # gymnasium raises several types for unknown or unavailable ids
        reason = str(e).strip().splitlines()[0] if str(e).strip() else f"{type(e).__name__} (no message)"
        raise DatasetError(f"cannot make evaluation env '{setup.env_id}': {reason}") from None
    if setup.reward_fix == "d4rl_adroit_sign":
        env = d4rl_envs.D4RLAdroitReward(env, setup.task)
    if setup.adapter == "kitchen_d4rl":
        env = d4rl_envs.KitchenD4RL(env, setup.env_kwargs["tasks_to_complete"])
    elif setup.adapter == "flatten_dict" or isinstance(env.observation_space, gym.spaces.Dict):
        env = d4rl_envs.FlattenSorted(env)
    elif setup.adapter == "pad_ant_111":
        env = d4rl_envs.PadObservation(env, domains.D4RL_ANT_OBS_DIM)
    if not isinstance(env.observation_space, gym.spaces.Box) or not isinstance(env.action_space, gym.spaces.Box):
        raise DatasetError(f"evaluation env '{setup.env_id}' must have Box observations and actions")
    return env


def check_env_matches(env: gym.Env, env_id: str, obs_dim: int, act_dim: int) -> None:
    env_obs, env_act = env.observation_space.shape[0], env.action_space.shape[0]
    if env_obs != obs_dim:
        raise DatasetError(f"observation size {obs_dim} of the dataset differs from env '{env_id}' ({env_obs})")
    if env_act != act_dim:
        raise DatasetError(f"action size {act_dim} of the dataset differs from env '{env_id}' ({env_act})")


def episode_seed(seed: int, round_index: int, episode: int) -> int:
    """The env seed of one evaluation episode: a function of (seed, evaluation round, episode) only, so that a
    resumed run, a reloaded run and a film evaluate the same episodes. In an Evaluator, member m's episode e is
    episode m * episodes + e (m: the member's place in the run's member list, whoever is evaluated with it)."""
    return int(seed * 1_000_003 + round_index * 10_007 + episode)


def to_env_action(actions, low, high) -> np.ndarray:
    """Policy actions in [-1, 1] -> the env's box: low + (clip(a, -1, 1) + 1) (high - low) / 2 (only clipped when
    the box is [-1, 1] already)."""
    actions = np.clip(actions, -1.0, 1.0)
    if np.allclose(low, -1.0) and np.allclose(high, 1.0):
        return actions
    return low + (actions + 1.0) * 0.5 * (high - low)


# ----------------------------------------------------------------------------------------------
# Evaluator
# ----------------------------------------------------------------------------------------------


class Evaluator:
    """evaluate(policy_params, round_index) -> episode returns of shape (num_runs, episodes).

    `members`: the place of each evaluated run in its run's member list (default: all, in order), which picks its
    episodes' env seeds: member m's episode e is episode_seed(seed, round, m * episodes + e)."""

    def __init__(self, setup: EvalSetup | str, act_fn, num_runs: int, episodes: int, obs_dim: int, act_dim: int,
                 seed: int, members=None):
        if isinstance(setup, str):
            setup = domains.setup_for_env(setup, "config.env", domains.locomotion_reference(setup), "", obs_dim)
        self.setup, self.env_id = setup, setup.env_id
        self.num_runs, self.episodes, self.seed = num_runs, episodes, seed
        members = list(range(num_runs)) if members is None else [int(m) for m in members]
        if len(members) != num_runs:
            raise ValueError(f"Evaluator: {len(members)} member places for {num_runs} runs")
        self.episode_indices = [m * episodes + e for m in members for e in range(episodes)]
        self.envs = [make_env(setup)]
        check_env_matches(self.envs[0], self.env_id, obs_dim, act_dim)
        self.envs += [make_env(setup) for _ in range(num_runs * episodes - 1)]
        space = self.envs[0].action_space
        self.low, self.high = space.low.astype(np.float64), space.high.astype(np.float64)
        # Defined once: params (runs, ...), obs (runs, episodes, obs_dim) -> actions (runs, episodes, act_dim).
        self._act = jax.jit(jax.vmap(act_fn))

    def __call__(self, policy_params, round_index: int) -> np.ndarray:
        n = len(self.envs)
        obs = np.stack([
            np.asarray(env.reset(seed=episode_seed(self.seed, round_index, i))[0], np.float32)
            for i, env in zip(self.episode_indices, self.envs)
        ])
        returns = np.zeros(n)
        alive = np.ones(n, bool)
        while alive.any():
            actions = np.asarray(self._act(policy_params, obs.reshape(self.num_runs, self.episodes, -1)))
            actions = to_env_action(actions.reshape(n, -1).astype(np.float64), self.low, self.high)
            for i in np.flatnonzero(alive):
                next_obs, reward, terminated, truncated, _ = self.envs[i].step(actions[i])
                returns[i] += reward
                obs[i] = np.asarray(next_obs, np.float32)
                alive[i] = not (terminated or truncated)
        return returns.reshape(self.num_runs, self.episodes)

    def normalized(self, returns):
        return self.setup.normalized(returns)

    def close(self):
        for env in self.envs:
            env.close()
