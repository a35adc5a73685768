"""The command line and host loop shared by every algorithm.

    python algorithms/<algo>.py --config configs/<file>.py[:variant] --config.<field>=<value> ...

One process trains `num_seeds` runs (the "members") as one vmapped program: each evaluation interval
is a single jitted call running `eval_every` updates of every member in a fused `lax.scan`; between
calls the host evaluates, logs, and checkpoints (with `overlap_evaluation`, while the next call runs).

Exit status: 0 done; 2 bad input, config or environment (one line on stderr, nothing already written
lost); 3 training diverged (the message names the step, the seed and the metric); 130 / 143 interrupted
by SIGINT / SIGTERM (a checkpoint of the last completed interval is written; `--config.resume=True`
continues the run exactly).
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import itertools
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from common import checkpoints
from common.datasets import Dataset, DatasetError, load_dataset
from common.domains import check_config_domain
from common.evaluation import Evaluator, setup_for_dataset
from common.logger import RunLogger, append_history, plot_curves, read_history, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3  # interrupted: 128 + the signal's number (130 SIGINT, 143 SIGTERM)
MAX_SEED = 2**31 - 1  # jax.random.PRNGKey folds larger seeds onto others
# jax_default_matmul_precision values a config may name: "highest" is float32 on every backend; "default" lets
# XLA use TF32 for float32 matmuls on NVIDIA Ampere+ GPUs (and bfloat16 passes on TPUs); "high" is 3-pass bf16/TF32.
MATMUL_PRECISIONS = ("highest", "high", "default")
OVERLAP_MODES = ("auto", "on", "off")  # config.overlap_evaluation (see overlaps_evaluation)


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


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


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
    if not isinstance(config.checkpoint_every, int) or config.checkpoint_every < 0:
        raise ConfigError(f"checkpoint_every must be an integer >= 0, got {config.checkpoint_every!r}")
    known = set(checkpoints.config_identity(config.to_dict())) | set(checkpoints.RESUMABLE_FIELDS)
    for name in resume_changes(config):
        if name not in known:
            raise ConfigError(f"resume_changes names '{name}', which is not a config field")


def resume_changes(config) -> list[str]:
    return [name.strip() for name in str(config.get("resume_changes", "")).split(",") if name.strip()]


def run_name(algorithm: str, config) -> str:
    if config.run_name:
        return config.run_name
    dataset = Path(config.dataset).stem if config.dataset.endswith((".hdf5", ".h5", ".npz")) else config.dataset
    return f"{algorithm}_{dataset.replace(':', '_').replace('/', '_')}_s{config.seed}"


# ------------------------------------------------------------------------------------------------
# Run directories: one writer at a time, and never a result lost
# ------------------------------------------------------------------------------------------------

LOCK_NAME = ".lock"
# What a run writes; a directory holding only these, with no logged row and no checkpoint, holds no results.
RUN_FILES = {"config.json", "history.jsonl", "metrics.csv", "eval.csv", "checkpoints", ".write_test", LOCK_NAME}


class RunLock:
    """An exclusive `flock` on run_dir/.lock, held for the whole run. The OS drops it when the process ends, so
    a lock file left by a run that died never blocks; the file names the holder's pid for the refusal."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.fd, self.created = None, False

    def acquire(self) -> None:
        while True:
            created = not self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ConfigError(f"log directory {self.path.parent} is not writable ({e.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ConfigError(f"run directory {self.path.parent} is in use by another run (pid {holder}); "
                                  "wait for it to end or choose another --config.run_name") from None
            try:  # the file may have been removed by its previous holder between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd, self.created = fd, created
                return
            os.close(fd)

    def record_holder(self) -> None:
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Removes the lock file (while still holding it) and unlocks."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def holds_results(run_dir: Path) -> bool:
    """Whether a rerun would lose anything: a checkpoint, a summary, a logged row, or a file this project does not
    write (a run killed before its first checkpoint holds none and may be started again)."""
    for path in Path(run_dir).iterdir():
        if path.name not in RUN_FILES:
            return True
        if path.suffix == ".csv" and path.is_file() and len(path.read_bytes().splitlines()) > 1:
            return True
    return checkpoints.latest(run_dir) is not None


