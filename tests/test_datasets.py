"""The Q-learning view, episode bookkeeping, name resolution and every validation error of common/datasets.py."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_hdf5

from common import datasets, domains
from common.datasets import DatasetError


def d4rl_qlearning_reference(raw, max_episode_steps=1000):
    """d4rl.qlearning_dataset written as its row loop (terminate_on_end=False), for comparison."""
    n = raw["rewards"].shape[0]
    use_timeouts = "timeouts" in raw
    out = {"obs": [], "act": [], "next_obs": [], "rew": [], "done": []}
    episode_step = 0
    for i in range(n - 1):
        done = bool(raw["terminals"][i])
        final = bool(raw["timeouts"][i]) if use_timeouts else episode_step == max_episode_steps - 1
        if final:
            episode_step = 0
            continue
        if done:
            episode_step = 0
        out["obs"].append(raw["observations"][i])
        out["act"].append(raw["actions"][i])
        out["next_obs"].append(raw["observations"][i + 1])
        out["rew"].append(raw["rewards"][i])
        out["done"].append(done)
        episode_step += 1
    return {k: np.asarray(v) for k, v in out.items()}


def make_raw(n=10, terminals=(), timeouts=(), with_timeouts=True, obs_dim=2, act_dim=1):
    raw = {
        "observations": np.repeat(np.arange(n, dtype=np.float32)[:, None], obs_dim, axis=1),
        "actions": np.linspace(-1, 1, n * act_dim, dtype=np.float32).reshape(n, act_dim),
        "rewards": np.arange(n, dtype=np.float32) * 10,
        "terminals": np.isin(np.arange(n), terminals),
    }
    if with_timeouts:
        raw["timeouts"] = np.isin(np.arange(n), timeouts)
    return raw


def assert_view_matches_reference(raw, max_episode_steps=1000):
    view = datasets.qlearning_view(raw, max_episode_steps)
    ref = d4rl_qlearning_reference(raw, max_episode_steps)
    np.testing.assert_array_equal(view.observations, ref["obs"].reshape(-1, raw["observations"].shape[1]))
    np.testing.assert_array_equal(view.next_observations, ref["next_obs"].reshape(-1, raw["observations"].shape[1]))
    np.testing.assert_array_equal(view.actions, ref["act"].reshape(-1, raw["actions"].shape[1]))
    np.testing.assert_array_equal(view.rewards, ref["rew"])
    np.testing.assert_array_equal(view.dones, ref["done"].astype(np.float32))


def test_awkward_boundaries_by_hand():
    # terminal at 2 just before a one-row timed-out episode at 3; a one-step episode at 4; timeout on the last row.
    raw = make_raw(10, terminals=(2, 4), timeouts=(3, 9))
    view = datasets.qlearning_view(raw)
    np.testing.assert_array_equal(view.observations[:, 0], [0, 1, 2, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(view.next_observations[:, 0], [1, 2, 3, 5, 6, 7, 8, 9])
    np.testing.assert_array_equal(view.dones, [0, 0, 1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(view.rewards, [0, 10, 20, 40, 50, 60, 70, 80])
    returns = datasets.episode_returns(raw)
    np.testing.assert_allclose(returns, [0 + 10 + 20, 30, 40, 50 + 60 + 70 + 80 + 90])
    assert_view_matches_reference(raw)


def test_terminal_and_timeout_on_the_same_row_is_dropped_like_d4rl():
    raw = make_raw(8, terminals=(3,), timeouts=(3,))
    assert 3 not in datasets.qlearning_view(raw).observations[:, 0]
    assert_view_matches_reference(raw)


@pytest.mark.parametrize("seed", range(5))
def test_random_boundaries_match_the_d4rl_loop(seed):
    rng = np.random.default_rng(seed)
    n = 300
    raw = make_raw(n, terminals=np.flatnonzero(rng.random(n) < 0.05), timeouts=np.flatnonzero(rng.random(n) < 0.05))
    assert_view_matches_reference(raw)


@pytest.mark.parametrize("seed", range(3))
def test_without_timeouts_an_episode_is_cut_every_max_episode_steps(seed):
    rng = np.random.default_rng(seed)
    n = 200
    raw = make_raw(n, terminals=np.flatnonzero(rng.random(n) < 0.03), with_timeouts=False)
    assert_view_matches_reference(raw, max_episode_steps=7)
    ends = datasets.episode_ends(raw, 7)
    lengths = np.diff(np.concatenate([[-1], np.flatnonzero(ends)]))
    assert lengths.max() <= 7


def test_stats_and_file_round_trip(tmp_path):
    raw = make_raw(10, terminals=(2, 4), timeouts=(3, 9))
    path = write_hdf5(tmp_path / "hopper-tiny.hdf5", raw, {"env_id": "Hopper-v4"})
    ds = datasets.load_dataset(str(path))
    assert ds.env_id == "Hopper-v4"
    assert ds.stats == {"transitions": 8, "terminals": 2, "episodes": 4, "obs_dim": 2, "act_dim": 1}
    np.savez(tmp_path / "same.npz", **raw)
    assert datasets.load_dataset(str(tmp_path / "same.npz")).stats == ds.stats


def test_d4rl_names_resolve_to_the_d4rl_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    assert datasets.d4rl_filename("halfcheetah-medium-replay-v2") == "halfcheetah_medium_replay-v2.hdf5"
    write_hdf5(tmp_path / "hopper_medium-v2.hdf5", make_raw(10, terminals=(4,), obs_dim=11, act_dim=3))
    ds = datasets.load_dataset("hopper-medium-v2")
    assert ds.env_id == "Hopper-v4" and ds.name == "hopper-medium-v2"
    with pytest.raises(DatasetError, match=r"looked for .*walker2d_medium-v2\.hdf5"):
        datasets.load_dataset("walker2d-medium-v2")


def test_env_inference_and_reference_scores():
    assert domains.infer_env_id("halfcheetah-medium-expert-v2") == "HalfCheetah-v4"
    assert domains.infer_env_id("antmaze-umaze-diverse-v0") == "AntMazeD4RL_UMaze-v0"  # d4rl's eval env, not Ant
    assert domains.infer_env_id("ant-medium-v2") == "Ant-v4"
    assert domains.dataset_family("Walker2d-v4") == "walker2d"
    hopper = domains.REFERENCE_RETURNS["hopper"]
    np.testing.assert_allclose(domains.normalized_score([-20.272305, 3234.3], hopper), [0.0, 100.0])
    assert np.isnan(domains.normalized_score([1.0], None)).all()


BAD_RAW = {
    "missing key": (lambda r: r.pop("terminals"), "missing key 'terminals'"),
    "length mismatch": (lambda r: r.update(rewards=r["rewards"][:-1]), "length mismatch"),
    "nan observation": (lambda r: r["observations"].__setitem__((3, 0), np.nan), "non-finite value in 'observations'"),
    "inf reward": (lambda r: r["rewards"].__setitem__(5, np.inf), "non-finite value in 'rewards'"),
    "nan action": (lambda r: r["actions"].__setitem__((1, 0), np.nan), "non-finite value in 'actions'"),
    "action out of range": (lambda r: r["actions"].__setitem__((2, 0), 1.5), r"actions must lie in \[-1, 1\]"),
    "no episode end": (lambda r: (r["terminals"].fill(False), r["timeouts"].fill(False)), "no episode end"),
    "one row": (lambda r: [r.__setitem__(k, v[:1]) for k, v in list(r.items())], "only 1 rows"),
    "empty": (lambda r: [r.__setitem__(k, v[:0]) for k, v in list(r.items())], "only 0 rows"),
}


@pytest.mark.parametrize("case", sorted(BAD_RAW))
def test_validation_errors_are_one_line(case, tmp_path):
    raw = make_raw(10, terminals=(4,), timeouts=(9,))
    mutate, message = BAD_RAW[case]
    mutate(raw)
    path = write_hdf5(tmp_path / "bad.hdf5", raw)
    with pytest.raises(DatasetError, match=message) as info:
        datasets.load_dataset(str(path))
    assert "\n" not in str(info.value)


def test_unreadable_files(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("not an hdf5 file")
    with pytest.raises(DatasetError, match="not a readable hdf5 file"):
        datasets.load_dataset(str(text))
    good = write_hdf5(tmp_path / "good.hdf5", make_raw(200, terminals=(50,)))
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(DatasetError, match="not a readable hdf5 file"):
        datasets.load_dataset(str(cut))
    with pytest.raises(DatasetError, match="dataset file not found"):
        datasets.load_dataset(str(tmp_path / "absent.hdf5"))


def test_unknown_name_lists_what_is_available():
    with pytest.raises(DatasetError, match="unknown dataset 'no-such-thing'.*D4RL name"):
        datasets.load_dataset("no-such-thing")
