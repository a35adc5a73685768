"""scripts/results.py on every domain: each method trains with its config of the dataset's domain and is scored by
that domain's protocol; the report keeps domains apart; a (method, domain) without a config is refused first.

Tiny D4RL files (random play under d4rl's own file names, conftest.rollout) for hopper, AntMaze, Adroit pen and
Kitchen; 2 gradient steps, 1 seed, 1 evaluation episode, 32-unit networks.
"""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
from conftest import rollout, rollout_raw, write_d4rl, write_hdf5

from common import domains
from scripts import results, results_plan

pytest.importorskip("gymnasium_robotics")

# dataset -> (config file suffix, evaluation env, normalised score of a return): d4rl's protocol of each domain
EXPECTED = {
    "hopper-medium-v2": ("mujoco", "Hopper-v4", lambda r: 100 * (r + 20.272305) / (3234.3 + 20.272305)),
    "antmaze-umaze-v2": ("antmaze", "AntMazeD4RL_UMaze-v0", lambda r: 100.0 * r),
    "pen-human-v1": ("adroit", "AdroitHandPen-v1", lambda r: 100 * (r - 96.262799) / (3076.8331 - 96.262799)),
    "kitchen-complete-v0": ("kitchen", "FrankaKitchen-v1", lambda r: 25.0 * r),
}
DOMAIN = {"hopper-medium-v2": "locomotion", "antmaze-umaze-v2": "antmaze", "pen-human-v1": "adroit",
          "kitchen-complete-v0": "kitchen"}
TINY = ["--seeds", "1", "--steps", "2", "--eval-every", "2", "--eval-episodes", "1", "--resamples", "20",
        "--set", "hidden_dims=(32, 32)", "--set", "batch_size=16"]
TINY_CQL_MISA = ["--set", "cql.cql_n_actions=2", "--set", "misa.n_actions=4",
                 "--set", "misa.unbiased_samples=dataset"]  # no HMC: a quicker compile
# Fields the sweep sets on top of the config file (budget, --set, run directory), not the file's own.
SWEEP_FIELDS = {"num_seeds", "total_steps", "eval_every", "eval_episodes", "seed", "checkpoint_every", "hidden_dims",
                "batch_size", "cql_n_actions", "n_actions", "unbiased_samples", "log_dir", "run_name",
                "resume", "overwrite", "progress", "dataset", "sweep"}


@pytest.fixture(scope="module")
def d4rl_root(tmp_path_factory):
    """D4RL_DATASET_DIR with one tiny file per domain, each under the name d4rl caches it by."""
    root = tmp_path_factory.mktemp("d4rl_results")
    for name in EXPECTED:
        write_d4rl(root, name, rollout(domains.setup_for_d4rl(name), 64, 32))
    return root


def expected_config(algo: str, dataset: str) -> dict:
    """The config file the method should train `dataset` with, read here from configs/ by its own name."""
    module = importlib.import_module(f"configs.{results_plan.ALGORITHMS[algo].config_method}_{EXPECTED[dataset][0]}")
    config = module.get_config(dataset if dataset in getattr(module, "VARIANTS", ()) else None).to_dict()
    config.update(results_plan.ALGORITHMS[algo].overrides)
    return json.loads(json.dumps({k: v for k, v in config.items() if k not in SWEEP_FIELDS}))


def check_run(out, algo: str, dataset: str) -> None:
    """The run trained with the config file of its method on the dataset's domain and was scored by its protocol."""
    env_id, formula = EXPECTED[dataset][1:]
    run_dir = out / "runs" / results.run_name(algo, dataset)
    config = json.loads((run_dir / "config.json").read_text())
    expected = expected_config(algo, dataset)
    assert {k: config.get(k) for k in expected} == expected, (algo, dataset)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["env"] == summary["evaluation"]["env_id"] == env_id
    assert summary["evaluation"]["domain"] == DOMAIN[dataset]
    score, ret = summary["normalized_score_final"][0], summary["return_final"][0]
    assert np.isfinite(score) and score == pytest.approx(formula(ret)), (algo, dataset)


def test_every_method_trains_every_domain_with_that_domains_config_and_protocol(d4rl_root, tmp_path, monkeypatch,
                                                                                capsys):
    """Bug: results.py trained every dataset with the locomotion configs (configs/*_mujoco.py), so an AntMaze,
    Adroit or Kitchen dataset was refused by the host's domain check, or trained without its domain's settings;
    and the report pooled the domains' normalised scores into one aggregate."""
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_root))
    out = tmp_path / "out"
    common, every = ["--out", str(out), *TINY], ["--datasets", ",".join(EXPECTED)]
    # BC is TD3+BC's config with bc_only, trained on one domain only (each run compiles its own program); the
    # report of all four columns comes from --report-only.
    assert results.main(["--algos", "bc", "--datasets", "kitchen-complete-v0", *common]) == 0, capsys.readouterr()
    check_run(out, "bc", "kitchen-complete-v0")
    common += TINY_CQL_MISA
    assert results.main(["--algos", "td3_bc,cql,misa", *every, *common]) == 0, capsys.readouterr().err
    for dataset in EXPECTED:
        for algo in ("td3_bc", "cql", "misa"):
            check_run(out, algo, dataset)
    assert results.main(["--algos", "bc,td3_bc,cql,misa", "--report-only", *every, *common]) == 0, capsys.readouterr()

    report = json.loads((out / "results.json").read_text())
    assert report["domains"] == DOMAIN
    assert list(report["aggregate_final"]) == ["locomotion", "antmaze", "adroit", "kitchen"]
    for domain, rows in report["aggregate_final"].items():  # one dataset, one seed each: nothing pooled
        bc = int(domain == "kitchen")
        assert {label: row["runs"] for label, row in rows.items()} == {"BC": bc, "TD3+BC": 1, "CQL": 1, "MISA": 1}
    final = {(r["algorithm"], r["dataset"]): r["final"][0] for r in report["runs"]}
    assert report["aggregate_final"]["antmaze"]["MISA"]["mean"]["value"] == pytest.approx(
        final[("misa", "antmaze-umaze-v2")])
    md = (out / "results.md").read_text()
    for domain in ("locomotion", "antmaze", "adroit", "kitchen"):
        assert f"**{domain}** (1 dataset; score: " in md
    assert "**antmaze** (1 dataset; score: 100 * success rate" in md
    assert "- antmaze: only 1 dataset(s): its aggregate is meant for 3 or more" in md


