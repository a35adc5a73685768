"""Runs written before the house redesign (common/experiment.py as one module, sac.py in algorithms/) still load and
resume: tests/fixtures/pre_redesign_runs/ holds a TD3+BC, a CQL and a MISA run made by that code (commit 3b18267,
hopper-medium-replay-v4, hidden (8, 8), batch 16, one seed), stopped after their checkpoint at step 10 of 20.

The bug this catches: a change to a method's state (a field renamed, added or reordered), to the checkpoint meta or
to the run files that makes earlier runs unreadable or refuses to continue them.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from conftest import ROOT

from algorithms import cql, load_run, misa, td3_bc

FIXTURES = ROOT / "tests" / "fixtures" / "pre_redesign_runs"
EXTRA = {"td3_bc": [], "cql": ["--config.cql_n_actions=2"],
         "misa": ["--config.n_actions=2", "--config.hmc_burn_in=1", "--config.hmc_num_samples=2"]}
MODULES = {"td3_bc": td3_bc, "cql": cql, "misa": misa}


@pytest.fixture(params=sorted(MODULES))
def old_run(request, tmp_path):
    name = request.param
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return name, tmp_path


def eval_rows(run_dir):
    with open(run_dir / "eval.csv", newline="") as f:
        return [(int(r["step"]), float(r["return"])) for r in csv.DictReader(f)]


def test_an_old_run_loads_with_its_checkpoint(old_run):
    name, log_dir = old_run
    run = load_run(log_dir / name)
    assert (run.algorithm, run.step, run.members) == (name, 10, [{"seed": 0}])
    action = np.asarray(run.policy(0)(np.zeros(run.dataset.stats["obs_dim"], np.float32)))
    assert action.shape == (3,) and np.all(np.abs(action) <= 1.0)


def test_an_old_run_resumes_from_its_checkpoint(old_run):
    name, log_dir = old_run
    run_dir = log_dir / name
    before = eval_rows(run_dir)
    argv = [name, f"--config={ROOT}/configs/{name}_mujoco.py", "--config.dataset=hopper-medium-replay-v4",
            "--config.total_steps=20", "--config.eval_every=10", "--config.checkpoint_every=10",
            "--config.eval_episodes=1", "--config.num_seeds=1", "--config.batch_size=16", "--config.hidden_dims=(8, 8)",
            f"--config.log_dir={log_dir}", f"--config.run_name={name}", "--config.progress=False",
            "--config.resume=True", *EXTRA[name]]
    assert MODULES[name].main(argv) == 0
    after = eval_rows(run_dir)
    assert after[:1] == before == [(10, before[0][1])] and [step for step, _ in after] == [10, 20]
    events = [json.loads(line)["event"] for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert events == ["start", "resume"]
    assert json.loads((run_dir / "summary.json").read_text())["total_steps"] == 20
    assert load_run(run_dir).step == 20
