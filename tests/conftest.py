"""Shared fixtures: small D4RL-layout files made on the fly (no download, no shipped data needed)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# One XLA compilation cache per test session, shared by the in-process tests and by every CLI run they start (the
# environment passes on): a resumed or repeated run loads the executables of the first instead of compiling them
# again. A cached executable is the same program, so every number stays the same; the session's cache is removed
# at its end. A cache directory set outside is used as it is.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _CACHE = tempfile.mkdtemp(prefix="jax-test-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ.update(JAX_COMPILATION_CACHE_DIR=_CACHE, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def write_hdf5(path: Path, raw: dict, attrs: dict | None = None) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in raw.items():
            f.create_dataset(key, data=value)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def rollout_raw(env_id: str, rows: int, seed: int = 0, policy=None, max_episode_steps: int = 1000) -> dict:
    """D4RL-layout rows from a gymnasium env: random actions unless `policy(obs, rng) -> action` is given."""
    import warnings

    import gymnasium as gym

    with warnings.catch_warnings():  # v4 on purpose: D4RL's reference scores apply to it
        warnings.simplefilter("ignore")
        env = gym.make(env_id, max_episode_steps=max_episode_steps)
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    for _ in range(rows):
        action = policy(obs, rng) if policy else rng.uniform(-1, 1, env.action_space.shape)
        action = np.clip(action, -1, 1).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(out, (obs, action, reward, terminated, truncated and not terminated)):
            out[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    raw = {k: np.asarray(v) for k, v in out.items()}
    raw["observations"] = raw["observations"].astype(np.float32)
    raw["rewards"] = raw["rewards"].astype(np.float32)
    return raw


def rollout(setup, rows, episode_len, seed=0):
    """D4RL-layout rows played by random actions in the evaluation env of `setup` (common.domains.EvalSetup),
    a timeout every episode_len rows: tiny data in any domain's own layout (AntMaze, Adroit, Kitchen, ...)."""
    import warnings

    from common import evaluation

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = evaluation.make_env(setup)
    rng = np.random.default_rng(seed)
    out = {k: [] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    obs, _ = env.reset(seed=seed)
    steps = 0
    for _ in range(rows):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        steps += 1
        timeout = (truncated or steps == episode_len) and not terminated
        for key, value in zip(out, (obs, action, reward, terminated, timeout)):
            out[key].append(value)
        if terminated or timeout:
            obs, steps = env.reset()[0], 0
        else:
            obs = next_obs
    env.close()
    raw = {k: np.asarray(v) for k, v in out.items()}
    raw["observations"] = raw["observations"].astype(np.float32)
    raw["rewards"] = raw["rewards"].astype(np.float32)
    return raw


def write_d4rl(directory, name, raw):
    """`raw` as D4RL dataset `name`, under the file name d4rl caches it by (no generator metadata, as d4rl's)."""
    from common import datasets, domains

    path = directory / domains.D4RL_DATASETS[name]["file"]
    datasets.write_hdf5(path, raw)
    return path


@pytest.fixture(scope="session")
def hopper_random_file(tmp_path_factory) -> Path:
    """2,000 rows of random Hopper-v4 play (many short episodes ending in terminals)."""
    path = tmp_path_factory.mktemp("data") / "hopper-random-tiny.hdf5"
    return write_hdf5(path, rollout_raw("Hopper-v4", 2000), {"env_id": "Hopper-v4"})


def noisy_pendulum_controller(obs, rng):
    """A competent PD balance controller with heavy action noise (episodes last ~300 of 1000 steps)."""
    force = np.array([1.0, 20.0, 1.0, 2.0]) @ obs + 2.0 * rng.normal()
    return np.array([np.clip(force, -3, 3) / 3.0])  # dataset actions in [-1, 1]; the env range is [-3, 3]


@pytest.fixture(scope="session")
def pendulum_noisy_file(tmp_path_factory) -> Path:
    """20,000 rows of InvertedPendulum-v4 from the noisy PD controller: data that an offline method can beat."""
    path = tmp_path_factory.mktemp("data") / "pendulum-noisy.hdf5"
    raw = rollout_raw("InvertedPendulum-v4", 20_000, seed=0, policy=noisy_pendulum_controller)
    return write_hdf5(path, raw, {"env_id": "InvertedPendulum-v4"})
