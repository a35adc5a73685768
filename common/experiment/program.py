"""The program: the data and freshly initialised members on the devices, and the compiled interval.

One compiled call runs `eval_every` updates of every member in one fused `lax.scan` (state donated) and says
which members' parameters are still finite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from common.experiment.divergence import all_finite
from common.experiment.job import Job
from common.experiment.placement import member_sharding, pad_members, put_global


@dataclass
class Program:
    """The data and the compiled interval on the devices."""

    data: Any
    sharding: Any
    replicated: Any
    update: Any = None  # compiled (state, data) -> (state, metrics, params_finite): eval_every updates per member
    metric_names: list = field(default_factory=list)
    policy_params: Any = None  # jitted state -> policy parameters of the real (unpadded) members
    compile_seconds: float = 0.0


def place(job: Job):
    """The training data and freshly initialised members on the devices: (program, initial state)."""
    sharding, replicated, padded = member_sharding(len(job.members))
    data = job.method.prepare_data(job.dataset, job.config)
    keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in job.members])
    keys, hparams = pad_members((keys, job.hparams), padded)
    if sharding is not None:
        data = put_global(data, replicated)
        keys, hparams = put_global((keys, hparams), sharding)
    state = jax.jit(jax.vmap(job.agent.init), out_shardings=sharding)(keys, hparams)
    metric_names = sorted(jax.eval_shape(lambda s: job.agent.update(s, data, job.config.eval_every)[1],
                                         jax.tree.map(lambda x: x[0], state)).keys())
    return Program(data, sharding, replicated, metric_names=metric_names), state


def compile_interval(job: Job, program: Program, state) -> None:
    """Compile: one jitted call runs `eval_every` updates of every member (state donated, metrics returned)."""
    agent, config = job.agent, job.config

    def interval(state, data, num_steps):
        state, metrics = jax.vmap(agent.update, in_axes=(0, None, None))(state, data, num_steps)
        return state, metrics, jax.vmap(all_finite)(state)

    t0 = time.perf_counter()
    shardings = ({} if program.sharding is None
                 else {"in_shardings": (program.sharding, program.replicated), "out_shardings": program.sharding})
    update = jax.jit(interval, static_argnums=2, donate_argnums=0, **shardings)
    program.update = update.lower(state, program.data, config.eval_every).compile()
    program.compile_seconds = time.perf_counter() - t0
    count = len(job.members)
    program.policy_params = jax.jit(lambda s: jax.tree.map(lambda x: x[:count], jax.vmap(agent.policy_params)(s)))
