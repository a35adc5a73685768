"""Members: every (swept hyperparameter values, seed) combination one process trains, vmapped.

`--config.sweep.<field>=v1,v2` sweeps a field the method lists as sweepable; with `num_seeds` seeds each,
the members are their product. Each member's sweepable hyperparameters are one row of (M,) arrays.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp

from common.experiment.errors import ConfigError


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
    return values


def build_members(config, default_hparams: dict) -> tuple[list[dict], dict]:
    """Every (swept values, seed) combination: labels for the logs, and the hparams of each as (M,) arrays."""
    sweep = sweep_values(config)
    for name in sweep:
        if name not in default_hparams:
            raise ConfigError(f"sweep.{name}: this field changes the compiled program and cannot be swept in one run; "
                              f"sweepable fields: {', '.join(sorted(default_hparams))}")
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
