"""The command line and host loop shared by every algorithm.

    python algorithms/<algo>.py --config configs/<file>.py[:variant] --config.<field>=<value> ...

One process trains `num_seeds` runs (the "members") as one vmapped program: each evaluation interval
is a single jitted call running `eval_every` updates of every member in a fused `lax.scan`; between
calls the host evaluates, logs, and checkpoints. Exit status: 0 done, 2 bad input or config (one line
on stderr), 3 training diverged (non-finite loss; the message names the step, the seed and the metric).
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from common import checkpoints
from common.datasets import Dataset, DatasetError, load_dataset
from common.evaluation import Evaluator
from common.logger import RunLogger, plot_curves, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
EXIT_BAD_INPUT, EXIT_DIVERGED = 2, 3


class ConfigError(ValueError):
    """A config that cannot run (one-line message)."""


class Diverged(RuntimeError):
    """A non-finite training metric."""


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


def parse_config(argv, default_config: str):
    """Parses `--config path[:variant]` and `--config.field=value` overrides with ml_collections."""
    from absl import flags
    from ml_collections import config_flags

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


def validate_shared(config) -> None:
    positive = ("total_steps", "eval_every", "batch_size", "num_seeds")
    for name in positive:
        if not isinstance(config[name], int) or config[name] <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {config[name]!r}")
    if config.eval_episodes < 0:
        raise ConfigError(f"eval_episodes must be >= 0, got {config.eval_episodes}")
    if config.total_steps % config.eval_every:
        raise ConfigError(f"total_steps ({config.total_steps}) must be a multiple of eval_every ({config.eval_every})")
    widths = config.get("hidden_dims", (1,))
    if not all(isinstance(w, int) and w > 0 for w in widths):
        raise ConfigError(f"hidden_dims must be positive integers, got {tuple(widths)}")
    if config.checkpoint_every < 0 or config.checkpoint_every % config.eval_every:
        raise ConfigError(f"checkpoint_every ({config.checkpoint_every}) must be 0 or a multiple of eval_every "
                          f"({config.eval_every})")


def run_name(algorithm: str, config) -> str:
    if config.run_name:
        return config.run_name
    dataset = Path(config.dataset).stem if config.dataset.endswith((".hdf5", ".h5", ".npz")) else config.dataset
    return f"{algorithm}_{dataset.replace(':', '_').replace('/', '_')}_s{config.seed}"


def prepare_run_dir(run_dir: Path, config) -> None:
    """Refuses to touch an existing run unless resume or overwrite is set; checks the directory is writable."""
    if run_dir.exists() and any(run_dir.iterdir()):
        if config.resume:
            if checkpoints.latest(run_dir) is None:
                raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")
            return
        if not config.overwrite:
            raise ConfigError(f"run directory {run_dir} already exists (set --config.resume=True to continue it "
                              "or --config.overwrite=True to replace it)")
        shutil.rmtree(run_dir)
    elif config.resume:
        raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"log directory {run_dir} is not writable ({e.strerror})") from None


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


def check_finite(metrics, params_finite, members, step, eval_every, last_checkpoint):
    """Raises Diverged naming the first non-finite metric (or parameters), its step and its seed."""
    bad = first_non_finite({k: v[: len(members)] for k, v in metrics.items()})
    where = f"last checkpoint: step {last_checkpoint}"
    if bad is not None:
        member, offset, name = bad
        steps_per_row = eval_every // metrics[name].shape[1]
        at = step - eval_every + (offset + 1) * steps_per_row
        raise Diverged(f"training diverged: non-finite {name} at step {at} ({_label(members[member])}); {where}")
    broken = np.flatnonzero(~np.asarray(params_finite)[: len(members)])
    if broken.size:
        raise Diverged(f"training diverged: non-finite parameters by step {step} ({_label(members[broken[0]])}); "
                       f"{where}")


def _label(member: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in member.items())


# ------------------------------------------------------------------------------------------------
# Training loop, as named steps: prepare -> place -> restore -> compile -> (train one interval -> evaluate
# -> checkpoint) per interval -> summarise. `run` strings them together.
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
    evaluator: Evaluator | None = None

    @property
    def stats(self) -> dict:
        return self.dataset.stats

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()


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
    last_checkpoint: int
    resumed: bool = False
    train_seconds: float = 0.0
    logger: RunLogger | None = None
    bar: Any = None

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        if self.bar is not None:
            self.bar.close()


def prepare(algorithm, make_agent, config, validate_config=None, dataset: Dataset | None = None) -> Job:
    """Prepare and validate: every input check, then the run directory (nothing is written before the checks)."""
    validate_shared(config)
    if validate_config is not None:
        validate_config(config)
    dataset = dataset if dataset is not None else load_dataset(config.dataset, env_id=config.env or None)
    stats = dataset.stats
    if stats["transitions"] < config.batch_size:
        raise DatasetError(f"{dataset.source}: {stats['transitions']} transitions, fewer than one batch "
                           f"(batch_size={config.batch_size})")
    env_id = config.env or dataset.env_id
    if config.eval_episodes and not env_id:
        raise ConfigError(f"cannot infer the evaluation env of dataset '{config.dataset}': set --config.env")
    agent = make_agent(config, dataset)
    members, hparams = build_members(config, agent.hparams)
    job = Job(algorithm, config, dataset, env_id, agent, members, hparams,
              Path(config.log_dir).expanduser() / run_name(algorithm, config), jax.process_index() == 0)
    if config.eval_episodes and job.is_main:
        job.evaluator = Evaluator(env_id, agent.act, len(members), config.eval_episodes, stats["obs_dim"],
                                  stats["act_dim"], config.seed)
    try:
        if job.is_main:
            prepare_run_dir(job.run_dir, config)
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
    """What a checkpoint must share with the run that resumes it."""
    return {"algorithm": job.algorithm, "members": job.members, "dataset_stats": job.stats}


def restore(job: Job, program: Program, state) -> Progress:
    """Restore: a resumed run continues from its latest checkpoint; a new one starts at step 0."""
    config = job.config
    progress = Progress(state, 0, [], 0)
    if config.resume:
        path = checkpoints.latest(job.run_dir)
        if path is None:
            raise ConfigError(f"nothing to resume: {job.run_dir} has no checkpoint")
        host_state, meta = checkpoints.restore(path, state, checkpoint_meta(job))
        progress.state = (put_global(host_state, program.sharding) if program.sharding is not None
                          else jax.device_put(host_state))
        progress.step = progress.last_checkpoint = int(meta["step"])
        progress.eval_history, progress.resumed = meta["eval_history"], True
        if progress.step >= config.total_steps:
            raise ConfigError(f"nothing to resume: the checkpoint is at step {progress.step}, total_steps is "
                              f"{config.total_steps}")
    if job.is_main:
        write_json_atomic(job.run_dir / "config.json", config.to_dict())
    return progress


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
    """metrics.csv / eval.csv (cut back to the checkpoint on resume) and the progress bar, on process 0."""
    if not job.is_main:
        return
    config = job.config
    progress.logger = RunLogger(job.run_dir, job.members, program.metric_names,
                                progress.step if progress.resumed else None, config.tensorboard, config.wandb,
                                config.to_dict())
    progress.bar = _progress(config, progress.step)


def train_interval(job: Job, program: Program, progress: Progress) -> None:
    """Train one interval: `eval_every` updates of every member; Diverged on the first non-finite value."""
    config = job.config
    t0 = time.perf_counter()
    progress.state, metrics, params_finite = program.update(progress.state, program.data)
    metrics, params_finite = to_host((metrics, params_finite))
    progress.train_seconds += time.perf_counter() - t0
    progress.step += config.eval_every
    check_finite(metrics, params_finite, job.members, progress.step, config.eval_every, progress.last_checkpoint)
    if progress.logger is not None:
        progress.logger.log_metrics(progress.step,
                                    {k: v[: len(job.members)].mean(axis=1) for k, v in metrics.items()})


def evaluate(job: Job, program: Program, progress: Progress) -> None:
    """Evaluate: every episode of every member at once (process 0); scores join the evaluation history."""
    if not job.config.eval_episodes:
        return
    params = program.policy_params(progress.state)
    params = to_host(params) if jax.process_count() > 1 else jax.device_put(params, jax.devices()[0])
    if job.evaluator is None:
        return
    returns = job.evaluator(params, progress.step // job.config.eval_every)
    scores = job.evaluator.normalized(returns)
    progress.logger.log_eval(progress.step, returns, scores)
    progress.eval_history.append({"step": progress.step, "score": scores.mean(axis=1).tolist(),
                                  "return": returns.mean(axis=1).tolist()})


def checkpoint_due(config, step: int) -> bool:
    return bool(config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.total_steps


def save_checkpoint(job: Job, progress: Progress) -> None:
    """Checkpoint: the state after `progress.step` updates and the evaluation history, written atomically."""
    host_state = to_host(progress.state)
    if job.is_main:
        checkpoints.save(job.run_dir, progress.step, host_state,
                         {**checkpoint_meta(job), "eval_history": progress.eval_history})
    progress.last_checkpoint = progress.step


def train(job: Job, program: Program, progress: Progress) -> None:
    """Every remaining interval: train, evaluate, checkpoint when due, advance the progress bar."""
    config = job.config
    while progress.step < config.total_steps:
        train_interval(job, program, progress)
        evaluate(job, program, progress)
        if checkpoint_due(config, progress.step):
            save_checkpoint(job, progress)
        if progress.bar is not None:
            progress.bar.update(config.eval_every)
            if progress.eval_history:
                progress.bar.set_postfix(score=f"{np.nanmean(progress.eval_history[-1]['score']):.1f}")


def summarise(job: Job, program: Program, progress: Progress, start_step: int) -> dict:
    """Summarise: summary.json and curves.png (process 0); returns the summary with its run directory."""
    config = job.config
    steps_per_second = (config.total_steps - start_step) / max(progress.train_seconds, 1e-9)
    summary = make_summary(job.algorithm, config, job.env_id, job.stats, job.members, progress.eval_history,
                           steps_per_second, program.compile_seconds)
    summary["run_dir"] = str(job.run_dir)
    if not job.is_main:
        return summary
    write_json_atomic(job.run_dir / "summary.json", {k: v for k, v in summary.items() if k != "run_dir"})
    if progress.eval_history:
        plot_curves(job.run_dir, f"{job.algorithm} on {config.dataset}")
    return summary


def run(algorithm: str, make_agent, prepare_data, config, validate_config=None, dataset: Dataset | None = None):
    """Trains the config's members; returns the summary dict. Raises ConfigError/DatasetError/Diverged."""
    job = prepare(algorithm, make_agent, config, validate_config, dataset)
    progress = None
    try:
        program, state = place(job, prepare_data)
        progress = restore(job, program, state)
        start_step = progress.step
        compile_interval(job, program, progress.state)
        open_logs(job, program, progress)
        try:
            train(job, program, progress)
        finally:
            progress.close()
        return summarise(job, program, progress, start_step)
    finally:
        job.close()


