"""What can stop a run, and the exit status each one gives on the command line.

0 done; 2 bad input, config or environment (ConfigError, and the data, checkpoint and write errors of the modules
they come from: one line on stderr, nothing already written lost); 3 training diverged (Diverged names the step, the
member and the metric); 128 + the signal's number when interrupted (130 SIGINT, 143 SIGTERM).
"""

from __future__ import annotations

import signal

EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3  # interrupted: 128 + the signal's number (130 SIGINT, 143 SIGTERM)


class ConfigError(ValueError):
    """A config that cannot run (one-line message)."""


class Diverged(RuntimeError):
    """A non-finite training metric."""


class WriteFailed(RuntimeError):
    """A run file could not be written (a full disk, a directory gone read-only); one-line message."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM; `detail` says where the run stopped and how to continue it.

    A BaseException (like KeyboardInterrupt), so that no `except Exception` on the way swallows it.
    """

    def __init__(self, signum: int, detail: str = ""):
        super().__init__(signum, detail)
        self.signum, self.detail = signum, detail

    @property
    def status(self) -> int:
        return 128 + self.signum

    def __str__(self) -> str:
        return f"interrupted by {signal.Signals(self.signum).name}: {self.detail}"
