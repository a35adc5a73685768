"""`make demo`: trains MISA on a dataset shipped with the project, then puts its score beside the data's own.

    python scripts/demo.py [--config.<field>=<value> ...]      (e.g. --config.num_seeds=3)

The demo uses the reduced `demo` variant of configs/misa_mujoco.py (a smaller budget than the paper's, so it
finishes in minutes on a CPU; the config says why that dataset and budget); it prints that configuration
before training, a progress bar with the latest score while training, and at the end a table: the trained
policy's normalised score, the dataset's own (the mean return of its episodes, and its best episode's) and a
uniform random policy's (measured here with the same number of episodes), then the curve file and how to use the run.
Before training it checks what the table needs: a run name below log_dir, a dataset of episodes (not a file of
shuffled transitions) and an evaluation env. Exit status: as algorithms/misa.py's (0 done, 2 bad input in one line).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from algorithms import misa
from common import experiment
from common.datasets import load_dataset
from common.domains import setup_for_dataset
from common.errors import DatasetError
from common.evaluation import make_env
from common.experiment.configuration import check_run_name

ROOT = Path(__file__).resolve().parent.parent

CONFIG = f"{ROOT}/configs/misa_mujoco.py:demo"


def random_policy_returns(setup, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes of uniformly random actions (env and action seeds from `seed`)."""
    env = make_env(setup)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            env.reset(seed=int(seed * 1_000_003 + i))
            done = False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                returns[i] += reward
                done = terminated or truncated
    finally:
        env.close()
    return returns


def score_cell(scores) -> str:
    scores = np.asarray(scores, np.float64)
    if np.all(np.isnan(scores)):
        return "n/a"
    return f"{scores.mean():.1f}" + (f" ± {scores.std():.1f}" if scores.size > 1 else "")


def comparison_table(summary: dict, dataset, episodes: int, seed: int, env: str = "") -> str:
    """Policy vs the dataset's own episodes vs uniform random actions (normalised score and return), all scored
    by the run's evaluation setup."""
    setup = setup_for_dataset(dataset, env)
    random_returns = random_policy_returns(setup, max(episodes, 1), seed)
    data_return = float(np.mean(dataset.episode_returns))
    best_return = float(np.max(dataset.episode_returns))
    seeds = summary["num_seeds"]
    rows = [
        (f"MISA after {summary['total_steps']} steps ({seeds} seed{'s' if seeds > 1 else ''}, final evaluation)",
         score_cell(summary["normalized_score_final"]), score_cell(summary["return_final"])),
        (f"the dataset's own episodes ({len(dataset.episode_returns)}, mean)",
         score_cell(setup.normalized([data_return])), f"{data_return:.1f}"),
        ("the dataset's best episode", score_cell(setup.normalized([best_return])), f"{best_return:.1f}"),
        (f"uniform random actions ({len(random_returns)} episodes)",
         score_cell(setup.normalized([random_returns.mean()])), f"{random_returns.mean():.1f}"),
    ]
    lines = ["| policy | normalised score | return |", "|---|---:|---:|"]
    lines += [f"| {name} | {score} | {ret} |" for name, score, ret in rows]
    return "\n".join(lines)


def check_inputs(config):
    """The demo's own needs, before training: a run name below log_dir (the table reads the run from there), a
    dataset of episodes (their returns are a row of the table) and an evaluation env (the random policy's row).
    Returns the dataset; ConfigError or DatasetError (one line) otherwise."""
    check_run_name(config.run_name)  # the host's rule; and not empty, which the host would fill in itself
    dataset = load_dataset(config.dataset, env_id=config.env or None)
    if not len(dataset.episode_returns):
        raise DatasetError(f"{dataset.source} has no complete episodes (a transitions file: its rows are not in "
                           "episode order), and the demo compares the policy with the dataset's episodes; train on "
                           "it with algorithms/misa.py instead")
    if setup_for_dataset(dataset, config.env) is None:
        raise experiment.ConfigError(f"cannot infer the evaluation env of dataset '{config.dataset}': set "
                                     "--config.env")
    return dataset


def main(argv=None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    run_name = time.strftime("demo_misa_%Y%m%d_%H%M%S")
    given = {o.split("=", 1)[0] for o in overrides}
    defaults = [d for d in ("--config.log_dir=runs", f"--config.run_name={run_name}")
                if d.split("=", 1)[0] not in given]
    args = ["misa", f"--config={CONFIG}", *defaults, *overrides]
    try:
        config = experiment.parse_config(args, "configs/misa_mujoco.py")
        dataset = check_inputs(config)
    except (experiment.ConfigError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return experiment.EXIT_BAD_INPUT
    print(f"MISA demo on the shipped dataset '{config.dataset}': {config.total_steps} gradient steps, "
          f"N = {config.n_actions} policy samples, {config.hmc_num_samples} HMC samples, evaluation every "
          f"{config.eval_every} steps with {config.eval_episodes} episodes, {config.num_seeds} seed(s).")
    print("This is a reduced budget for a quick look (the paper trains 1.2M steps); see README for full runs.")
    t0 = time.perf_counter()
    code = misa.main(args)
    if code != 0:
        return code
    run_dir = Path(config.log_dir).expanduser() / config.run_name
    summary = json.loads((run_dir / "summary.json").read_text())
    print(f"\nwall time {time.perf_counter() - t0:.0f} s; scores on {summary['env']} (D4RL-normalised):")
    print(comparison_table(summary, dataset, config.eval_episodes, config.seed, config.env))
    if (run_dir / "curves.png").exists():
        print(f"learning curve: {run_dir / 'curves.png'}")
    print(f"evaluate again, film, load: python scripts/evaluate.py --run {run_dir} --video {run_dir}/videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
