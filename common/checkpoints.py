"""Checkpoints of everything a run needs to continue, written atomically.

Layout: run_dir/checkpoints/step_<N>/{state.msgpack, meta.json} and run_dir/checkpoints/LATEST naming
the newest complete one. A checkpoint directory is written under a temporary name and renamed when
complete; LATEST is replaced atomically afterwards, so a crash at any point leaves the previous
checkpoint as "latest".
"""

from __future__ import annotations

import hashlib
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
    """Writes step_<step> and points LATEST at it. On any failure (a full disk, an interrupt) the temporary
    files are removed and the previous checkpoint stays the latest."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step}"
    tmp = root / f".step_{step}.tmp"
    latest_tmp = root / "LATEST.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        host_state = jax.device_get(state)
        write_state(tmp / "state.msgpack", flax.serialization.to_bytes(host_state))
        write_json_atomic(tmp / "meta.json", {**meta, "step": step})
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        latest_tmp.write_text(final.name + "\n")
        os.replace(latest_tmp, root / "LATEST")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        latest_tmp.unlink(missing_ok=True)
        raise
    for old in sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def write_state(path: Path, payload: bytes) -> None:
    with open(path, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


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


def read(path: Path) -> tuple[dict, dict]:
    """(meta, raw state) of a checkpoint, its two files read one right after the other; CheckpointError when
    unreadable. FileNotFoundError passes through: the checkpoint went away (rotated out by its run, say)."""
    try:
        text, state = (path / "meta.json").read_text(), (path / "state.msgpack").read_bytes()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({Path(e.filename or '').name}: "
                              f"{e.strerror or e})") from None
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (meta.json: {str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} is unreadable (meta.json holds no JSON object)")
    try:
        raw = flax.serialization.msgpack_restore(state)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} is unreadable (state.msgpack: {str(e).splitlines()[0]})") from None
    return meta, raw


def restore(path: Path, template, expected_meta: dict, checkpoint: tuple[dict, dict] | None = None):
    """Loads a checkpoint (or the `read` of it given) into the structure of `template`; checks `expected_meta`
    (algorithm, members, ...) and the shapes first."""
    try:
        meta, raw = checkpoint if checkpoint is not None else read(path)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint {path} is unreadable ({e.strerror}: {e.filename})") from None
    for key, value in expected_meta.items():
        if meta.get(key) != value:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={meta.get(key)!r}, this run has {key}={value!r}"
            )
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


# ------------------------------------------------------------------------------------------------
# Identity: what a resumed run must share with the run that wrote the checkpoint
# ------------------------------------------------------------------------------------------------

# Config fields that may change between a run and its resume: where and how it logs, and how far it goes.
# Every other field changes what the run computes or records.
RESUMABLE_FIELDS = frozenset({
    "dataset",  # the content is compared instead (the same file may move)
    "log_dir", "run_name", "overwrite", "resume", "resume_changes", "progress", "tensorboard", "wandb",
    "overlap_evaluation",
    "checkpoint_every", "total_steps", "distributed", "coordinator_address", "num_processes", "process_id",
})


def dataset_fingerprint(transitions) -> str:
    """sha256 of the arrays trained on (names, dtypes, shapes and bytes of every field of the Q-learning view)."""
    digest = hashlib.sha256()
    for name, array in zip(transitions._fields, transitions):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.data)
    return digest.hexdigest()


def check_dataset(where: str, recorded_sha256: str, current_sha256: str, refusal: str) -> None:
    """The one dataset identity check (a resume, `load_run`): the arrays now must be the ones `where` (a
    checkpoint, a run) was trained on, by their `dataset_fingerprint`; CheckpointError starting with `refusal`."""
    if recorded_sha256 != current_sha256:
        raise CheckpointError(
            f"{refusal}: the dataset's content differs from the one {where} was trained on "
            f"(sha256 {recorded_sha256[:12]}... there, {current_sha256[:12]}... now)"
        )


def config_identity(config: dict) -> dict:
    """The computation-changing fields of a config dict, flattened to dotted names with JSON values."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}{key}.", item)
        elif prefix[:-1] not in RESUMABLE_FIELDS:
            flat[prefix[:-1]] = value

    walk("", config)
    return json.loads(json.dumps(flat, default=_plain_json))


def _plain_json(value):
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return str(value)


def check_identity(where: str, recorded: dict, current: dict, allowed=()) -> list[str]:
    """Refuses a resume whose dataset content or computation-changing config differs from `recorded`.

    `recorded` / `current`: {"dataset_sha256": ..., "config": config_identity(...)}. Fields named in `allowed`
    may differ; returns their changes as "field old -> new" strings (for the run's history).
    """
    if recorded.get("dataset_sha256") is None or "config" not in recorded:
        raise CheckpointError(f"{where} records no dataset fingerprint or config, so this resume cannot be checked")
    check_dataset(where, recorded["dataset_sha256"], current["dataset_sha256"], "resume refused")
    old, new = recorded["config"], current["config"]
    changed = [name for name in sorted(set(old) | set(new)) if old.get(name, "<absent>") != new.get(name, "<absent>")]
    diff = [f"{name} {_show(old.get(name, '<absent>'))} -> {_show(new.get(name, '<absent>'))}" for name in changed]
    refused = [d for name, d in zip(changed, diff) if name not in allowed]
    if refused:
        names = ",".join(name for name in changed if name not in allowed)
        raise CheckpointError(
            f"resume refused: config differs from {where}: {'; '.join(refused)} (to continue with the change, "
            f"add --config.resume_changes={names})"
        )
    return diff


def _show(value) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)
