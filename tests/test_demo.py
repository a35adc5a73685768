"""`make demo`'s entry point on a reduced budget: it trains, then prints policy vs dataset vs random in one table."""

from __future__ import annotations

import json
import re

import numpy as np

from common.datasets import load_dataset
from common.domains import REFERENCE_RETURNS, dataset_family, normalized_score
from configs import misa_mujoco
from scripts import demo

REDUCED = ["--config.total_steps=20", "--config.eval_every=10", "--config.eval_episodes=1", "--config.batch_size=32",
           "--config.hidden_dims=(32, 32)", "--config.n_actions=2", "--config.hmc_burn_in=1",
           "--config.hmc_num_samples=2", "--config.progress=False"]


def test_demo_variant_is_misa_on_a_shipped_dataset():
    config = misa_mujoco.get_config("demo")
    assert config.dataset == misa_mujoco.DEMO_DATASET and config.dataset in misa_mujoco.shipped_datasets()
    assert config.bound == "misa" and config.unbiased_grad  # the paper's method; only budget and N are reduced
    assert config.total_steps % config.eval_every == 0


def test_demo_prints_the_comparison_table(tmp_path, capsys):
    assert demo.main([*REDUCED, f"--config.log_dir={tmp_path}", "--config.run_name=demo"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    table = [line for line in lines if line.startswith("| ")]
    assert table[0] == "| policy | normalised score | return |" and len(table) == 5, out
    rows = {line.split(" | ")[0][2:]: [c.strip(" |") for c in line.split(" | ")[1:]] for line in table[1:]}
    policy, data, best, random = (rows[next(k for k in rows if k.startswith(p))]
                                  for p in ("MISA", "the dataset's own", "the dataset's best", "uniform"))

    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert float(policy[0]) == round(summary["normalized_score_final_mean"], 1)
    dataset = load_dataset(misa_mujoco.DEMO_DATASET)
    expected = normalized_score(np.mean(dataset.episode_returns), REFERENCE_RETURNS[dataset_family(dataset.name)])
    assert float(data[0]) == round(float(expected), 1) and float(data[1]) == round(np.mean(dataset.episode_returns), 1)
    assert float(best[1]) == round(float(np.max(dataset.episode_returns)), 1) and float(best[0]) >= float(data[0])
    assert abs(float(random[0])) < 5.0  # D4RL's score 0 is a random policy's return
    curve = re.search(r"^learning curve: (\S+)$", out, re.M)
    assert curve and (tmp_path / "demo" / "curves.png").samefile(curve.group(1))
    assert lines[-1].startswith("evaluate again, film, load: python scripts/evaluate.py --run ")
