"""The run's config: parsed from the command line with ml_collections, checked before anything is written.

    --config path[:variant]  --config.<field>=<value> ...

The fields every method shares are checked here (`validate_shared`); a method's own fields by its
`validate_config`, through `check_ranges` for its numbers. `run_name` names the run directory under `log_dir`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from common import checkpoints
from common.experiment.errors import ConfigError
from common.experiment.members import sweep_values

ROOT = Path(__file__).resolve().parent.parent.parent
MAX_SEED = 2**31 - 1  # jax.random.PRNGKey folds larger seeds onto others
# jax_default_matmul_precision values a config may name: "highest" is float32 on every backend; "default" lets
# XLA use TF32 for float32 matmuls on NVIDIA Ampere+ GPUs (and bfloat16 passes on TPUs); "high" is 3-pass bf16/TF32.
MATMUL_PRECISIONS = ("highest", "high", "default")
OVERLAP_MODES = ("auto", "on", "off")  # config.overlap_evaluation (see overlaps_evaluation)
# The numbers every method has, and where they make sense (`check_ranges`); a method's own: its validate_config.
SHARED_RANGES = {"discount": "(0, 1]", "tau": "(0, 1]", "critic_lr": "(0, inf)"}


def parse_config(argv, default_config: str):
    """Parses `--config path[:variant]` and `--config.field=value` overrides with ml_collections."""
    from absl import flags
    from ml_collections import config_flags

    refuse_repeated_overrides(argv)
    values = flags.FlagValues()
    default = str(ROOT / default_config)
    try:
        config_flags.DEFINE_config_file("config", default, "config file (path[:variant])", flag_values=values,
                                        lock_config=True, sys_argv=list(argv))
        values(list(argv))
        config = values["config"].value
        config.to_dict()  # a config file that failed to load raises here
        return config
    except flags.Error as e:
        raise ConfigError(str(e).splitlines()[0]) from None
    except AttributeError as e:
        raise ConfigError(f"unknown config field {str(e).splitlines()[0].strip(chr(34) + chr(39))}") from None
    except OSError as e:  # ml_collections' message ends with the reason, e.g. the missing file
        raise ConfigError(f"cannot load the config file: {str(e).strip().splitlines()[-1].strip()}") from None
    except (KeyError, ValueError, TypeError, ImportError) as e:
        raise ConfigError(f"bad config: {str(e).splitlines()[0]}") from None


def refuse_repeated_overrides(argv) -> None:
    """`--config.x=1 --config.x=2` is refused: ml_collections would apply both (a tuple field even grows)."""
    seen = {}
    for arg in list(argv)[1:]:
        if not arg.startswith("--config"):
            continue
        name = arg[2:].split("=", 1)[0]
        if name in seen:
            raise ConfigError(f"--{name} is given twice ({seen[name]!r} and {arg!r}); give each field once")
        seen[name] = arg


def validate_shared(config) -> None:
    for name, value in config.items():  # NaN or inf in any float field; a sweep's values: members.sweep_values
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    check_ranges(config, {name: interval for name, interval in SHARED_RANGES.items() if name in config})
    if config.run_name:
        check_run_name(config.run_name)
    if "\0" in config.log_dir:
        raise ConfigError(f"log_dir must be a path without NUL, got {config.log_dir!r}")
    positive = ("total_steps", "eval_every", "batch_size", "num_seeds")
    for name in positive:
        if not isinstance(config[name], int) or config[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {config[name]!r}")
    if not isinstance(config.seed, int) or not 0 <= config.seed <= MAX_SEED - config.num_seeds + 1:
        raise ConfigError(f"seed must be an integer in [0, {MAX_SEED - config.num_seeds + 1}] (the runs use seed .. "
                          f"seed + num_seeds - 1), got {config.seed!r}")
    if config.get("matmul_precision", "highest") not in MATMUL_PRECISIONS:
        raise ConfigError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {config.matmul_precision!r}")
    if config.get("overlap_evaluation", "auto") not in OVERLAP_MODES:
        raise ConfigError(f"overlap_evaluation must be one of {OVERLAP_MODES}, got {config.overlap_evaluation!r}")
    if config.eval_episodes < 0:
        raise ConfigError(f"eval_episodes must be >= 0, got {config.eval_episodes}")
    if config.total_steps % config.eval_every:
        raise ConfigError(f"total_steps ({config.total_steps}) must be a multiple of eval_every ({config.eval_every})")
    widths = config.get("hidden_dims", (1,))
    if not all(isinstance(w, int) and w > 0 for w in widths):
        raise ConfigError(f"hidden_dims must be positive integers, got {tuple(widths)}")
    if not widths:
        raise ConfigError("hidden_dims must name at least one hidden layer, got ()")
    if not isinstance(config.checkpoint_every, int) or config.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be an integer >= 0, got {config.checkpoint_every!r}")
    known = set(checkpoints.config_identity(config.to_dict())) | set(checkpoints.RESUMABLE_FIELDS)
    for name in resume_changes(config):
        if name not in known:
            raise ConfigError(f"resume_changes names '{name}', which is not a config field")


def check_ranges(config, ranges: dict[str, str]) -> None:
    """Each named field, and every value swept for it, must lie in its interval: "(0, 1]" or "[0, inf)", a
    parenthesis leaving the bound out, a bracket taking it in."""
    swept = sweep_values(config)
    for name, interval in ranges.items():
        low, high = (float(bound) for bound in interval[1:-1].split(","))
        for field, value in [(name, config[name])] + [(f"sweep.{name}", v) for v in swept.get(name, [])]:
            above = value > low if interval[0] == "(" else value >= low
            below = value < high if interval[-1] == ")" else value <= high
            if not (above and below):
                raise ConfigError(f"{field} must lie in {interval}, got {value:g}")


def check_run_name(name: str) -> str:
    """A run name is one path component: the run directory is log_dir/<name>, never log_dir itself, its parent
    or a directory elsewhere (an overwrite empties the run directory)."""
    separators = {"/", os.sep, os.altsep} - {None}
    if name in ("", ".", "..") or "\0" in name or any(sep in name for sep in separators):
        raise ConfigError(f"run_name must be one path component (the run directory is log_dir/<run_name>: not "
                          f"empty, '.' or '..', no '/' and no NUL), got {name!r}")
    return name


def resume_changes(config) -> list[str]:
    return [name.strip() for name in str(config.get("resume_changes", "")).split(",") if name.strip()]


def run_name(algorithm: str, config) -> str:
    if config.run_name:
        return check_run_name(config.run_name)
    dataset = Path(config.dataset).stem if config.dataset.endswith((".hdf5", ".h5", ".npz")) else config.dataset
    for sep in {":", "/", os.sep, os.altsep} - {None}:
        dataset = dataset.replace(sep, "_")
    return check_run_name(f"{algorithm}_{dataset}_s{config.seed}")
