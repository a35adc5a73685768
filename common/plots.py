"""Comparison figures across runs (one run's own curves.png is drawn by common/logger.plot_curves)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def plot_learning_curves(curves: dict, path: Path, title: str = "", ylabel: str = "D4RL-normalised score",
                         max_columns: int = 3) -> Path:
    """One panel per dataset, one line per algorithm (mean over seeds) with a band of ± one std over seeds.

    curves: {dataset: {algorithm: {"step": (T,), "mean": (T,), "std": (T,)}}}; panels keep the dict's order.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("no curves to plot")
    columns = min(max_columns, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3.4 * rows), squeeze=False)
    colours = {}
    for ax, (dataset, by_algorithm) in zip(axes.flat, curves.items()):
        for algorithm, curve in by_algorithm.items():
            colour = colours.setdefault(algorithm, f"C{len(colours) % 10}")
            step, mean, std = (np.asarray(curve[k], np.float64) for k in ("step", "mean", "std"))
            ax.plot(step, mean, color=colour, linewidth=1.8, label=algorithm)
            ax.fill_between(step, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        ax.set_title(dataset, fontsize=10)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, linewidth=1.8) for c in colours.values()]
    fig.legend(handles, list(colours), loc="lower center", ncol=len(colours), frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08 / rows, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
