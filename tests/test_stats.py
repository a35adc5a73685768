"""common/stats.py: IQM and stratified bootstrap CIs on inputs whose answers are known by hand, and the tables."""

from __future__ import annotations

import math

import numpy as np
import pytest

from common import stats


def test_iqm_drops_a_quarter_at_each_end():
    # trim_mean(x, 0.25) removes int(0.25 n) values at each end of the sorted scores.
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(np.mean([3, 4, 5, 6]))  # n=8: drop 2 + 2
    assert stats.iqm(np.arange(1, 11)) == pytest.approx(np.mean([3, 4, 5, 6, 7, 8]))  # n=10: drop 2 + 2
    assert stats.iqm(np.arange(1, 12)) == pytest.approx(6.0)  # n=11: drop 2 + 2, mean of 3..9
    assert stats.iqm([5.0, 1.0, 1000.0, 2.0, 4.0, 3.0, 6.0, -1000.0]) == pytest.approx(3.5)  # order and outliers
    assert stats.iqm([[1, 2, 3, 4], [5, 6, 7, 8]]) == pytest.approx(4.5)  # pooled over every axis


def test_bootstrap_of_two_points_matches_its_exact_distribution():
    # Resampled means of {0, 1} are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 95% interval is [0, 1].
    estimate = stats.stratified_bootstrap([[0.0, 1.0]], stats.mean, n_resamples=4000)
    assert estimate == (0.5, 0.0, 1.0)


def test_bootstrap_resamples_within_each_dataset():
    # Every stratified resample holds four 0s and four 100s, so its IQM is always 50; pooled, it would vary.
    stratified = stats.stratified_bootstrap([[0.0] * 4, [100.0] * 4])
    assert stratified == (50.0, 50.0, 50.0)
    pooled = stats.stratified_bootstrap([[0.0] * 4 + [100.0] * 4])
    assert pooled.value == 50.0 and pooled.low < 25.0 and pooled.high > 75.0


def test_ci_contains_the_estimate_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    small = stats.stratified_bootstrap([rng.normal(50, 10, 10), rng.normal(80, 10, 10)], n_resamples=2000)
    large = stats.stratified_bootstrap([rng.normal(50, 10, 1000), rng.normal(80, 10, 1000)], n_resamples=2000)
    for e in (small, large):
        assert e.low <= e.value <= e.high
    # The width scales like 1 / sqrt(n): 10x fewer samples per dataset than the large case's 100x.
    assert (large.high - large.low) < (small.high - small.low) / 4


def test_bootstrap_is_deterministic_for_a_seed():
    rng = np.random.default_rng(1)
    groups = [rng.normal(size=7), rng.normal(size=5)]
    assert stats.stratified_bootstrap(groups, seed=3) == stats.stratified_bootstrap(groups, seed=3)
    assert stats.stratified_bootstrap(groups, seed=3) != stats.stratified_bootstrap(groups, seed=4)


def test_single_seed_groups_nan_and_empty_inputs():
    # A one-seed dataset resamples to itself: resample means are (7 + 1 + 1) / 3, 11 / 3 or (7 + 3 + 3) / 3.
    e = stats.stratified_bootstrap([[7.0], [1.0, 3.0]], stats.mean, n_resamples=2000)
    assert e.value == pytest.approx(11 / 3) and e.low == pytest.approx(3.0) and e.high == pytest.approx(13 / 3)
    # NaN scores are dropped; nothing finite gives NaN.
    assert stats.stratified_bootstrap([[1.0, np.nan, 3.0]], stats.mean).value == pytest.approx(2.0)
    assert all(math.isnan(v) for v in stats.stratified_bootstrap([[np.nan]]))
    with pytest.raises(ValueError, match="confidence"):
        stats.stratified_bootstrap([[1.0, 2.0]], confidence=1.5)


def test_tables_and_aggregate():
    scores = {("A", "d1"): [10.0, 20.0], ("A", "d2"): [30.0, 30.0], ("B", "d1"): [0.0, 2.0]}
    table = stats.score_table(scores, ["A", "B"], ["d1", "d2"]).splitlines()
    assert table[0] == "| dataset | A | B |"
    assert table[2] == "| d1 | 15.0 ± 5.0 | 1.0 ± 1.0 |"
    assert table[3] == "| d2 | 30.0 ± 0.0 | – |"

    agg = stats.aggregate(scores, ["A", "B"], ["d1", "d2"], n_resamples=500)
    assert agg["A"]["iqm"].value == pytest.approx(25.0)  # IQM of 10, 20, 30, 30 = mean of 20, 30
    assert agg["A"]["mean"].value == pytest.approx(22.5)
    assert agg["A"]["total"] == pytest.approx(45.0) and agg["A"]["datasets"] == 2 and agg["A"]["runs"] == 4
    assert agg["B"]["datasets"] == 1 and agg["B"]["runs"] == 2
    rows = stats.aggregate_table(agg).splitlines()
    assert len(rows) == 4 and rows[2].startswith("| A | 25.0 [")
    with pytest.raises(ValueError):
        stats.markdown_table(["a", "b"], [["only one"]])