def make_summary(algorithm, config, env_id, stats, members, eval_history, steps_per_second, compile_seconds):
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
        "normalized_score_final": final.tolist(),
        "normalized_score_best": best.tolist(),
        "normalized_score_final_mean": float(np.mean(final)),
        "normalized_score_final_std": float(np.std(final)),
        "return_final": eval_history[-1]["return"] if eval_history else [],
        "steps_per_second": float(steps_per_second),
        "compile_seconds": float(compile_seconds),
        "dataset_stats": stats,
        "device": str(jax.devices()[0].device_kind),
    }


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
    """CLI entry: parse, run, print the result; returns the exit status."""
    argv = sys.argv if argv is None else argv
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        config = parse_config(argv, default_config)
        if config.distributed:
            initialize_distributed(config)
        summary = run(algorithm, make_agent, prepare_data, config, validate_config)
    except (ConfigError, DatasetError, checkpoints.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    if jax.process_index() != 0:
        return 0
    final = summary["normalized_score_final_mean"]
    print(f"{algorithm} on {summary['dataset']}: final normalised score {final:.1f} "
          f"± {summary['normalized_score_final_std']:.1f} over {summary['num_seeds']} seed(s); "
          f"{summary['steps_per_second']:.0f} steps/s (all seeds together)")
    if len(summary["members"]) > summary["num_seeds"]:
        print(sweep_table(summary))
    print(f"results: {summary['run_dir']} (eval.csv, metrics.csv, summary.json, curves.png)")
    return 0


def sweep_table(summary) -> str:
    """Final normalised score per swept combination (mean ± std over its seeds), as a Markdown table."""
    swept = [k for k in summary["members"][0] if k != "seed"]
    groups: dict[tuple, list[float]] = {}
    for member, score in zip(summary["members"], summary["normalized_score_final"]):
        groups.setdefault(tuple(member[k] for k in swept), []).append(score)
    lines = ["| " + " | ".join(swept) + " | final score | seeds |", "|" + "---|" * (len(swept) + 2)]
    for values, scores in groups.items():
        cells = " | ".join(f"{v:g}" for v in values)
        lines.append(f"| {cells} | {np.mean(scores):.1f} ± {np.std(scores):.1f} | {len(scores)} |")
    return "\n".join(lines)
