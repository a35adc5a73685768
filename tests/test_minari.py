"""minari:<id> datasets: built offline with Minari's own DataCollector, read back through load_dataset."""

from __future__ import annotations

import numpy as np
import pytest

from common.datasets import DatasetError, load_dataset

gym = pytest.importorskip("gymnasium")
minari = pytest.importorskip("minari")

DATASET_ID = "test/mountaincar/tiny-v0"


def _collect(monkeypatch, tmp_path, env_id="MountainCarContinuous-v0", dataset_id=DATASET_ID,
             max_steps=(40, 25, 60)):
    """Records random-action episodes (episode i cut after max_steps[i] steps) with Minari's DataCollector."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = minari.DataCollector(gym.make(env_id, max_episode_steps=max(max_steps)))
    env.action_space.seed(0)
    recorded = []
    for i in range(len(max_steps)):
        obs, _ = env.reset(seed=i)
        ep = {"obs": [obs], "actions": [], "rewards": []}
        for _ in range(max_steps[i]):
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            ep["obs"].append(obs)
            ep["actions"].append(action)
            ep["rewards"].append(reward)
            if terminated or truncated:
                break
        if not (terminated or truncated):  # cut short here: the collector needs an episode end
            env.reset(seed=100 + i)
        recorded.append({k: np.asarray(v, np.float32) for k, v in ep.items()})
    env.create_dataset(dataset_id, algorithm_name="random", author="tests", description="test data")
    env.close()
    return recorded


def test_minari_dataset_flattens_episodes(monkeypatch, tmp_path):
    recorded = _collect(monkeypatch, tmp_path)
    data = load_dataset(f"minari:{DATASET_ID}")
    t = data.transitions
    lengths = [len(ep["rewards"]) for ep in recorded]
    assert t.rewards.shape == (sum(lengths),)  # truncated steps keep their real next observation
    assert t.observations.shape == (sum(lengths), 2) and t.actions.shape == (sum(lengths), 1)
    np.testing.assert_allclose(t.observations, np.concatenate([ep["obs"][:-1] for ep in recorded]), rtol=1e-6)
    np.testing.assert_allclose(t.next_observations, np.concatenate([ep["obs"][1:] for ep in recorded]), rtol=1e-6)
    np.testing.assert_allclose(t.actions, np.concatenate([ep["actions"] for ep in recorded]))
    np.testing.assert_allclose(t.rewards, np.concatenate([ep["rewards"] for ep in recorded]), rtol=1e-6)
    assert t.dones.sum() == 0  # random actions never reach the goal: no episode terminates
    np.testing.assert_allclose(data.episode_returns, [ep["rewards"].sum() for ep in recorded], rtol=1e-5)
    assert data.metadata["timeouts"] == len(recorded)
    assert data.env_id == "MountainCarContinuous-v0"
    assert data.stats["episodes"] == 3


def test_minari_terminations_become_dones(monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    env = minari.DataCollector(gym.make("CartPole-v1"))
    env.action_space.seed(1)
    lengths = []
    for i in range(4):
        env.reset(seed=i)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            steps += 1
            done = terminated or truncated
        lengths.append(steps)
    env.create_dataset("test/cartpole/tiny-v0", algorithm_name="random", author="tests", description="test data")
    env.close()
    data = load_dataset("minari:test/cartpole/tiny-v0")
    dones = data.transitions.dones
    ends = np.cumsum(lengths) - 1
    assert dones.shape == (sum(lengths),)
    np.testing.assert_array_equal(np.flatnonzero(dones), ends)  # each random episode ends by falling over
    np.testing.assert_allclose(data.episode_returns, lengths)


def test_minari_actions_outside_unit_box_are_rejected(monkeypatch, tmp_path):
    _collect(monkeypatch, tmp_path, env_id="Pendulum-v1", dataset_id="test/pendulum/tiny-v0", max_steps=(30,))
    with pytest.raises(DatasetError, match=r"actions must lie in \[-1, 1\]"):
        load_dataset("minari:test/pendulum/tiny-v0")  # Pendulum's torques lie in [-2, 2]


def test_missing_minari_dataset_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    with pytest.raises(DatasetError) as info:
        load_dataset("minari:nobody/nothing-v0")
    message = str(info.value)
    assert "not found" in message and "\n" not in message
