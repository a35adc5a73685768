"""The command line of every method: `python algorithms/<method>.py --config configs/<file>.py[:variant] ...`.

`main` parses, runs, prints one result line (and a sweep's table) and returns the exit status (errors.py).
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
from common.experiment.configuration import parse_config
from common.experiment.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, ConfigError, Diverged, Interrupted, WriteFailed
from common.experiment.preemption import ignore_further_signals
from common.experiment.runner import run
from common.experiment.summary import result_line, sweep_table


def main(method: Method, argv=None) -> int:
    """CLI entry: parse, run, print the result; returns the exit status (see the module docstring)."""
    cli, argv = argv is None, sys.argv if argv is None else argv
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
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


def initialize_distributed(config) -> None:
    """Joins a multi-process JAX job; fields left empty are read from the environment (or SLURM) by JAX."""
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address or None,
        num_processes=config.num_processes or None,
        process_id=config.process_id if config.process_id >= 0 else None,
    )