def start_of(run_dir: Path, config) -> str:
    """How a run begins: "new", "checkpoint" (resume from the latest one) or "step 0" (resume of a run that
    stopped before its first checkpoint: it starts again from its original config.json)."""
    if not config.resume:
        return "new"
    if checkpoints.latest(run_dir) is not None:
        return "checkpoint"
    if (run_dir / "config.json").is_file() and not (run_dir / "summary.json").exists():
        return "step 0"
    raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")


def prepare_run_dir(run_dir: Path, config) -> tuple[RunLock, str]:
    """Locks the run directory and decides how the run starts (see `start_of`); refuses to touch an existing
    run unless resume or overwrite is set, or it holds no results. A refusal leaves the disk as it was."""
    if config.resume and not run_dir.is_dir():
        raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")
    made = False
    try:
        run_dir.mkdir(parents=True)  # atomic: of two runs starting together, one makes it
        made = True
    except FileExistsError:
        pass
    except OSError as e:
        raise ConfigError(f"log directory {run_dir} is not writable ({e.strerror})") from None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
        start = start_of(run_dir, config)
        if start == "new" and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            if holds_results(run_dir) and not config.overwrite:
                raise ConfigError(f"run directory {run_dir} already exists (set --config.resume=True to continue it "
                                  "or --config.overwrite=True to replace it)")
            for path in run_dir.iterdir():
                if path.name != LOCK_NAME:
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        try:
            probe = run_dir / ".write_test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise ConfigError(f"log directory {run_dir} is not writable ({e.strerror})") from None
        lock.record_holder()
        return lock, start
    except BaseException:
        if lock.created:
            lock.release()
        elif lock.fd is not None:
            os.close(lock.fd)
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------------
# Signals: SIGTERM (what SLURM sends before it kills a job) and SIGINT (Ctrl-C)
# ------------------------------------------------------------------------------------------------


class Preemption:
    """Installs SIGINT / SIGTERM handlers for one run (main thread only; the previous ones come back after).

    Outside `deferred()` a signal raises Interrupted at once (nothing of the run's results exists yet). Inside it,
    the first signal is only recorded: the loop finishes the interval under way (updates, logging, evaluation),
    writes a checkpoint of it and stops. A second signal raises at once: the run stops without a new checkpoint.

    Python drops an exception raised where it cannot propagate (a garbage-collector callback such as JAX's, a
    `__del__`); a signal that lands there is kept pending and `check()`, called between the run's steps, raises it.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum, self.deferring, self.previous, self.pending = None, False, {}, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)  # None: set outside Python

    def _handle(self, signum, frame):
        if self.deferring and self.signum is None:
            self.signum = signum
            return
        if _exceptions_dropped_in(frame):
            self.pending = self.pending or signum
            return
        raise Interrupted(signum)

    def check(self) -> None:
        """Raises the signal that arrived where it could not be raised, if one did."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield self
        finally:
            self.deferring = False

    def requested(self) -> bool:
        """Whether a signal asked the run to stop; with several processes, whether any process got one."""
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            seen = np.asarray(multihost_utils.process_allgather(np.asarray([self.signum or 0])))
            if self.signum is None and seen.any():
                self.signum = int(seen[seen > 0][0])
        return self.signum is not None


def _exceptions_dropped_in(frame) -> bool:
    """Whether `frame` runs inside a garbage-collector callback or a `__del__`, where Python ignores exceptions."""
    callbacks = {getattr(cb, "__code__", None) for cb in gc.callbacks}
    while frame is not None:
        if frame.f_code in callbacks or frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


# ------------------------------------------------------------------------------------------------
# Members: seeds x swept hyperparameter values, sharded over the local devices
# ------------------------------------------------------------------------------------------------


def sweep_values(config) -> dict[str, list[float]]:
    """`--config.sweep.<field>=v1,v2,...` -> {field: [v1, v2, ...]} (fields left empty are not swept)."""
    values = {}
    for name, text in config.get("sweep", {}).items():
        if text in ("", None):
            continue
        try:
            values[name] = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"sweep.{name}: expected comma-separated numbers, got {text!r}") from None
        if not values[name]:
            raise ConfigError(f"sweep.{name}: no values given")
    return values


