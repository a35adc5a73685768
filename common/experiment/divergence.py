"""Divergence: every interval's metrics and parameters are checked; the first non-finite value stops the run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from common.experiment.errors import Diverged
from common.experiment.members import member_label


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves))


def first_non_finite(metrics: dict[str, np.ndarray]):
    """(member index, step offset, metric name) of the earliest non-finite value, or None."""
    found = None
    for name, values in metrics.items():
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            member, offset = bad[np.argmin(bad[:, 1])]
            if found is None or offset < found[1]:
                found = (int(member), int(offset), name)
    return found


def check_finite(metrics, params_finite, members, step, eval_every):
    """Raises Diverged naming the first non-finite metric (or parameters), its step and its seed."""
    bad = first_non_finite({k: v[: len(members)] for k, v in metrics.items()})
    if bad is not None:
        member, offset, name = bad
        steps_per_row = eval_every // metrics[name].shape[1]
        at = step - eval_every + (offset + 1) * steps_per_row
        raise Diverged(f"training diverged: non-finite {name} at step {at} ({member_label(members[member])})")
    broken = np.flatnonzero(~np.asarray(params_finite)[: len(members)])
    if broken.size:
        raise Diverged(f"training diverged: non-finite parameters by step {step} ({member_label(members[broken[0]])})")
