"""Aggregate scores over seeds and datasets: interquartile mean, stratified bootstrap CIs, Markdown tables.

Conventions (those of Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice", whose
`rliable` package fails with the current dependencies):
  * IQM = `scipy.stats.trim_mean(x, 0.25)`: the mean after dropping int(0.25 n) values at each end;
  * the confidence interval is a stratified percentile bootstrap: each dataset's seeds are resampled
    with replacement on their own (so every resample keeps every dataset and its number of seeds),
    the statistic is recomputed on the pooled resample, and the 2.5 / 97.5 percentiles are reported.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats as scipy_stats

DEFAULT_RESAMPLES = 5000


class Estimate(NamedTuple):
    value: float  # the statistic on the observed scores
    low: float  # lower end of the confidence interval
    high: float  # upper end of the confidence interval


# ------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------


def iqm(scores, axis=None) -> float | np.ndarray:
    """Interquartile mean: trim_mean(x, 0.25), i.e. mean of x after removing int(n/4) values at each end."""
    scores = np.asarray(scores, np.float64)
    if axis is None:
        return float(scipy_stats.trim_mean(scores.reshape(-1), 0.25))
    return scipy_stats.trim_mean(scores, 0.25, axis=axis)


def _finite_groups(groups: Sequence) -> list[np.ndarray]:
    out = [np.asarray(g, np.float64).reshape(-1) for g in groups]
    out = [g[np.isfinite(g)] for g in out]
    return [g for g in out if g.size]


def stratified_bootstrap(groups: Sequence, statistic: Callable = iqm, confidence: float = 0.95,
                         n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Estimate:
    """statistic(pooled scores) with a stratified percentile-bootstrap CI; one group per dataset.

    groups: a sequence of 1-D score arrays (the seeds of one dataset each; NaNs are dropped). Every
    resample draws len(g) scores with replacement from each group g and pools them. Deterministic for a
    given seed. With a single pooled value, or no spread at all, the interval is the point itself.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    groups = _finite_groups(groups)
    if not groups:
        return Estimate(math.nan, math.nan, math.nan)
    pooled = np.concatenate(groups)
    value = float(statistic(pooled))
    varying = [g for g in groups if g.size > 1]
    fixed = np.concatenate([g for g in groups if g.size == 1] or [np.zeros(0)])  # a 1-seed group resamples to itself
    if np.ptp(pooled) == 0 or not varying:
        return Estimate(value, value, value)

    def pooled_statistic(*samples, axis=-1):
        constant = np.broadcast_to(fixed, samples[0].shape[:-1] + fixed.shape)
        return statistic(np.concatenate([*samples, constant], axis=-1), axis=-1)

    result = scipy_stats.bootstrap(
        tuple(varying), pooled_statistic, n_resamples=n_resamples, vectorized=True, axis=-1,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Estimate(value, low, high)


def mean(scores, axis=None):
    """Plain mean (a statistic with the same signature as `iqm`)."""
    scores = np.asarray(scores, np.float64)
    return float(np.mean(scores)) if axis is None else np.mean(scores, axis=axis)


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


def mean_std(values) -> tuple[float, float]:
    """Mean and (population) standard deviation over seeds, NaNs ignored; NaN when nothing is finite."""
    values = np.asarray(values, np.float64).reshape(-1)
    values = values[np.isfinite(values)]
    if not values.size:
        return math.nan, math.nan
    return float(values.mean()), float(values.std())


def format_mean_std(values, digits: int = 1) -> str:
    m, s = mean_std(values)
    return "–" if math.isnan(m) else f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub Markdown table; the first column left-aligned, the others right-aligned."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    if any(len(r) != len(header) for r in cells):
        raise ValueError("every row needs as many cells as the header")
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in cells[1:]]
    return "\n".join(lines) + "\n"


def score_table(scores: dict, algorithms: Sequence[str], datasets: Sequence[str], digits: int = 1) -> str:
    """Rows = datasets, columns = algorithms, cells = mean ± std over seeds.

    scores: {(algorithm, dataset): per-seed scores}; a missing pair shows as "–".
    """
    rows = [[d] + [format_mean_std(scores.get((a, d), []), digits) for a in algorithms] for d in datasets]
    return markdown_table(["dataset", *algorithms], rows)


def aggregate(scores: dict, algorithms: Sequence[str], datasets: Sequence[str], confidence: float = 0.95,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Per algorithm: IQM and mean over all (dataset, seed) scores with stratified bootstrap CIs.

    Returns {algorithm: {"iqm": Estimate, "mean": Estimate, "total": sum over datasets of the seed
    means, "datasets": number of datasets with scores, "runs": number of (dataset, seed) scores}}.
    """
    out = {}
    for a in algorithms:
        groups = _finite_groups([scores[(a, d)] for d in datasets if (a, d) in scores])
        out[a] = {
            "iqm": stratified_bootstrap(groups, iqm, confidence, n_resamples, seed),
            "mean": stratified_bootstrap(groups, mean, confidence, n_resamples, seed),
            "total": float(sum(g.mean() for g in groups)) if groups else math.nan,
            "datasets": len(groups),
            "runs": int(sum(g.size for g in groups)),
        }
    return out


def aggregate_table(agg: dict, confidence: float = 0.95, digits: int = 1) -> str:
    """Rows = algorithms: IQM [CI], mean [CI], sum of per-dataset means, and the counts behind them."""
    pct = f"{100 * confidence:g}%"

    def fmt(e: Estimate) -> str:
        return "–" if math.isnan(e.value) else f"{e.value:.{digits}f} [{e.low:.{digits}f}, {e.high:.{digits}f}]"

    rows = [[a, fmt(r["iqm"]), fmt(r["mean"]), "–" if math.isnan(r["total"]) else f"{r['total']:.{digits}f}",
             r["datasets"], r["runs"]] for a, r in agg.items()]
    return markdown_table(["algorithm", f"IQM [{pct} CI]", f"mean [{pct} CI]", "sum over datasets", "datasets",
                           "runs"], rows)