def test_episodes_per_evaluation_default_to_the_configs_own_and_an_option_wins(d4rl_root, tmp_path, monkeypatch):
    """Bug: --eval-episodes defaulted to 10 for every run, replacing AntMaze's 100-episode protocol."""
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_root))
    own = importlib.import_module("configs.misa_antmaze").get_config().eval_episodes
    assert own != 10  # the case this test is for: a domain whose protocol is not the locomotion 10
    for given, expected in (([], own), (["--eval-episodes", "7"], 7)):
        args = results.parse_args(["--algos", "misa", "--datasets", "antmaze-umaze-v2,hopper-medium-v2", "--out",
                                   str(tmp_path), *given])
        algos, datasets, sets = results.check_args(args)
        assert results.build_config("misa", "antmaze-umaze-v2", args, sets).eval_episodes == expected
        locomotion = importlib.import_module("configs.misa_mujoco").get_config().eval_episodes
        assert results.build_config("misa", "hopper-medium-v2", args, sets).eval_episodes == (7 if given else
                                                                                             locomotion)


def test_a_domain_without_a_config_for_a_method_is_refused_before_training(d4rl_root, tmp_path, monkeypatch,
                                                                           capsys):
    """Bug (the behaviour to keep): a dataset whose domain has no config file for a method must stop the sweep in one
    line before any run trains, not after the runs before it."""
    from test_bad_inputs import assert_refused, snapshot

    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_root))
    monkeypatch.setitem(__import__("sys").modules, "configs.td3_bc_kitchen", None)  # as if the file did not exist
    monkeypatch.setattr(results, "train_one", lambda *a, **k: pytest.fail("trained before refusing"))
    before = snapshot(tmp_path)
    status = results.main(["--algos", "misa,bc", "--datasets", "hopper-medium-v2,kitchen-complete-v0", "--out",
                           str(tmp_path / "out"), "--steps", "2", "--eval-every", "2"])
    assert_refused(status, capsys.readouterr().err,
                   r"^error: bc: no config for kitchen datasets \('kitchen-complete-v0' is a kitchen dataset; "
                   r"configs/td3_bc_kitchen\.py does not exist\): leave bc out \(--algos\) or this dataset out")
    assert snapshot(tmp_path) == before


def test_a_generated_files_domain_is_its_env_not_its_name(tmp_path):
    """Bug: a domain read from the name's prefix (common.domains.dataset_family) makes "pendulum-*" Adroit's pen, so
    an InvertedPendulum file would train with the Adroit configs."""
    path = write_hdf5(tmp_path / "pendulum-tiny.hdf5", rollout_raw("InvertedPendulum-v4", 40),
                      {"env_id": "InvertedPendulum-v4"})
    assert domains.dataset_family(path.stem) == "pen"  # the trap
    assert results_plan.dataset_domain(str(path)) == "locomotion"
    assert results_plan.config_name("misa", results_plan.dataset_domain(str(path))) == "configs.misa_mujoco"
    assert results_plan.dataset_domain("antmaze_umaze-v2") == "antmaze"  # a D4RL name, without its file


def test_a_set_field_that_no_config_of_the_sweeps_domains_has_is_refused(d4rl_root, tmp_path, monkeypatch, capsys):
    """Bug: --set fields were checked against the configs of every domain, so a field only a Kitchen config has was
    accepted on a locomotion sweep, and changed nothing."""
    import sys
    import types

    from test_bad_inputs import assert_refused

    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_root))
    real = importlib.import_module("configs.misa_kitchen")

    def get_config(variant=None):
        config = real.get_config(variant)
        config.kitchen_only = 1.0
        return config

    monkeypatch.setitem(sys.modules, "configs.misa_kitchen", types.SimpleNamespace(VARIANTS=real.VARIANTS,
                                                                                  get_config=get_config))
    monkeypatch.setattr(results, "train_one", lambda *a, **k: pytest.fail("trained before refusing"))
    argv = ["--algos", "misa", "--out", str(tmp_path / "out"), "--steps", "2", "--eval-every", "2"]
    status = results.main(argv + ["--datasets", "hopper-medium-v2", "--set", "misa.kitchen_only=2"])
    assert_refused(status, capsys.readouterr().err, r"^error: --set misa\.kitchen_only: misa's configs for "
                                                    r"these datasets' domains have no such field \(it would change "
                                                    r"nothing\)$")
    args = results.parse_args(argv + ["--datasets", "hopper-medium-v2,kitchen-complete-v0", "--set", "kitchen_only=2"])
    algos, datasets, sets = results.check_args(args)
    results.check_sweep(algos, datasets, args, sets)  # a kitchen dataset in the sweep: accepted
    assert results.build_config("misa", "kitchen-complete-v0", args, sets).kitchen_only == 2.0
