"""Members: every (swept hyperparameter values, seed) combination one process trains, vmapped.

`--config.sweep.<field>=v1,v2` sweeps a field the method lists as sweepable; with `num_seeds` seeds each,
the members are their product. Each member's sweepable hyperparameters are one row of (M,) arrays.
"""

from __future__ import annotations

import itertools
import math

import jax.numpy as jnp

from common.experiment.errors import ConfigError

# One process holds every member's networks and optimiser state (TD3+BC's default networks: ~3.4 MB a member, MISA
# also a batch of N sampled actions per member and step) and logs one row per member and interval. 4096 members is
# far past any grid this project runs (tens) and already ~14 GB of TD3+BC state: more is a typo, or several runs.
MAX_MEMBERS = 4096
# The evaluation keeps members x eval_episodes envs alive on the host and steps them one by one in Python: a MuJoCo
# locomotion env holds ~1 MB (Hopper-v4: 1.05 MB measured), AntMaze and Adroit more, so 4096 envs are ~4 GB of host
# memory before the first step, and minutes of stepping per evaluation.
MAX_EVAL_ENVS = 4096


def sweep_values(config) -> dict[str, list[float]]:
    """`--config.sweep.<field>=v1,v2,...` -> {field: [v1, v2, ...]} (fields left empty are not swept)."""
    values = {}
    for name, text in config.get("sweep", {}).items():
        if text in ("", None):
            continue
        try:
            values[name] = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"sweep.{name}: expected comma-separated numbers, got {text!r}") from None
        if not values[name]:
            raise ConfigError(f"sweep.{name}: no values given")
        for i, value in enumerate(values[name]):
            if not math.isfinite(value):
                raise ConfigError(f"sweep.{name}: {value} is not a finite number")
            if value in values[name][:i]:
                raise ConfigError(f"sweep.{name}: {value:g} is given twice (each value trains once with every seed)")
    return values


def check_member_count(config, sweep: dict[str, list[float]]) -> None:
    """Refuses more members, or more evaluation envs, than one run can hold (MAX_MEMBERS, MAX_EVAL_ENVS)."""
    count = config.num_seeds * math.prod(len(values) for values in sweep.values())
    if count > MAX_MEMBERS:
        made_of = " x ".join([f"{config.num_seeds} seeds"] + [f"{len(v)} values of {k}" for k, v in sweep.items()])
        raise ConfigError(f"{count} members ({made_of}), more than {MAX_MEMBERS} one run trains (each holds its own "
                          "networks and optimiser state): split the seeds or the sweep over several runs")
    if count * config.eval_episodes > MAX_EVAL_ENVS:
        raise ConfigError(f"{count} members x {config.eval_episodes} eval_episodes = {count * config.eval_episodes} "
                          f"evaluation envs, more than {MAX_EVAL_ENVS} (each a live env in host memory, ~1 MB for "
                          "MuJoCo): lower eval_episodes or split the members over several runs")


def build_members(config, default_hparams: dict) -> tuple[list[dict], dict]:
    """Every (swept values, seed) combination: labels for the logs, and the hparams of each as (M,) arrays."""
    sweep = sweep_values(config)
    for name in sweep:
        if name not in default_hparams:
            raise ConfigError(f"sweep.{name}: this field changes the compiled program and cannot be swept in one run; "
                              f"sweepable fields: {', '.join(sorted(default_hparams))}")
    check_member_count(config, sweep)
    members = [
        {"seed": config.seed + i, **dict(zip(sweep, combo))}
        for combo in itertools.product(*sweep.values())
        for i in range(config.num_seeds)
    ]
    hparams = {name: jnp.asarray([m.get(name, float(value)) for m in members], jnp.float32)
               for name, value in default_hparams.items()}
    return members, hparams


def member_label(member: dict) -> str:
    """'seed 0' or 'seed 1, alpha 2.5': a member as logs, errors and tables name it."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in member.items())
