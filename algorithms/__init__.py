"""The methods of this project, one file each: td3_bc, cql, misa (each ends with its `METHOD`, common/agent.py).

`load_run(run_dir)` rebuilds a saved run of any of them (see common/runs.py for what it returns).
"""

from __future__ import annotations

import importlib

from common.runs import RunError
from common.runs import load_run as _load_run

METHODS = ("td3_bc", "cql", "misa")


def method_for(name: str):
    """The `METHOD` of algorithms/<name>.py; RunError when `name` is not one of this project's methods."""
    if name not in METHODS:
        raise RunError(f"the checkpoint names algorithm {name!r}, which is not a method of this project "
                       f"({', '.join(METHODS)})")
    return importlib.import_module(f"algorithms.{name}").METHOD


def load_run(run_dir, checkpoint: int | None = None, dataset=None):
    """common.runs.load_run with this project's methods; see there."""
    return _load_run(run_dir, method_for, checkpoint, dataset)
