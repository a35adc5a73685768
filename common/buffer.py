"""The dataset on the device, and batches drawn from it inside jit."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from common.datasets import Transitions


def to_device(transitions: Transitions) -> Transitions:
    """Moves the Q-learning view to the default device as float32 arrays (one copy, kept for the run)."""
    return Transitions(*(jnp.asarray(x, jnp.float32) for x in transitions))


def sample_batch(data: Transitions, rng: jax.Array, batch_size: int) -> Transitions:
    """A batch drawn uniformly with replacement; runs inside jit, so no host round trip."""
    indices = jax.random.randint(rng, (batch_size,), 0, data.rewards.shape[0])
    return jax.tree.map(lambda x: x[indices], data)
