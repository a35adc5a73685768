"""What a file's arrays mean: its own next_observations (a transitions file) or d4rl's obs[i + 1]; 0/1 flags."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rollout_raw, write_hdf5

from common import datasets


@pytest.fixture(scope="module")
def raw():
    return rollout_raw("Hopper-v4", 300, seed=5)


def true_next(raw):
    """The real successor of each row (row i + 1 inside an episode; the row's own state at an episode end is
    not known from the arrays, so those rows get a marker value that obs[i + 1] never has)."""
    nxt = np.concatenate([raw["observations"][1:], raw["observations"][-1:]]).copy()
    ends = raw["terminals"] | raw["timeouts"]
    nxt[ends] = 123.0
    return nxt


def shuffled(raw, seed=0):
    """The same transitions, rows in random order, each with its own next observation: a transitions file."""
    order = np.random.default_rng(seed).permutation(len(raw["rewards"]))
    rows = {k: v[order] for k, v in raw.items()}
    rows["next_observations"] = true_next(raw)[order]
    return rows


def test_a_shuffled_transitions_npz_uses_its_own_next_observations(raw, tmp_path):
    rows = shuffled(raw)
    np.savez(tmp_path / "hopper-shuffled.npz", **rows)
    data = datasets.load_dataset(str(tmp_path / "hopper-shuffled.npz"))
    t = data.transitions
    np.testing.assert_array_equal(t.next_observations, rows["next_observations"].astype(np.float32))
    np.testing.assert_array_equal(t.observations, rows["observations"].astype(np.float32))
    np.testing.assert_array_equal(t.dones, rows["terminals"].astype(np.float32))
    assert data.stats["transitions"] == 300 and data.stats["next_observations"] == "from the file"
    # the obs[i + 1] rule would have paired almost every row with an unrelated state
    assert np.mean(np.any(rows["observations"][1:] != rows["next_observations"][:-1], axis=1)) > 0.9


def test_an_npz_whose_next_observations_agree_keeps_the_d4rl_view(raw, tmp_path):
    np.savez(tmp_path / "hopper-ordered.npz", **raw, next_observations=true_next(raw))
    data = datasets.load_dataset(str(tmp_path / "hopper-ordered.npz"))
    expected = datasets.qlearning_view(raw)
    for got, want in zip(data.transitions, expected):
        np.testing.assert_array_equal(got, want)
    assert "next_observations" not in data.stats


def test_an_hdf5_file_keeps_d4rl_obs_i_plus_1_even_with_other_next_observations(raw, tmp_path):
    rows = dict(raw, next_observations=np.zeros_like(raw["observations"]))
    data = datasets.load_dataset(str(write_hdf5(tmp_path / "hopper-d4rl.hdf5", rows, {"env_id": "Hopper-v4"})))
    np.testing.assert_array_equal(data.transitions.next_observations, datasets.qlearning_view(raw).next_observations)
    assert "next_observations" not in data.stats


def test_terminals_as_float_zero_one_are_accepted_as_flags(raw, tmp_path):
    rows = dict(raw, terminals=raw["terminals"].astype(np.float32), timeouts=raw["timeouts"].astype(np.uint8))
    data = datasets.load_dataset(str(write_hdf5(tmp_path / "hopper-float.hdf5", rows, {"env_id": "Hopper-v4"})))
    assert data.stats == datasets.load_dataset(
        str(write_hdf5(tmp_path / "hopper-bool.hdf5", raw, {"env_id": "Hopper-v4"}))).stats
