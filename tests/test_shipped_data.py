"""The datasets shipped under data/: checksums, recorded statistics, loading, and sanity of their levels."""

from __future__ import annotations

import numpy as np
import pytest

from common import datasets, domains
from datagen import make_datasets

DATA = datasets.DATA_DIR
REQUIRED = ("hopper-medium-v4", "hopper-medium-replay-v4")
SHIPPED = datasets.shipped_datasets()


def test_the_required_datasets_ship_within_the_size_budget():
    for name in REQUIRED:
        assert name in SHIPPED, f"{name} missing from {DATA}"
    other_tasks = {domains.dataset_family(n) for n in SHIPPED if not n.endswith("random-v4")} - {"hopper"}
    assert other_tasks, "no medium/medium-replay dataset of another task ships"
    total = sum(p.stat().st_size for p in DATA.iterdir() if p.is_file())
    assert total <= 30 * 2**20, f"data/ holds {total / 2**20:.1f} MiB"


def test_checksums_cover_every_file_and_match():
    sums = make_datasets.read_checksums(DATA)
    assert sorted(sums) == sorted(f"{n}.hdf5" for n in SHIPPED)
    for name, digest in sums.items():
        assert make_datasets.sha256_of(DATA / name) == digest, name


def test_readme_describes_every_dataset():
    readme = (DATA / "README.md").read_text()
    for name in SHIPPED:
        assert name in readme, name


@pytest.mark.parametrize("name", SHIPPED)
def test_recorded_statistics_match_the_arrays(name):
    raw, meta = datasets.read_hdf5(DATA / f"{name}.hdf5")
    returns = datasets.episode_returns(raw, meta["max_episode_steps"])
    assert meta["transitions"] == raw["rewards"].shape[0]
    assert meta["episodes"] == returns.shape[0] and meta["terminals"] == int(raw["terminals"].sum())
    np.testing.assert_allclose(meta["episode_return_mean"], returns.mean(), rtol=1e-9)
    np.testing.assert_allclose(meta["episode_return_std"], returns.std(), rtol=1e-9)
    assert meta["format_version"] == make_datasets.FORMAT_VERSION and meta["max_episode_steps"] == 1000
    assert raw["terminals"][-1] or raw["timeouts"][-1]  # whole episodes only
    # no episode runs past 1000 steps, and every timeout falls on a 1000th step
    ends = np.flatnonzero(raw["terminals"] | raw["timeouts"])
    lengths = np.diff(np.concatenate([[-1], ends]))
    assert lengths.max() <= 1000
    np.testing.assert_array_equal(lengths[raw["timeouts"][ends]], 1000)


@pytest.mark.parametrize("name", SHIPPED)
def test_loads_by_name_with_the_env_shapes(name):
    import gymnasium as gym

    data = datasets.load_dataset(name)
    assert data.env_id == data.metadata["env_id"] and data.env_id.endswith("-v4")
    env = gym.make(data.env_id)
    assert data.stats["obs_dim"] == env.observation_space.shape[0]
    assert data.stats["act_dim"] == env.action_space.shape[0]
    env.close()


def _uniform_random_return(env_id: str, episodes: int = 3) -> float:
    """Mean return of uniform random actions (a reference for families without a shipped random set)."""
    import gymnasium as gym

    env, rng, total = gym.make(env_id), np.random.default_rng(0), 0.0
    for i in range(episodes):
        env.reset(seed=i)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
            total += reward
            done = terminated or truncated
    env.close()
    return total / episodes


@pytest.mark.parametrize("name", [n for n in SHIPPED if "-medium-v" in n])
def test_medium_returns_are_clearly_above_random(name):
    meta = datasets.read_hdf5(DATA / f"{name}.hdf5")[1]
    family = domains.dataset_family(name)
    random_name = name.replace("-medium-", "-random-")
    if random_name in SHIPPED:
        random_return = datasets.read_hdf5(DATA / f"{random_name}.hdf5")[1]["episode_return_mean"]
    else:
        random_return = _uniform_random_return(meta["env_id"])
    ref = domains.REFERENCE_RETURNS[family]
    gap = domains.normalized_score(meta["episode_return_mean"], ref) - domains.normalized_score(random_return, ref)
    assert gap > 20.0, f"{name}: medium {meta['episode_return_mean']:.0f} vs random {random_return:.0f}"


@pytest.mark.parametrize("name", [n for n in SHIPPED if "-medium-replay-" in n])
def test_medium_replay_improves_over_training(name):
    raw, meta = datasets.read_hdf5(DATA / f"{name}.hdf5")
    returns = datasets.episode_returns(raw)
    fifth = max(1, len(returns) // 5)
    assert returns[-fifth:].mean() > returns[:fifth].mean() + 100.0
    assert meta["behaviour_policy_sac_steps"] >= meta["transitions"]
