"""The host: the command line and the loop around every method, one evaluation interval at a time.

    python algorithms/<method>.py --config configs/<file>.py[:variant] --config.<field>=<value> ...

One process trains `num_seeds` runs (the "members", times any swept values) as one vmapped program: each
evaluation interval is a single jitted call running `eval_every` updates of every member in a fused
`lax.scan`; between calls the host evaluates, logs and checkpoints (with `overlap_evaluation`, while the
next call runs).

Each module does one job (docs/ARCHITECTURE.md draws the path from the command line to summary.json):
  cli            main(method, argv): parse, run, print, exit status
  runner         run(method, config): the named steps below, and what an interrupt says
  configuration  parse and check the config; the run's name
  job            check every input, lock the run directory (rundir), build the members (members)
  program        data and members on the devices (placement), the compiled interval
  progress       restore (resume) and the logs
  loop           per interval: train, check (divergence), evaluate, checkpoint; stop on a signal (preemption)
  summary        summary.json, curves.png and the result line
  errors         what stops a run and its exit status

Exit status: 0 done; 2 bad input, config or environment (one line on stderr, nothing already written
lost); 3 training diverged (the message names the step, the seed and the metric); 130 / 143 interrupted
by SIGINT / SIGTERM (a checkpoint of the last completed interval is written; `--config.resume=True`
continues the run exactly).
"""

from common.experiment.cli import main
from common.experiment.configuration import check_ranges, parse_config
from common.experiment.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, ConfigError, Diverged, Interrupted, WriteFailed
from common.experiment.runner import run

__all__ = ["main", "run", "parse_config", "check_ranges", "ConfigError", "Diverged", "Interrupted", "WriteFailed",
           "EXIT_BAD_INPUT", "EXIT_DIVERGED"]
