"""Checkpoints of everything a run needs to continue, written atomically.

Layout: run_dir/checkpoints/step_<N>/{state.msgpack, meta.json} and run_dir/checkpoints/LATEST naming
the newest complete one. A checkpoint directory is written under a temporary name and renamed when
complete; LATEST is replaced atomically afterwards, so a crash at any point leaves the previous
checkpoint as "latest".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import flax.serialization
import jax
import numpy as np

from common.logger import write_json_atomic


class CheckpointError(ValueError):
    """A checkpoint that is missing or does not fit this run (one-line message)."""


def save(run_dir: Path, step: int, state, meta: dict, keep: int = 2) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".step_{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    host_state = jax.device_get(state)
    with open(tmp / "state.msgpack", "wb") as f:
        f.write(flax.serialization.to_bytes(host_state))
        f.flush()
        os.fsync(f.fileno())
    write_json_atomic(tmp / "meta.json", {**meta, "step": step})
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / "LATEST.tmp"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, root / "LATEST")
    for old in sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest(run_dir: Path) -> Path | None:
    """The checkpoint LATEST names, or else the newest complete step_* directory, or None."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / "LATEST"
    if pointer.exists():
        path = root / pointer.read_text().strip()
        if (path / "state.msgpack").exists() and (path / "meta.json").exists():
            return path
    complete = [p for p in root.glob("step_*") if (p / "state.msgpack").exists() and (p / "meta.json").exists()]
    return max(complete, key=lambda p: int(p.name.split("_")[1]), default=None)


def restore(path: Path, template, expected_meta: dict):
    """Loads a checkpoint into the structure of `template`; checks algorithm and shapes first."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (meta.json: {str(e).splitlines()[0]})") from None
    for key, value in expected_meta.items():
        if meta.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={meta.get(key)!r}, this run has {key}={value!r}"
            )
    try:
        raw = flax.serialization.msgpack_restore((path / "state.msgpack").read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (state.msgpack: {str(e).splitlines()[0]})") from None
    template_host = jax.device_get(template)
    expected = flax.serialization.to_state_dict(template_host)
    _check_same_structure(expected, raw, path)
    return flax.serialization.from_state_dict(template_host, raw), meta


def _check_same_structure(expected, found, path, where="state"):
    if isinstance(expected, dict):
        if not isinstance(found, dict) or set(expected) != set(found):
            raise CheckpointError(f"checkpoint {path} does not match this run's state at {where}")
        for key in expected:
            _check_same_structure(expected[key], found[key], path, f"{where}/{key}")
    else:
        if np.shape(expected) != np.shape(found):
            raise CheckpointError(
                f"checkpoint {path} does not match this run: {where} has shape {np.shape(found)}, "
                f"expected {np.shape(expected)}"
            )
