"""Minari datasets from the local Minari root, flattened into the project's transition arrays.

`read("D4RL/hopper/medium-v0")` reads `$MINARI_DATASETS_PATH/<id>` (default `~/.minari/datasets/<id>`);
it never downloads. Minari stores each episode with T steps and T + 1 observations (the last is the
observation the episode ended in), so the Q-learning view is built per episode:

    s_t = obs[t], a_t, r_t, s'_t = obs[t + 1], done_t = terminations[t]     for t = 0 .. T - 1

Unlike the D4RL row layout (where a timed-out row has no successor and is dropped), a truncated step
keeps its real next observation here, so no transition is lost. Episodes end at terminations or
truncations (or at the last step, whichever comes first). Dict observations are flattened by
concatenating their entries in sorted key order (recorded as metadata["observation_keys"]); the
evaluation env's observations are flattened by the same rule (common/d4rl_envs.FlattenSorted).
The evaluation env is the dataset's eval_env_spec (else env_spec) with its kwargs and horizon, made by
Minari's `recover_environment`; scores use the dataset's ref_min_score/ref_max_score, or are n/a.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.errors import DatasetError


class MinariRows(NamedTuple):
    """A Minari dataset flattened: D4RL-layout rows, each row's real next observation, and what the loader keeps."""

    raw: dict  # observations, actions, rewards, terminals, timeouts (the D4RL layout, one row per step)
    next_observations: np.ndarray  # (N, obs_dim): obs[t + 1] of each step's own episode
    episode_returns: np.ndarray  # undiscounted return of every episode
    metadata: dict  # minari_id, observation keys, the evaluation env spec and reference scores
    path: Path  # where the dataset lies


def minari_root() -> Path:
    """Where Minari keeps local datasets (the same rule as minari's own `get_dataset_path`)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets")).expanduser()


def _flat_observations(obs, source: str) -> tuple[np.ndarray, list[str]]:
    """(T + 1, obs_dim) float32 from an array or a (nested) dict of arrays; and the keys used."""
    if isinstance(obs, dict):
        parts, keys = [], []
        for key in sorted(obs):
            flat, sub = _flat_observations(obs[key], source)
            parts.append(flat)
            keys.extend([f"{key}/{s}" for s in sub] if sub else [key])
        return np.concatenate(parts, axis=1), keys
    obs = np.asarray(obs)
    if obs.ndim < 1 or not np.issubdtype(obs.dtype, np.number):
        raise DatasetError(f"{source}: observations of type {obs.dtype} and shape {obs.shape} are not supported")
    return obs.reshape(obs.shape[0], -1).astype(np.float32), []


def evaluation_metadata(data) -> dict:
    """What evaluation needs from a Minari dataset: its eval env spec (else its env spec: id, kwargs,
    horizon) and its own reference scores (absent keys when the dataset has none)."""
    stored = data.storage.metadata
    spec, source = getattr(data, "_eval_env_spec", None), "eval_env_spec"
    if spec is None:
        spec, source = data.env_spec, "env_spec"
    found = {}
    if spec is not None:
        found.update(env_spec_source=source, env_spec_id=spec.id, env_spec_kwargs=_plain_kwargs(spec.kwargs),
                     env_spec_max_episode_steps=spec.max_episode_steps)
    for key in ("ref_min_score", "ref_max_score"):
        if stored.get(key) is not None:
            found[key] = float(stored[key])
    return found


def _plain_kwargs(kwargs: dict) -> dict:
    """Env kwargs as JSON-friendly values (maze maps and task lists stay lists)."""
    import json

    return json.loads(json.dumps(dict(kwargs or {}), default=str))


def read(dataset_id: str) -> MinariRows:
    """Reads a local Minari dataset's episodes as rows (common/datasets.py validates them and builds the Dataset);
    DatasetError if it is absent or unreadable."""
    source = f"minari:{dataset_id}"
    if not dataset_id:
        raise DatasetError("minari: no dataset id given (use minari:<namespace>/<name>-v<N>)")
    path = minari_root() / dataset_id / "data"
    if not path.is_dir():
        raise DatasetError(f"{source}: not found in the local Minari root {minari_root()} (looked for {path}; "
                           f"set MINARI_DATASETS_PATH; nothing is downloaded)")
    try:
        import minari
    except ImportError:
        raise DatasetError(f"{source}: the 'minari' package is not installed (pip install minari)") from None
    try:
        data = minari.load_dataset(dataset_id, download=False)
    except Exception as e:  # minari raises several types for unreadable datasets
        detail = str(e).splitlines()[0] if str(e) else ""
        raise DatasetError(f"{source}: cannot read ({type(e).__name__}: {detail})") from None

    obs, next_obs, actions, rewards, terminals, timeouts, returns = [], [], [], [], [], [], []
    obs_keys: list[str] = []
    for episode in data.iterate_episodes():
        steps = len(episode.rewards)
        if steps == 0:
            continue
        flat, obs_keys = _flat_observations(episode.observations, source)
        if flat.shape[0] != steps + 1:
            raise DatasetError(f"{source}: episode {episode.id} has {flat.shape[0]} observations for {steps} steps "
                               f"(expected {steps + 1})")
        term = np.asarray(episode.terminations, bool).reshape(-1)
        trunc = np.asarray(episode.truncations, bool).reshape(-1)
        trunc = trunc.copy()
        trunc[-1] |= not term[-1]  # the last step ends the episode even if neither flag was set
        obs.append(flat[:-1])
        next_obs.append(flat[1:])
        actions.append(np.asarray(episode.actions, np.float32).reshape(steps, -1))
        rewards.append(np.asarray(episode.rewards, np.float32).reshape(-1))
        terminals.append(term)
        timeouts.append(trunc & ~term)
        returns.append(float(np.sum(episode.rewards, dtype=np.float64)))
    if not rewards:
        raise DatasetError(f"{source}: the dataset has no steps")

    raw = {
        "observations": np.concatenate(obs),
        "actions": np.concatenate(actions),
        "rewards": np.concatenate(rewards),
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
    }
    metadata = {
        "minari_id": dataset_id,
        "minari_version": getattr(data.spec, "minari_version", None) if hasattr(data, "spec") else None,
        "observation_keys": obs_keys,
        "episodes": len(returns),
        "timeouts": int(raw["timeouts"].sum()),
        **evaluation_metadata(data),
    }
    return MinariRows(raw, np.concatenate(next_obs), np.asarray(returns, np.float64), metadata, path)
