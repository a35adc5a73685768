"""Makes D4RL-style MuJoCo datasets with this project's own SAC (no machine here can download D4RL).

D4RL's recipe, on gymnasium MuJoCo v4 (the version D4RL's reference scores apply to):
  random         rollouts of a randomly initialised policy;
  medium         rollouts of a SAC policy stopped at about one third of expert return
                 (targets: hopper 1100, halfcheetah 4000, walker2d 1500; change with --medium-return);
  medium-replay  SAC's replay buffer up to that point, in order, with its terminals and timeouts;
  expert         rollouts of the policy after all --sac-steps (needs a full run: expensive);
  medium-expert  medium and expert concatenated.
Rollouts sample from the stochastic policy, as D4RL's did. Actions are stored in [-1, 1]; episodes are
truncated (timeouts) at 1000 steps. Every level is capped at --max-transitions by keeping WHOLE episodes.

Usage:
  python datagen/make_datasets.py --env hopper --levels random,medium,medium-replay --seed 0 \\
      --out data/ --max-transitions 100000
  # reuse a finished SAC run instead of training again (written by datagen/sac.py --out DIR --save-replay):
  python datagen/make_datasets.py --env hopper --levels medium,medium-replay --sac-run runs/sac_hopper ...

Files are named <env>-<level>-<version>.hdf5 (e.g. data/hopper-medium-v4.hdf5) and load with
`common.datasets.load_dataset("hopper-medium-v4")` once they are under data/.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import jax
import numpy as np

from common import datasets, domains
from common.errors import DatasetError
from datagen import rollouts, sac

FORMAT_VERSION = 1
GENERATOR = "datagen/make_datasets.py"  # recorded in every file's metadata
LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
# About one third of D4RL's expert returns (hopper ~3500, halfcheetah ~12000, walker2d ~4600).
MEDIUM_RETURNS = {"hopper": 1100.0, "halfcheetah": 4000.0, "walker2d": 1500.0, "ant": 1300.0}
MAX_EPISODE_STEPS = 1000
ROW_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


class GenerationError(ValueError):
    """Bad generator input; the message is one line."""


# ------------------------------------------------------------------------------------------------
# Rows and episodes
# ------------------------------------------------------------------------------------------------


def split_episodes(rows: dict) -> list[dict]:
    """D4RL-layout rows -> complete episodes (a trailing unfinished episode is dropped)."""
    ends = np.flatnonzero(np.asarray(rows["terminals"], bool) | np.asarray(rows["timeouts"], bool))
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [{k: v[s:e + 1] for k, v in rows.items()} for s, e in zip(starts, ends)]


def cap_episodes(episodes: list[dict], max_transitions: int | None, rng: np.random.Generator | None = None):
    """Whole episodes totalling at most `max_transitions` rows, in their original order.

    Without `rng`: the first episodes that fit. With `rng`: a random subset (kept in order), so that a
    capped replay buffer still spans the whole of training.
    """
    if max_transitions is None or sum(len(e["rewards"]) for e in episodes) <= max_transitions:
        return episodes
    order = np.arange(len(episodes)) if rng is None else rng.permutation(len(episodes))
    chosen, total = [], 0
    for i in order:
        n = len(episodes[i]["rewards"])
        if total + n <= max_transitions:
            chosen.append(i)
            total += n
        elif rng is None:
            break
    if not chosen:
        raise GenerationError(f"--max-transitions {max_transitions} is smaller than one episode")
    return [episodes[i] for i in sorted(chosen)]


def dataset_arrays(episodes: list[dict], next_observations: bool) -> dict:
    rows = rollouts.concat_episodes(episodes)
    keys = ROW_KEYS + (("next_observations",) if next_observations else ())
    return {k: rows[k] for k in keys}


# ------------------------------------------------------------------------------------------------
# Behaviour policies
# ------------------------------------------------------------------------------------------------


def policy_rollouts(env_id: str, fns: sac.SACFunctions, actor_params, seed: int, max_transitions: int) -> list:
    """Stochastic rollouts of a policy: whole episodes, at most `max_transitions` rows in all."""
    act = lambda obs, key: fns.sample_actions(actor_params, obs, key)  # noqa: E731
    episodes = rollouts.rollout_episodes(env_id, act, seed, num_envs=10, min_transitions=max_transitions)
    return cap_episodes(episodes, max_transitions)


def snapshots_of(run_dir: Path) -> list[tuple[Path, dict]]:
    paths = sorted((run_dir / "snapshots").glob("policy_step*.msgpack"))
    return [(p, json.loads(p.with_suffix(".json").read_text())) for p in paths]


def pick_medium(snapshots: list[tuple[Path, dict]], target: float, log) -> tuple[Path, dict, bool]:
    """The first snapshot whose evaluation return reaches `target`; otherwise the best one (flagged)."""
    if not snapshots:
        raise GenerationError("the SAC run saved no policy snapshot (is --sac-steps below --eval-every?)")
    for path, record in snapshots:
        if record["return_mean"] >= target:
            return path, record, True
    path, record = max(snapshots, key=lambda item: item[1]["return_mean"])
    log(f"warning: no snapshot reached the medium return {target}; using the best one "
        f"(step {record['step']}, return {record['return_mean']:.1f})")
    return path, record, False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checksums(directory: Path) -> dict[str, str]:
    """{file name: sha256} from <directory>/CHECKSUMS (lines '<sha256>  <file name>')."""
    path = Path(directory) / "CHECKSUMS"
    if not path.is_file():
        return {}
    entries = (line.split() for line in path.read_text().splitlines() if line.strip())
    return {name: digest for digest, name in entries}


def update_checksums(directory: Path, paths) -> None:
    """Adds or replaces the sha256 lines of `paths` in <directory>/CHECKSUMS (sha256sum -c format)."""
    sums = read_checksums(directory)
    sums.update({Path(p).name: sha256_of(Path(p)) for p in paths})
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    (Path(directory) / "CHECKSUMS").write_text(text)


# ------------------------------------------------------------------------------------------------
# Generation
# ------------------------------------------------------------------------------------------------


def metadata_for(arrays: dict, env_id: str, level: str, args, policy: dict, command: str) -> dict:
    returns = datasets.episode_returns(arrays, MAX_EPISODE_STEPS)
    family = domains.dataset_family(env_id)
    return {
        "env_id": env_id,
        "level": level,
        "format_version": FORMAT_VERSION,
        "generator": GENERATOR,
        "generator_seed": args.seed,
        "creation_command": command,
        "max_episode_steps": MAX_EPISODE_STEPS,
        "comparable_to_d4rl": env_id.endswith("-v4"),
        "transitions": int(arrays["rewards"].shape[0]),
        "episodes": int(returns.shape[0]),
        "terminals": int(arrays["terminals"].sum()),
        "episode_return_mean": float(returns.mean()),
        "episode_return_std": float(returns.std()),
        "normalized_score_mean": float(domains.normalized_score(returns.mean(), domains.REFERENCE_RETURNS.get(family))),
        **policy,
    }


def generate(args, log=print) -> dict[str, Path]:
    """Writes the requested levels; returns {dataset name: path}."""
    levels = [lv.strip() for lv in args.levels.split(",") if lv.strip()]
    unknown = [lv for lv in levels if lv not in LEVELS]
    if unknown or not levels:
        raise GenerationError(f"unknown level(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(LEVELS)}")
    try:
        env_id = sac.env_id_of(args.env, args.env_version)
    except ValueError as e:
        raise GenerationError(str(e)) from None
    family = args.env if "-v" not in args.env else domains.dataset_family(args.env)
    version = env_id.rsplit("-", 1)[1]
    medium_return = args.medium_return if args.medium_return is not None else MEDIUM_RETURNS.get(family)
    if medium_return is None and any(lv.startswith("medium") for lv in levels):
        raise GenerationError(f"no default medium return for '{args.env}': pass --medium-return")
    out = Path(args.out)
    command = args.command or shlex.join(["python", GENERATOR, *sys.argv[1:]])
    sac_config = sac.SACConfig(
        env=args.env, env_version=args.env_version, seed=args.seed, total_steps=args.sac_steps,
        learning_starts=args.learning_starts, chunk_steps=args.chunk_steps, eval_every=args.eval_every,
        eval_episodes=args.eval_episodes,
        stop_return=None if ("expert" in levels or "medium-expert" in levels) else medium_return,
    )
    env = rollouts.make_env(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    fns = sac.make_sac(sac_config, obs_dim, act_dim)
    written: dict[str, Path] = {}
    # Rollout seeds differ per level so that no two levels share an initial state sequence.
    rollout_seed = {lv: 1_000_000 * (i + 1) + args.seed for i, lv in enumerate(LEVELS)}

    def write(level: str, episodes: list[dict], policy: dict, start: float):
        """Writes one level; wall times are logged, not stored (so equal inputs give equal bytes)."""
        arrays = dataset_arrays(episodes, args.next_observations)
        name = f"{family}-{level}-{version}"
        meta = metadata_for(arrays, env_id, level, args, policy, command)
        path = datasets.write_hdf5(out / f"{name}.hdf5", arrays, meta)
        datasets.load_file(path)  # the loader's validation must accept what was written
        log(f"wrote {path}: {meta['transitions']} transitions, {meta['episodes']} episodes, "
            f"return {meta['episode_return_mean']:.1f} +- {meta['episode_return_std']:.1f} "
            f"(normalised {meta['normalized_score_mean']:.1f}); {time.time() - start:.1f}s")
        written[name] = path
        return episodes

    if "random" in levels:
        start = time.time()
        params = fns.init(jax.random.PRNGKey(args.seed)).actor.params
        episodes = policy_rollouts(env_id, fns, params, rollout_seed["random"], args.max_transitions)
        write("random", episodes, {"behaviour_policy": "randomly initialised SAC policy (stochastic)",
                                   "behaviour_policy_sac_steps": 0}, start)

    if not any(lv != "random" for lv in levels):
        return written

    # --- the SAC run: trained here, or read from --sac-run ---
    start = time.time()
    if args.sac_run:
        run_dir = Path(args.sac_run)
        replay_path = run_dir / "replay.npz"
        if not replay_path.is_file() and "medium-replay" in levels:
            raise GenerationError(f"{replay_path} not found (run datagen/sac.py with --out and --save-replay)")
        replay = dict(np.load(replay_path)) if replay_path.is_file() else None
        snapshots = snapshots_of(run_dir)
        sac_source = {"sac_run": str(run_dir)}
        if snapshots and snapshots[0][1].get("config", {}).get("seed") not in (None, args.seed):
            raise GenerationError(f"{run_dir} was trained with seed {snapshots[0][1]['config']['seed']}, "
                                  f"not --seed {args.seed}")
    else:
        work = Path(args.work_dir or Path("runs") / "make_datasets" / f"sac_{family}_{version}_s{args.seed}")
        result = sac.train(sac_config, snapshot_dir=work / "snapshots", log=log)
        (work / "evals.json").write_text(json.dumps(result.evaluations, indent=1))
        np.savez_compressed(work / "replay.npz", **result.replay)
        replay, snapshots = result.replay, snapshots_of(work)
        sac_source = {"sac_config": json.dumps(dataclasses.asdict(sac_config))}
    log(f"SAC run ready after {time.time() - start:.1f}s")
    medium_path, medium_record, reached = pick_medium(snapshots, medium_return, log)
    medium_params, _ = sac.load_policy(medium_path, obs_dim, act_dim, sac_config.hidden_dims)
    medium_policy = {
        "behaviour_policy": "SAC snapshot (stochastic)",
        "behaviour_policy_sac_steps": int(medium_record["step"]),
        "behaviour_policy_eval_return": float(medium_record["return_mean"]),
        "medium_return_target": float(medium_return),
        "medium_return_target_reached": bool(reached),
        **sac_source,
    }

    medium_episodes = None
    if "medium" in levels or "medium-expert" in levels:
        start = time.time()
        medium_episodes = policy_rollouts(env_id, fns, medium_params, rollout_seed["medium"], args.max_transitions)
        if "medium" in levels:
            write("medium", medium_episodes, {**medium_policy}, start)

    if "medium-replay" in levels:
        start = time.time()
        rows = {k: v[: medium_record["step"]] for k, v in replay.items()}
        episodes = cap_episodes(split_episodes(rows), args.max_transitions, np.random.default_rng(args.seed))
        write("medium-replay", episodes, {**medium_policy, "behaviour_policy": "SAC replay buffer up to the medium "
                                          "snapshot (uniform random actions for the first learning_starts steps)"},
              start)

    if "expert" in levels or "medium-expert" in levels:
        start = time.time()
        expert_path, expert_record = snapshots[-1]
        expert_params, _ = sac.load_policy(expert_path, obs_dim, act_dim, sac_config.hidden_dims)
        expert_policy = {"behaviour_policy": "SAC final snapshot (stochastic)",
                         "behaviour_policy_sac_steps": int(expert_record["step"]),
                         "behaviour_policy_eval_return": float(expert_record["return_mean"]),
                         **sac_source}
        expert_episodes = policy_rollouts(env_id, fns, expert_params, rollout_seed["expert"], args.max_transitions)
        if "expert" in levels:
            write("expert", expert_episodes, {**expert_policy}, start)
        if "medium-expert" in levels:
            write("medium-expert", medium_episodes + expert_episodes,
                  {"behaviour_policy": "medium and expert rollouts concatenated",
                   "behaviour_policy_sac_steps": int(expert_record["step"]), **sac_source})
    return written


def describe(directory: Path) -> str:
    """A markdown table of the datasets in `directory`, from their metadata (for data/README.md)."""
    lines = ["| dataset | env | level | transitions | episodes | return mean | return std | D4RL score "
             "| behaviour policy (SAC steps, eval return) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(Path(directory).glob("*.hdf5")):
        _, m = datasets.read_hdf5(path)
        policy = f"{m['behaviour_policy_sac_steps']} steps"
        if "behaviour_policy_eval_return" in m:
            policy += f", {m['behaviour_policy_eval_return']:.0f}"
        lines.append(f"| {path.stem} | {m['env_id']} | {m['level']} | {m['transitions']} | {m['episodes']} "
                     f"| {m['episode_return_mean']:.1f} | {m['episode_return_std']:.1f} "
                     f"| {m['normalized_score_mean']:.1f} | {policy} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Make D4RL-layout MuJoCo datasets with this project's SAC.",
                                epilog="Levels: " + ", ".join(LEVELS))
    p.add_argument("--env", help="hopper | halfcheetah | walker2d | ant (or a gymnasium id)")
    p.add_argument("--levels", default="random,medium,medium-replay", help="comma-separated levels")
    p.add_argument("--seed", type=int, default=sac.SACConfig.seed,
                   help="seeds SAC, the rollouts and the replay subsampling")
    p.add_argument("--out", default="data", help="output directory of the .hdf5 files")
    p.add_argument("--max-transitions", type=int, default=1_000_000, help="cap per dataset, by whole episodes")
    p.add_argument("--env-version", **sac.option("env_version"))
    p.add_argument("--medium-return", type=float, default=None,
                   help="evaluation return at which the medium policy is taken (default: a third of expert)")
    run = p.add_argument_group("SAC run", "options of datagen/sac.py, with its defaults")
    run.add_argument("--sac-steps", **sac.option("total_steps"))
    for name in ("learning_starts", "chunk_steps", "eval_every", "eval_episodes"):
        run.add_argument("--" + name.replace("_", "-"), **sac.option(name))
    p.add_argument("--sac-run", default=None, help="reuse this finished datagen/sac.py run directory")
    p.add_argument("--work-dir", default=None,
                   help="where SAC snapshots go (default: runs/make_datasets/sac_<env>_<v>_s<seed>)")
    p.add_argument("--next-observations", action="store_true", help="also store next_observations")
    p.add_argument("--describe", metavar="DIR", default=None, help="print a markdown table of DIR's datasets, exit")
    p.add_argument("--command", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.describe:
        print(describe(Path(args.describe)))
        return 0
    if not args.env:
        print("error: --env is required (hopper, halfcheetah, walker2d, ant or a gymnasium id)", file=sys.stderr)
        return 2
    try:
        written = generate(args, log=lambda s: print(s, flush=True))
        update_checksums(Path(args.out), written.values())
    except (GenerationError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