def build_members(config, default_hparams: dict) -> tuple[list[dict], dict]:
    """Every (swept values, seed) combination: labels for the logs, and the hparams of each as (M,) arrays."""
    sweep = sweep_values(config)
    for name in sweep:
        if name not in default_hparams:
            raise ConfigError(f"sweep.{name}: this field changes the compiled program and cannot be swept in one run; "
                              f"sweepable fields: {', '.join(sorted(default_hparams))}")
    members = [
        {"seed": config.seed + i, **dict(zip(sweep, combo))}
        for combo in itertools.product(*sweep.values())
        for i in range(config.num_seeds)
    ]
    hparams = {name: jnp.asarray([m.get(name, float(value)) for m in members], jnp.float32)
               for name, value in default_hparams.items()}
    return members, hparams


def member_sharding(num_members: int):
    """(sharding of the member axis, padded member count): members spread evenly over all devices.

    With D devices, M members are padded to a multiple of D by repeating the last member; padded
    members train like the others but are never evaluated, logged or reported.
    """
    devices = jax.devices()
    if len(devices) == 1:
        return None, None, num_members
    mesh = Mesh(np.asarray(devices), ("members",))
    padded = -(-num_members // len(devices)) * len(devices)
    return NamedSharding(mesh, P("members")), NamedSharding(mesh, P()), padded


def pad_members(tree, padded: int):
    return jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], padded - x.shape[0], axis=0)]), tree)


