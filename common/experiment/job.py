"""The job: every input checked (config, dataset, evaluation env), then the locked run directory.

Nothing is written before `prepare` has accepted the whole input; a `Job` holds what every later step reads.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from common import checkpoints
from common.agent import Method
from common.datasets import Dataset, load_dataset
from common.domains import check_config_domain, setup_for_dataset
from common.errors import DatasetError
from common.evaluation import Evaluator
from common.experiment.configuration import run_name, validate_shared
from common.experiment.errors import ConfigError
from common.experiment.members import build_members
from common.experiment.rundir import RunLock, prepare_run_dir, start_of

# A config field -> the package it needs when set (import name) and its pip name. Used only once training is done
# (summary's curves.png) or the logs open, so checked before anything is written.
OPTIONAL_PACKAGES = {
    "tensorboard": ("tensorboardX", "tensorboardX"),
    "wandb": ("wandb", "wandb"),
    "progress": ("tqdm", "tqdm"),
    "eval_episodes": ("matplotlib", "matplotlib"),  # curves.png of the evaluations
}


@dataclass
class Job:
    """What every step reads: the validated config, the data, the agent and its members, and the run directory."""

    method: Method
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
    def algorithm(self) -> str:
        return self.method.name

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


def prepare(method: Method, config, dataset: Dataset | None = None) -> Job:
    """Prepare and validate: every input check, then the locked run directory (nothing is written before)."""
    validate_shared(config)
    method.validate_config(config)
    check_packages(config)
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
    agent = method.make_agent(config, dataset)
    members, hparams = build_members(config, agent.hparams)
    job = Job(method, config, dataset, env_id, agent, members, hparams,
              Path(config.log_dir).expanduser() / run_name(method.name, config), jax.process_index() == 0,
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


def check_packages(config) -> None:
    """Every package the config's OPTIONAL_PACKAGES fields ask for is installed."""
    for field, (module, pip_name) in OPTIONAL_PACKAGES.items():
        if config.get(field) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"{field}={config[field]} needs the package {module}, which is not installed "
                              f"(pip install {pip_name})")


def checkpoint_meta(job: Job) -> dict:
    """What a checkpoint must share with the run that resumes it (the identity is checked separately)."""
    return {"algorithm": job.algorithm, "members": job.members, "dataset_stats": job.stats}
