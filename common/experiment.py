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
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from common import checkpoints
from common.datasets import Dataset, DatasetError, load_dataset
from common.domains import check_config_domain
from common.evaluation import Evaluator, setup_for_dataset
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
# Training loop
# ------------------------------------------------------------------------------------------------


def run(algorithm: str, make_agent, prepare_data, config, validate_config=None, dataset: Dataset | None = None):
    """Trains the config's members; returns the summary dict. Raises ConfigError/DatasetError/Diverged."""
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
    is_main = jax.process_index() == 0  # with several processes, process 0 evaluates and writes
    evaluator = None
    if config.eval_episodes and is_main:
        evaluator = Evaluator(setup, agent.act, len(members), config.eval_episodes, stats["obs_dim"],
                              stats["act_dim"], config.seed)

    run_dir = Path(config.log_dir).expanduser() / run_name(algorithm, config)
    if is_main:
        prepare_run_dir(run_dir, config)  # nothing is written before every input check above has passed

    sharding, replicated, padded = member_sharding(len(members))
    data = prepare_data(dataset, config)
    keys = jnp.stack([jax.random.PRNGKey(m["seed"]) for m in members])
    keys, hparams = pad_members((keys, hparams), padded)
    if sharding is not None:
        data = put_global(data, replicated)
        keys, hparams = put_global((keys, hparams), sharding)
    state = jax.jit(jax.vmap(agent.init), out_shardings=sharding)(keys, hparams)

    meta_expected = {"algorithm": algorithm, "members": members, "dataset_stats": stats}
    start_step, eval_history = 0, []
    if config.resume:
        path = checkpoints.latest(run_dir)
        if path is None:
            raise ConfigError(f"nothing to resume: {run_dir} has no checkpoint")
        host_state, meta = checkpoints.restore(path, state, meta_expected)
        state = put_global(host_state, sharding) if sharding is not None else jax.device_put(host_state)
        start_step, eval_history = int(meta["step"]), meta["eval_history"]
        if start_step >= config.total_steps:
            raise ConfigError(f"nothing to resume: the checkpoint is at step {start_step}, total_steps is "
                              f"{config.total_steps}")
    if is_main:
        write_json_atomic(run_dir / "config.json", config.to_dict())

    def interval(state, data, num_steps):
        state, metrics = jax.vmap(agent.update, in_axes=(0, None, None))(state, data, num_steps)
        return state, metrics, jax.vmap(all_finite)(state)

    t0 = time.perf_counter()
    shardings = {} if sharding is None else {"in_shardings": (sharding, replicated), "out_shardings": sharding}
    update = jax.jit(interval, static_argnums=2, donate_argnums=0, **shardings)
    update = update.lower(state, data, config.eval_every).compile()
    compile_seconds = time.perf_counter() - t0

    metric_names = sorted(jax.eval_shape(lambda s: agent.update(s, data, config.eval_every)[1],
                                         jax.tree.map(lambda x: x[0], state)).keys())
    logger = RunLogger(run_dir, members, metric_names, start_step if config.resume else None,
                       config.tensorboard, config.wandb, config.to_dict()) if is_main else None
    progress = _progress(config, start_step) if is_main else None
    eval_device = jax.devices()[0]
    policy_params = jax.jit(lambda s: jax.tree.map(lambda x: x[: len(members)], jax.vmap(agent.policy_params)(s)))
    train_seconds, last_checkpoint = 0.0, start_step
    try:
        for step in range(start_step + config.eval_every, config.total_steps + 1, config.eval_every):
            t0 = time.perf_counter()
            state, metrics, params_finite = update(state, data)
            metrics, params_finite = to_host((metrics, params_finite))
            train_seconds += time.perf_counter() - t0
            check_finite(metrics, params_finite, members, step, config.eval_every, last_checkpoint)
            if logger is not None:
                logger.log_metrics(step, {k: v[: len(members)].mean(axis=1) for k, v in metrics.items()})
            if config.eval_episodes:
                params = policy_params(state)
                params = to_host(params) if jax.process_count() > 1 else jax.device_put(params, eval_device)
            if evaluator is not None:
                returns = evaluator(params, step // config.eval_every)
                scores = evaluator.normalized(returns)
                logger.log_eval(step, returns, scores)
                eval_history.append({"step": step, "score": scores.mean(axis=1).tolist(),
                                     "return": returns.mean(axis=1).tolist()})
            if (config.checkpoint_every and step % config.checkpoint_every == 0) or step == config.total_steps:
                host_state = to_host(state)
                if is_main:
                    checkpoints.save(run_dir, step, host_state, {**meta_expected, "eval_history": eval_history})
                last_checkpoint = step
            if progress is not None:
                progress.update(config.eval_every)
                if eval_history:
                    progress.set_postfix(score=f"{np.nanmean(eval_history[-1]['score']):.1f}")
    finally:
        if logger is not None:
            logger.close()
        if progress is not None:
            progress.close()
        if evaluator is not None:
            evaluator.close()

    summary = make_summary(algorithm, config, env_id, stats, members, eval_history,
                           (config.total_steps - start_step) / max(train_seconds, 1e-9), compile_seconds)
    summary["evaluation"] = setup.describe() if setup is not None else None
    summary["run_dir"] = str(run_dir)
    if not is_main:
        return summary
    write_json_atomic(run_dir / "summary.json", {k: v for k, v in summary.items() if k != "run_dir"})
    if eval_history:
        plot_curves(run_dir, f"{algorithm} on {config.dataset}")
    return summary


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
    score = "n/a (no reference scores)" if np.isnan(final) else \
        f"{final:.1f} ± {summary['normalized_score_final_std']:.1f}"
    print(f"{algorithm} on {summary['dataset']}: final normalised score {score} "
          f"over {summary['num_seeds']} seed(s); "
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