def put_global(tree, sharding):
    """Host values -> arrays laid out with `sharding`; each process supplies only its own devices' parts."""
    def put(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def to_host(tree):
    """Device arrays -> numpy; with several processes every process gathers the whole (collective call)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves))


def first_non_finite(metrics: dict[str, np.ndarray]):
    """(member index, step offset, metric name) of the earliest non-finite value, or None."""
    found = None
    for name, values in metrics.items():
        bad = np.argwhere(~np.isfinite(values))
        if bad.size:
            member, offset = bad[np.argmin(bad[:, 1])]
            if found is None or offset < found[1]:
                found = (int(member), int(offset), name)
    return found


def check_finite(metrics, params_finite, members, step, eval_every):
    """Raises Diverged naming the first non-finite metric (or parameters), its step and its seed."""
    bad = first_non_finite({k: v[: len(members)] for k, v in metrics.items()})
    if bad is not None:
        member, offset, name = bad
        steps_per_row = eval_every // metrics[name].shape[1]
        at = step - eval_every + (offset + 1) * steps_per_row
        raise Diverged(f"training diverged: non-finite {name} at step {at} ({_label(members[member])})")
    broken = np.flatnonzero(~np.asarray(params_finite)[: len(members)])
    if broken.size:
        raise Diverged(f"training diverged: non-finite parameters by step {step} ({_label(members[broken[0]])})")


def _label(member: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in member.items())


# ------------------------------------------------------------------------------------------------
# Training loop, as named steps: prepare -> place -> restore -> compile -> (train one interval -> evaluate
# -> checkpoint) per interval -> summarise. `run` strings them together and owns the signal handling.
# ------------------------------------------------------------------------------------------------


@dataclass
class Job:
    """What every step reads: the validated config, the data, the agent and its members, and the run directory."""

    algorithm: str
    config: Any
    dataset: Dataset
    env_id: str | None
    agent: Any
    members: list[dict]
    hparams: dict
    run_dir: Path
    is_main: bool  # with several processes, process 0 evaluates and writes
    fingerprint: str  # sha256 of the arrays trained on
    setup: Any = None  # the evaluation setup (common/domains.EvalSetup), None when nothing names an env
    evaluator: Evaluator | None = None
    lock: RunLock | None = None
    start: str = "new"  # see start_of

    @property
    def stats(self) -> dict:
        return self.dataset.stats

    def identity(self) -> dict:
        return {"dataset_sha256": self.fingerprint, "env_id": self.env_id,
                "config": checkpoints.config_identity(self.config.to_dict())}

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
        if self.lock is not None:
            self.lock.release()


@dataclass
class Program:
    """The data and the compiled interval on the devices."""

    data: Any
    sharding: Any
    replicated: Any
    update: Any = None  # compiled (state, data) -> (state, metrics, params_finite): eval_every updates per member
    metric_names: list = field(default_factory=list)
    policy_params: Any = None  # jitted state -> policy parameters of the real (unpadded) members
    compile_seconds: float = 0.0


@dataclass
class Progress:
    """Where training stands: the state after `step` updates and everything logged up to it."""

    state: Any
    step: int
    eval_history: list
    last_checkpoint: int | None  # step of the newest checkpoint on disk; None: none yet
    start_step: int = 0
    train_seconds: float = 0.0
    logger: RunLogger | None = None
    bar: Any = None

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        if self.bar is not None:
            self.bar.close()

    def how_to_continue(self) -> str:
        if self.last_checkpoint is None:
            return "no checkpoint yet: rerun with --config.resume=True to start again from step 0"
        return f"last checkpoint: step {self.last_checkpoint}; continue with --config.resume=True"


def prepare(algorithm, make_agent, config, validate_config=None, dataset: Dataset | None = None) -> Job:
    """Prepare and validate: every input check, then the locked run directory (nothing is written before)."""
    validate_shared(config)
    if validate_config is not None:
        validate_config(config)
    dataset = dataset if dataset is not None else load_dataset(config.dataset, env_id=config.env or None)
    stats = dataset.stats
    if stats["transitions"] < config.batch_size:
        raise DatasetError(f"{dataset.source}: {stats['transitions']} transitions, fewer than one batch "
                           f"(batch_size={config.batch_size})")
    setup = setup_for_dataset(dataset, config.env)
    if config.eval_episodes and setup is None:
        raise ConfigError(f"cannot infer the evaluation env of dataset '{config.dataset}': set --config.env")
    if setup is not None:
        try:
            warning = check_config_domain(config.get("domain"), setup, config.dataset)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if warning:
            print(warning, file=sys.stderr)
    env_id = setup.env_id if setup is not None else None
    agent = make_agent(config, dataset)
    members, hparams = build_members(config, agent.hparams)
    job = Job(algorithm, config, dataset, env_id, agent, members, hparams,
              Path(config.log_dir).expanduser() / run_name(algorithm, config), jax.process_index() == 0,
              checkpoints.dataset_fingerprint(dataset.transitions), setup)
    try:
        if config.eval_episodes and job.is_main:
            job.evaluator = Evaluator(setup, agent.act, len(members), config.eval_episodes, stats["obs_dim"],
                                      stats["act_dim"], config.seed)
        if job.is_main:
            job.lock, job.start = prepare_run_dir(job.run_dir, config)
        else:
            job.start = start_of(job.run_dir, config)
    except BaseException:
        job.close()
        raise
    return job


def place(job: Job, prepare_data):
    """The training data and freshly initialised members on the devices: (program, initial state)."""
    sharding, replicated, padded = member_sharding(len(job.members))
    data = prepare_data(job.dataset, job.config)
    keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in job.members])
    keys, hparams = pad_members((keys, job.hparams), padded)
    if sharding is not None:
        data = put_global(data, replicated)
        keys, hparams = put_global((keys, hparams), sharding)
    state = jax.jit(jax.vmap(job.agent.init), out_shardings=sharding)(keys, hparams)
    return Program(data, sharding, replicated), state


def checkpoint_meta(job: Job) -> dict:
    """What a checkpoint must share with the run that resumes it (the identity is checked separately)."""
    return {"algorithm": job.algorithm, "members": job.members, "dataset_stats": job.stats}


def restore(job: Job, program: Program, state) -> Progress:
    """Restore: a resume continues from the latest checkpoint once its identity matches (dataset content and
    computation-changing config); config.json keeps the original config and history.jsonl gets one line."""
    config = job.config
    progress = Progress(state, 0, [], None)
    changed = []
    if job.start == "checkpoint":
        path = checkpoints.latest(job.run_dir)
        host_state, meta = checkpoints.restore(path, state, checkpoint_meta(job))
        changed = checkpoints.check_identity(f"checkpoint {path}", meta.get("identity", {}), job.identity(),
                                             resume_changes(config))
        progress.step = progress.last_checkpoint = progress.start_step = int(meta["step"])
        progress.eval_history = meta["eval_history"]
        if progress.step > config.total_steps or (
                progress.step == config.total_steps and (job.run_dir / "summary.json").exists()):
            raise ConfigError(f"nothing to resume: the checkpoint is at step {progress.step}, total_steps is "
                              f"{config.total_steps}")
        progress.state = (put_global(host_state, program.sharding) if program.sharding is not None
                          else jax.device_put(host_state))
    elif job.start == "step 0":
        started = [e for e in read_history(job.run_dir) if e.get("event") == "start"]
        recorded = {"dataset_sha256": started[0].get("dataset_sha256") if started else None,
                    "config": checkpoints.config_identity(_read_config(job.run_dir))}
        changed = checkpoints.check_identity(f"the run in {job.run_dir}", recorded, job.identity(),
                                             resume_changes(config))
    if job.is_main:
        entry = {"event": "start" if job.start == "new" else "resume", "time": _now(), "step": progress.step,
                 "pid": os.getpid(), "dataset_sha256": job.fingerprint}
        if job.start == "new":
            write_json_atomic(job.run_dir / "config.json", config.to_dict())
        else:
            entry.update(changed=changed, config=config.to_dict())
        append_history(job.run_dir, entry)
    return progress


def _read_config(run_dir: Path) -> dict:
    import json

    try:
        return json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot resume {run_dir}: its config.json is unreadable ({str(e).splitlines()[0]})") \
            from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def compile_interval(job: Job, program: Program, state) -> None:
    """Compile: one jitted call runs `eval_every` updates of every member (state donated, metrics returned)."""
    agent, config = job.agent, job.config

    def interval(state, data, num_steps):
        state, metrics = jax.vmap(agent.update, in_axes=(0, None, None))(state, data, num_steps)
        return state, metrics, jax.vmap(all_finite)(state)

    t0 = time.perf_counter()
    shardings = ({} if program.sharding is None
                 else {"in_shardings": (program.sharding, program.replicated), "out_shardings": program.sharding})
    update = jax.jit(interval, static_argnums=2, donate_argnums=0, **shardings)
    program.update = update.lower(state, program.data, config.eval_every).compile()
    program.compile_seconds = time.perf_counter() - t0
    program.metric_names = sorted(jax.eval_shape(lambda s: agent.update(s, program.data, config.eval_every)[1],
                                                 jax.tree.map(lambda x: x[0], state)).keys())
    count = len(job.members)
    program.policy_params = jax.jit(lambda s: jax.tree.map(lambda x: x[:count], jax.vmap(agent.policy_params)(s)))


def open_logs(job: Job, program: Program, progress: Progress) -> None:
    """metrics.csv / eval.csv (cut back to the restored step on resume) and the progress bar, on process 0."""
    if not job.is_main:
        return
    config = job.config
    progress.logger = RunLogger(job.run_dir, job.members, program.metric_names,
                                None if job.start == "new" else progress.step, config.tensorboard, config.wandb,
                                config.to_dict(), evaluate=bool(config.eval_episodes))
    progress.bar = _progress(config, progress.step)


class Dispatched:
    """One interval's update, dispatched (JAX runs it asynchronously): its outputs (state, metrics, params_finite)
    and the seconds from its dispatch to its results being ready. With `watch` (an evaluation runs meanwhile) a
    thread waits for the results and notes when they are ready, so that the evaluation is not counted as training;
    otherwise the interval ends when its results reach the host."""

    def __init__(self, program: Program, state, watch: bool = False):
        self.started = time.perf_counter()
        self.outputs = program.update(state, program.data)  # donates `state`
        self.ready_at = None
        # Not a daemon: at exit Python joins it (it ends with the interval, which XLA finishes anyway) instead of
        # killing it inside JAX's wait, which aborts the process.
        self._watcher = threading.Thread(target=self._wait) if watch else None
        if self._watcher is not None:
            self._watcher.start()

    def _wait(self) -> None:
        jax.block_until_ready(self.outputs)
        self.ready_at = time.perf_counter()

    def seconds(self) -> float:
        if self._watcher is None:
            return time.perf_counter() - self.started
        self._watcher.join()
        return self.ready_at - self.started


def finish_interval(job: Job, progress: Progress, dispatched: Dispatched) -> None:
    """Waits for a dispatched interval (`eval_every` updates of every member): its state becomes progress.state;
    Diverged on the first non-finite value; the metrics are logged."""
    config = job.config
    state, metrics, params_finite = dispatched.outputs
    metrics, params_finite = to_host((metrics, params_finite))
    progress.train_seconds += dispatched.seconds()
    progress.state = state
    progress.step += config.eval_every
    try:
        check_finite(metrics, params_finite, job.members, progress.step, config.eval_every)
    except Diverged as e:
        if progress.last_checkpoint is None:
            raise Diverged(f"{e}; no checkpoint yet: start again with --config.overwrite=True") from None
        raise Diverged(f"{e}; last checkpoint: step {progress.last_checkpoint}") from None
    if progress.logger is not None:
        progress.logger.log_metrics(progress.step,
                                    {k: v[: len(job.members)].mean(axis=1) for k, v in metrics.items()})


def evaluation_device(config):
    """Where the evaluation's policy runs: unless overlap_evaluation is "off", the host CPU (with a GPU it is free
    while the GPU trains the next interval; on a CPU-only machine it is the one device); else the first training
    device."""
    if config.overlap_evaluation != "off":
        try:
            return jax.devices("cpu")[0]
        except RuntimeError:  # JAX_PLATFORMS without cpu
            pass
    return jax.devices()[0]


def overlaps_evaluation(config) -> bool:
    """"on", or "auto" when the evaluation has a device of its own: an XLA device runs its programs in order, so on
    a CPU-only machine the policy's calls would wait for the dispatched interval (the same time as the old order,
    with every checkpoint one interval later)."""
    if config.overlap_evaluation == "auto":
        return evaluation_device(config) not in jax.devices()
    return config.overlap_evaluation == "on"


def evaluation_params(job: Job, program: Program, progress: Progress):
    """A copy of the members' policy parameters on the evaluation device (process 0; None elsewhere or with no
    evaluation): taken before the next interval is dispatched, since that call donates the state's buffers."""
    if not job.config.eval_episodes:
        return None
    params = program.policy_params(progress.state)
    if jax.process_count() > 1:
        params = to_host(params)  # a collective: every process takes part
    if job.evaluator is None:
        return None
    return jax.device_put(params, evaluation_device(job.config), may_alias=False)


