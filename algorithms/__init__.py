"""One file per method (td3_bc, cql, misa).

`load_run(run_dir)` rebuilds a saved run of any method here (see common/runs.py for what it returns).
"""

from __future__ import annotations

import importlib

from common.runs import RunError
from common.runs import load_run as _load_run


def make_agent_for(name: str):
    """The `make_agent` of algorithms/<name>.py; RunError naming the missing file when there is none."""
    try:
        return importlib.import_module(f"algorithms.{name}").make_agent
    except ImportError:
        raise RunError(f"the checkpoint names algorithm '{name}', which has no file algorithms/{name}.py") from None


def load_run(run_dir, checkpoint: int | None = None, dataset=None):
    """common.runs.load_run with this project's algorithm files; see there."""
    return _load_run(run_dir, make_agent_for, checkpoint, dataset)
