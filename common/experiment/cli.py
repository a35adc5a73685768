"""The command line of every method: `python algorithms/<method>.py --config configs/<file>.py[:variant] ...`.

`main` parses, runs, prints one result line (and a sweep's table) and returns the exit status (errors.py);
`--help` (or `-h`) prints how to call it, the method's config files and, with `--config`, that config's fields.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import jax

from common import checkpoints
from common.agent import Method
from common.errors import DatasetError
from common.experiment.configuration import ROOT, parse_config
from common.experiment.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, ConfigError, Diverged, Interrupted, WriteFailed
from common.experiment.preemption import ignore_further_signals
from common.experiment.runner import run
from common.experiment.summary import result_line, sweep_table

HELP_FLAGS = ("--help", "-h", "--helpfull")


def main(method: Method, argv=None) -> int:
    """CLI entry: parse, run, print the result; returns the exit status (see the module docstring)."""
    cli, argv = argv is None, sys.argv if argv is None else argv
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        return print_help(method, [arg for arg in argv if arg not in HELP_FLAGS])
    try:
        config = parse_config(argv, method.default_config)
        if config.distributed:
            initialize_distributed(config)
        summary = run(method, config)
        if cli:
            ignore_further_signals()
    except (ConfigError, DatasetError, checkpoints.CheckpointError, WriteFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except Interrupted as e:
        if cli:
            ignore_further_signals()
        print(e, file=sys.stderr)
        return e.status
    except KeyboardInterrupt:  # before the run installed its handlers
        print("interrupted by SIGINT: stopped before the run started; nothing was written", file=sys.stderr)
        return 128 + signal.SIGINT
    if jax.process_index() != 0:
        return 0
    print(result_line(method.name, summary))
    if len(summary["members"]) > summary["num_seeds"]:
        print(sweep_table(summary))
    written = [name for name in ("eval.csv", "metrics.csv", "summary.json", "curves.png")
               if (Path(summary["run_dir"]) / name).exists()]
    print(f"results: {summary['run_dir']} ({', '.join(written)})")
    return 0


def print_help(method: Method, argv) -> int:
    """Usage, the method's config files, and the fields of the given (or default) config with the overrides applied."""
    print(f"usage: python algorithms/{method.name}.py --config configs/<file>.py[:variant] "
          f"[--config.<field>=<value> ...]\n"
          f"  --config.sweep.<field>=v1,v2,...  trains every value x every seed in one program\n"
          f"  --config.resume=True              continues log_dir/run_name from its last checkpoint\n"
          f"config files (variants: each file's VARIANTS and NAMED_VARIANTS; sources: docs/SETTINGS.md):")
    for path in sorted((ROOT / "configs").glob(f"{method.name}_*.py")):
        print(f"  configs/{path.name}")
    try:
        config = parse_config(argv, method.default_config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"fields of {config_argument(argv) or method.default_config} (with the overrides given):")
    for name, value in sorted(config.items()):
        if name == "sweep":
            given = {field: values for field, values in value.items() if values}
            print(f"  sweep = {given} (sweepable: {', '.join(sorted(value.keys()))})")
        else:
            print(f"  {name} = {value!r}")
    return 0


def config_argument(argv) -> str | None:
    """The value of `--config=<file>` or `--config <file>` in argv, if given."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def initialize_distributed(config) -> None:
    """Joins a multi-process JAX job; fields left empty are read from the environment (or SLURM) by JAX."""
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address or None,
        num_processes=config.num_processes or None,
        process_id=config.process_id if config.process_id >= 0 else None,
    )