def evaluate(job: Job, progress: Progress, params) -> None:
    """Evaluate: every episode of every member at once (process 0); scores join the evaluation history."""
    if params is None:
        return
    returns = job.evaluator(params, progress.step // job.config.eval_every)
    scores = job.evaluator.normalized(returns)
    progress.logger.log_eval(progress.step, returns, scores)
    progress.eval_history.append({"step": progress.step, "score": scores.mean(axis=1).tolist(),
                                  "return": returns.mean(axis=1).tolist()})


def checkpoint_due(config, step: int) -> bool:
    """At the end, and at the first interval end at or past each multiple of checkpoint_every."""
    every = config.checkpoint_every
    return step == config.total_steps or bool(every and step // every > (step - config.eval_every) // every)


def save_checkpoint(job: Job, progress: Progress, host_state=None) -> None:
    """Checkpoint: the state after `progress.step` updates (`host_state`: that state already fetched to the host),
    the evaluation history and the run's identity."""
    host_state = to_host(progress.state) if host_state is None else host_state
    if job.is_main:
        meta = {**checkpoint_meta(job), "identity": job.identity(), "eval_history": progress.eval_history}
        try:
            checkpoints.save(job.run_dir, progress.step, host_state, meta)
        except OSError as e:
            raise WriteFailed(f"cannot write checkpoint step_{progress.step} in {job.run_dir / 'checkpoints'} "
                              f"({e.strerror or e}); {progress.how_to_continue()}") from None
    progress.last_checkpoint = progress.step


def train(job: Job, program: Program, progress: Progress, preemption: Preemption) -> None:
    """Every remaining interval: train, evaluate, checkpoint when due; stops cleanly when a signal came.

    With overlaps_evaluation(config) the next interval is dispatched before the one just finished is evaluated, so
    that the devices train while the host steps the evaluation envs; the same parameters are evaluated with the
    same seeds, so every file is the same as without. A stop request that arrives while an interval is under way
    (dispatched) lets it finish: it is evaluated, checkpointed, and the run stops there.
    """
    config = job.config
    overlap = overlaps_evaluation(config)
    running = None  # the dispatched interval, if one is
    while progress.step < config.total_steps:
        finish_interval(job, progress, running or Dispatched(program, progress.state))  # (first, or no overlap)
        running = None
        preemption.check()
        stop_requested = preemption.requested()  # (a collective with several processes: every one asks)
        params = evaluation_params(job, program, progress)
        host_state = None
        if overlap and progress.step < config.total_steps and not stop_requested:
            if checkpoint_due(config, progress.step):
                host_state = to_host(progress.state)  # before the next interval's update is donated the state
            running = Dispatched(program, progress.state, watch=True)
        evaluate(job, progress, params)
        preemption.check()
        if checkpoint_due(config, progress.step):
            save_checkpoint(job, progress, host_state)
        stop_requested = preemption.requested()
        if stop_requested and running is None and progress.step < config.total_steps:
            if progress.last_checkpoint != progress.step:
                save_checkpoint(job, progress)
            raise Interrupted(preemption.signum, f"stopped after step {progress.step} of {config.total_steps} and "
                                                 f"saved a checkpoint there; continue with --config.resume=True")
        if progress.bar is not None:
            progress.bar.update(config.eval_every)
            if progress.eval_history:
                score = np.asarray(progress.eval_history[-1]["score"], np.float64)
                if np.isfinite(score).any():
                    progress.bar.set_postfix(score=f"{np.nanmean(score):.1f}")


def summarise(job: Job, program: Program, progress: Progress) -> dict:
    """Summarise: summary.json and curves.png (process 0); returns the summary with its run directory."""
    config = job.config
    trained = config.total_steps - progress.start_step
    steps_per_second = trained / max(progress.train_seconds, 1e-9) if trained else None
    summary = make_summary(job.algorithm, config, job.env_id, job.stats, job.members, progress.eval_history,
                           steps_per_second, program.compile_seconds)
    summary["evaluation"] = job.setup.describe() if job.setup is not None else None
    summary["run_dir"] = str(job.run_dir)
    if not job.is_main:
        return summary
    write_json_atomic(job.run_dir / "summary.json", {k: v for k, v in summary.items() if k != "run_dir"})
    if progress.eval_history:
        plot_curves(job.run_dir, f"{job.algorithm} on {config.dataset}")
    return summary


def run(algorithm: str, make_agent, prepare_data, config, validate_config=None, dataset: Dataset | None = None):
    """Trains the config's members; returns the summary dict.

    Raises ConfigError / DatasetError / CheckpointError (bad input), Diverged, WriteFailed, or Interrupted
    (SIGINT / SIGTERM; a checkpoint of the last completed interval is on disk when its detail says so).
    """
    with Preemption() as preemption, jax.default_matmul_precision(config.get("matmul_precision", "highest")):
        try:
            job = prepare(algorithm, make_agent, config, validate_config, dataset)
        except Interrupted as e:
            e.detail = "stopped before the run started; nothing was written: rerun the same command"
            raise
        progress = None
        try:
            preemption.check()
            program, state = place(job, prepare_data)
            preemption.check()
            progress = restore(job, program, state)
            preemption.check()
            compile_interval(job, program, progress.state)
            preemption.check()
            open_logs(job, program, progress)
            with preemption.deferred():
                try:
                    train(job, program, progress, preemption)
                finally:
                    progress.close()
                return summarise(job, program, progress)
        except Interrupted as e:
            if not e.detail:
                e.detail = _where_interrupted(job, progress, second=preemption.signum is not None)
            raise
        except OSError as e:
            where = e.filename or job.run_dir
            continuation = progress.how_to_continue() if progress is not None else "rerun the same command"
            raise WriteFailed(f"cannot write {where} ({e.strerror or e}); {continuation}") from None
        finally:
            job.close()


def _where_interrupted(job: Job, progress: Progress | None, second: bool) -> str:
    """The detail of an interrupt that did not wait for the end of an interval (before training, or a second
    signal)."""
    if not second and (progress is None or progress.step == progress.start_step):
        if job.start == "checkpoint":
            return "stopped before training resumed; the checkpoint is unchanged: continue with --config.resume=True"
        return "stopped before the first training step; nothing to lose: rerun the same command"
    return (f"stopped at once{' (second signal)' if second else ''}, after step {progress.step}; "
            f"{progress.how_to_continue()}")


def make_summary(algorithm, config, env_id, stats, members, eval_history, steps_per_second, compile_seconds):
    """The summary.json fields; a value that cannot be computed (no evaluation, no reference score) is None."""
    scores = np.asarray([e["score"] for e in eval_history], np.float64).reshape(len(eval_history), len(members))
    final = scores[-1] if len(scores) else np.full(len(members), np.nan)
    best = np.nanmax(scores, axis=0) if len(scores) and not np.all(np.isnan(scores)) else final
    return {
        "algorithm": algorithm,
        "dataset": config.dataset,
        "env": env_id,
        "num_seeds": config.num_seeds,
        "num_members": len(members),
        "members": members,
        "total_steps": config.total_steps,
        "evaluations": len(eval_history),
        "normalized_score_final": _or_none(final),
        "normalized_score_best": _or_none(best),
        "normalized_score_final_mean": _or_none(np.mean(final)),
        "normalized_score_final_std": _or_none(np.std(final)),
        "return_final": eval_history[-1]["return"] if eval_history else [],
        "steps_per_second": None if steps_per_second is None else float(steps_per_second),
        "compile_seconds": float(compile_seconds),
        "dataset_stats": stats,
        "device": str(jax.devices()[0].device_kind),
    }


def _or_none(values):
    """Floats with NaN as None (JSON null): a score that does not exist is not reported as a number."""
    values = np.asarray(values, np.float64)
    if values.ndim == 0:
        return float(values) if np.isfinite(values) else None
    return [float(v) if np.isfinite(v) else None for v in values]


def _progress(config, start_step):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.total_steps, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------------


def initialize_distributed(config) -> None:
    """Joins a multi-process JAX job; fields left empty are read from the environment (or SLURM) by JAX."""
    jax.distributed.initialize(
        coordinator_address=config.coordinator_address or None,
        num_processes=config.num_processes or None,
        process_id=config.process_id if config.process_id >= 0 else None,
    )


def main(algorithm, make_agent, prepare_data, argv=None, default_config="", validate_config=None) -> int:
    """CLI entry: parse, run, print the result; returns the exit status (see the module docstring)."""
    cli, argv = argv is None, sys.argv if argv is None else argv
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        config = parse_config(argv, default_config)
        if config.distributed:
            initialize_distributed(config)
        summary = run(algorithm, make_agent, prepare_data, config, validate_config)
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
    print(result_line(algorithm, summary))
    if len(summary["members"]) > summary["num_seeds"]:
        print(sweep_table(summary))
    written = [name for name in ("eval.csv", "metrics.csv", "summary.json", "curves.png")
               if (Path(summary["run_dir"]) / name).exists()]
    print(f"results: {summary['run_dir']} ({', '.join(written)})")
    return 0


def ignore_further_signals() -> None:
    """Once the run has stopped, a signal during the process's exit would only add a traceback to its one line."""
    for s in Preemption.SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def result_line(algorithm: str, summary: dict) -> str:
    """One line: the final normalised score, or plainly why there is none."""
    head = f"{algorithm} on {summary['dataset']}"
    speed = summary["steps_per_second"]
    tail = f"{speed:.0f} steps/s (all seeds together)" if speed is not None else "no step left to train"
    seeds = f"over {summary['num_seeds']} seed(s)"
    if not summary["evaluations"]:
        return f"{head}: trained {summary['total_steps']} steps, no evaluation (eval_episodes=0); {tail}"
    if summary["normalized_score_final_mean"] is None:
        returns = np.asarray(summary["return_final"], np.float64)
        return (f"{head}: final return {returns.mean():.1f} ± {returns.std():.1f} {seeds} (no normalised score: "
                f"env '{summary['env']}' has no reference returns); {tail}")
    return (f"{head}: final normalised score {summary['normalized_score_final_mean']:.1f} "
            f"± {summary['normalized_score_final_std']:.1f} {seeds}; {tail}")


def sweep_table(summary) -> str:
    """Final normalised score per swept combination (mean ± std over its seeds), as a Markdown table."""
    swept = [k for k in summary["members"][0] if k != "seed"]
    groups: dict[tuple, list[float]] = {}
    for member, score in zip(summary["members"], summary["normalized_score_final"]):
        groups.setdefault(tuple(member[k] for k in swept), []).append(np.nan if score is None else score)
    lines = ["| " + " | ".join(swept) + " | final score | seeds |", "|" + "---|" * (len(swept) + 2)]
    for values, scores in groups.items():
        cells = " | ".join(f"{v:g}" for v in values)
        score = f"{np.mean(scores):.1f} ± {np.std(scores):.1f}" if np.isfinite(scores).all() else "n/a"
        lines.append(f"| {cells} | {score} | {len(scores)} |")
    return "\n".join(lines)
