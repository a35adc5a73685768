"""Where things run: members spread over the devices (and hosts), results brought back, the evaluation's device."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


def member_sharding(num_members: int):
    """(sharding of the member axis, replicated sharding, padded member count): members spread evenly over all
    devices; both shardings are None on one device.

    With D devices, M members are padded to a multiple of D by repeating the last member; padded
    members train like the others but are never evaluated, logged or reported.
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None, None, num_members
    mesh = Mesh(np.asarray(devices), ("members",))
    padded = -(-num_members // len(devices)) * len(devices)
    return NamedSharding(mesh, P("members")), NamedSharding(mesh, P()), padded


def pad_members(tree, padded: int):
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - x.shape[0], axis=0)]), tree)


def put_global(tree, sharding):
    """Host values -> arrays laid out with `sharding`; each process supplies only its own devices' parts."""
    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Device arrays -> numpy; with several processes every process gathers the whole (collective call)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def evaluation_device(config):
    """Where the evaluation's policy runs: unless overlap_evaluation is "off", the host CPU (with a GPU it is free
    while the GPU trains the next interval; on a CPU-only machine it is the one device); else the first training
    device."""
    if config.overlap_evaluation != "off":
        try:
            return jax.devices("cpu")[0]
        except RuntimeError:  # JAX_PLATFORMS without cpu
            pass
    return jax.devices()[0]


def overlaps_evaluation(config) -> bool:
    """"on", or "auto" when the evaluation has a device of its own: an XLA device runs its programs in order, so on
    a CPU-only machine the policy's calls would wait for the dispatched interval (the same time as the old order,
    with every checkpoint one interval later)."""
    if config.overlap_evaluation == "auto":
        return evaluation_device(config) not in jax.devices()
    return config.overlap_evaluation == "on"
