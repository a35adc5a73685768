"""The scripts' command-line parser: every argument error is one line on stderr and exit status 2.

That is the project's convention for bad input (common/experiment/errors.py); argparse's own prints the usage first.
"""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse.ArgumentParser whose error() prints `error: <message> (see --help)` and exits 2."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
