"""The bad-input catalogue: every refused input exits 2 with one stderr line and leaves the disk as it was.

Each case runs the real CLI entry, `td3_bc.main(argv)`, in-process (it returns the exit status); three cases
run `python algorithms/td3_bc.py` in a subprocess to check the process's own exit code and that stderr holds
one line and no traceback. "The disk as it was" is checked by a snapshot of the test's directory (every
file's bytes and mtime, every directory's existence) taken before the call and compared after it: a refused
fresh run creates nothing, and a refused run over an existing directory changes none of its files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, rollout_raw, write_hdf5

from algorithms import cql, misa, td3_bc
from common.experiment import configuration
from configs import td3_bc_mujoco

TINY = {
    "total_steps": "20",
    "eval_every": "10",
    "batch_size": "16",
    "hidden_dims": "(16,16)",
    "eval_episodes": "0",
    "progress": "False",
}


def cli_args(dataset, log_dir, run_name="bad", config_file="td3_bc_mujoco.py", **overrides) -> list[str]:
    """argv for td3_bc.main (or another method's main with its `config_file`): the shipped config with tiny budgets;
    `overrides` replace or add fields."""
    fields = {"dataset": str(dataset), "log_dir": str(log_dir), "run_name": run_name, **TINY, **overrides}
    return ["td3_bc", f"--config={ROOT}/configs/{config_file}"] + [f"--config.{k}={v}" for k, v in fields.items()]


def snapshot(root: Path) -> dict:
    """Every path under root: (bytes, mtime_ns) for files, "dir" for directories."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        found[rel] = "dir" if path.is_dir() else (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def assert_refused(status: int, err: str, pattern: str) -> None:
    """Exit status 2 and exactly one non-empty stderr line that matches `pattern`."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err, err
    assert re.search(pattern, lines[0]), (pattern, lines[0])


def refuse_in_process(argv, capsys, watched: Path, pattern: str, main=td3_bc.main) -> None:
    """Runs td3_bc.main(argv) (or another method's `main`) and checks the refusal and that nothing under `watched`
    changed."""
    before = snapshot(watched)
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert_refused(status, err, pattern)
    assert "results:" not in out, out
    assert snapshot(watched) == before


def refuse_in_subprocess(argv, watched: Path, pattern: str) -> None:
    """Runs `python algorithms/td3_bc.py` (argv without its program name) and checks the same things."""
    before = snapshot(watched)
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "algorithms/td3_bc.py", *argv[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert_refused(done.returncode, done.stderr, pattern)
    assert snapshot(watched) == before


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hopper_raw() -> dict:
    """300 rows of random Hopper-v4 play (several terminals)."""
    return rollout_raw("Hopper-v4", 300, seed=3)


@pytest.fixture
def raw(hopper_raw) -> dict:
    return {k: v.copy() for k, v in hopper_raw.items()}


@pytest.fixture(scope="module")
def good_file(hopper_raw, tmp_path_factory) -> Path:
    return write_hdf5(tmp_path_factory.mktemp("good") / "hopper-tiny.hdf5", hopper_raw, {"env_id": "Hopper-v4"})


def _keep_rows(raw, rows):
    for key in list(raw):
        raw[key] = raw[key][:rows]


def _one_transition(raw):
    _keep_rows(raw, 2)
    raw["terminals"][:] = [False, True]
    raw["timeouts"][:] = False


def _no_episode_end(raw):
    raw["terminals"][:] = False
    raw["timeouts"][:] = False


def _widen(key, extra):
    def mutate(raw):
        raw[key] = np.concatenate([raw[key], np.zeros((len(raw[key]), extra), raw[key].dtype)], axis=1)

    return mutate


# name -> (mutation of the raw arrays, pattern of the error line, extra config fields)
BAD_DATA = {
    "missing key": (lambda r: r.pop("terminals"), r"missing key 'terminals'", {}),
    "length mismatch": (lambda r: r.update(rewards=r["rewards"][:-5]), r"length mismatch.*'rewards'", {}),
    "nan in observations": (lambda r: r["observations"].__setitem__((17, 4), np.nan),
                            r"non-finite value in 'observations' \(first at row 17\)", {}),
    "nan in actions": (lambda r: r["actions"].__setitem__((40, 2), np.nan),
                       r"non-finite value in 'actions' \(first at row 40\)", {}),
    "nan in rewards": (lambda r: r["rewards"].__setitem__(99, np.nan),
                       r"non-finite value in 'rewards' \(first at row 99\)", {}),
    "inf in rewards": (lambda r: r["rewards"].__setitem__(5, np.inf), r"non-finite value in 'rewards'", {}),
    "-inf in observations": (lambda r: r["observations"].__setitem__((250, 0), -np.inf),
                             r"non-finite value in 'observations' \(first at row 250\)", {}),
    "actions outside [-1, 1]": (lambda r: r["actions"].__setitem__((12, 1), -1.7),
                                r"actions must lie in \[-1, 1\].*1\.7", {}),
    "empty dataset": (lambda r: _keep_rows(r, 0), r"only 0 rows", {}),
    "one-transition dataset": (_one_transition, r"1 transitions, fewer than one batch", {}),
    "no episode end": (_no_episode_end, r"no episode end", {}),
    "observation size differs from the env": (_widen("observations", 1), r"observation size 12 .*Hopper-v4.*\(11\)",
                                              {"eval_episodes": "1"}),
    "action size differs from the env": (_widen("actions", 1), r"action size 4 .*Hopper-v4.*\(3\)",
                                         {"eval_episodes": "1"}),
    "actions not 2-D": (lambda r: r.update(actions=r["actions"][:, 0]),
                        r"must be 2-D, got \(300, 11\) and \(300,\)", {}),
    "non-numeric observations": (lambda r: r.update(observations=np.full(r["observations"].shape, b"x")),
                                 r"'observations'", {}),
    "batch larger than the dataset": (lambda r: _keep_rows(r, 40), r"fewer than one batch \(batch_size=64\)",
                                      {"batch_size": "64"}),
    "rewards of rank 2": (lambda r: r.update(rewards=np.stack([r["rewards"], r["rewards"]], axis=1)),
                          r"'rewards' must hold one value per row, shape \(300,\), got \(300, 2\)", {}),
    "terminals stored as 0.4": (lambda r: r.update(terminals=np.where(r["terminals"], 1.0, 0.0)) or
                                r["terminals"].__setitem__(12, 0.4),
                                r"'terminals' must be boolean or exactly 0/1, found 0\.4 at row 12", {}),
    "timeouts stored as 2": (lambda r: r.update(timeouts=r["timeouts"].astype(np.int64)) or
                             r["timeouts"].__setitem__(30, 2),
                             r"'timeouts' must be boolean or exactly 0/1, found 2 at row 30", {}),
    "float64 reward beyond float32": (lambda r: r.update(rewards=r["rewards"].astype(np.float64)) or
                                      r["rewards"].__setitem__(5, 1e300),
                                      r"'rewards' holds 1e\+300 at row 5, beyond float32", {}),
    "float64 observation beyond float32": (lambda r: r.update(observations=r["observations"].astype(np.float64)) or
                                           r["observations"].__setitem__((20, 3), -1e40),
                                           r"'observations' holds -1e\+40 at row 20, beyond float32",
                                           {"eval_episodes": "1"}),
    "complex observations": (lambda r: r.update(observations=r["observations"].astype(np.complex64)),
                             r"'observations' must hold real numbers, got dtype complex64", {}),
    "complex rewards": (lambda r: r.update(rewards=r["rewards"] + 1j),
                        r"'rewards' must hold real numbers, got dtype complex64", {}),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_dataset_contents(case, raw, tmp_path, capsys):
    mutate, pattern, fields = BAD_DATA[case]
    mutate(raw)
    path = write_hdf5(tmp_path / "hopper-bad.hdf5", raw, {"env_id": "Hopper-v4"})
    refuse_in_process(cli_args(path, tmp_path / "runs", **fields), capsys, tmp_path, pattern)
    assert not (tmp_path / "runs").exists()


def test_truncated_hdf5_file(good_file, tmp_path, capsys):
    cut = tmp_path / "hopper-cut.hdf5"
    cut.write_bytes(good_file.read_bytes()[:2000])
    refuse_in_process(cli_args(cut, tmp_path / "runs"), capsys, tmp_path, r"hopper-cut\.hdf5: not a readable hdf5 file")


def test_text_file_named_hdf5(tmp_path, capsys):
    fake = tmp_path / "hopper-notes.hdf5"
    fake.write_text("observations,actions\n1,2\n")
    refuse_in_process(cli_args(fake, tmp_path / "runs"), capsys, tmp_path, r"not a readable hdf5 file")


def test_missing_dataset_file(tmp_path, capsys):
    refuse_in_process(cli_args(tmp_path / "absent.hdf5", tmp_path / "runs"), capsys, tmp_path,
                      r"dataset file not found: .*absent\.hdf5")


def test_unknown_dataset_name(tmp_path, capsys):
    refuse_in_process(cli_args("no-such-dataset", tmp_path / "runs"), capsys, tmp_path,
                      r"unknown dataset 'no-such-dataset'")


# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


BAD_CONFIG = {
    "unknown config key": ({"no_such_field": "1"}, r"unknown config field.*no_such_field"),
    "total_steps not an int (text)": ({"total_steps": "abc"}, r"total_steps"),
    "total_steps not an int (float)": ({"total_steps": "2.5"}, r"total_steps"),
    "total_steps negative": ({"total_steps": "-20"}, r"total_steps must be a positive integer, got -20"),
    "total_steps zero": ({"total_steps": "0"}, r"total_steps must be a positive integer, got 0"),
    "batch_size zero": ({"batch_size": "0"}, r"batch_size must be a positive integer, got 0"),
    "batch_size negative": ({"batch_size": "-16"}, r"batch_size must be a positive integer, got -16"),
    "total_steps not a multiple of eval_every": ({"total_steps": "25"},
                                                 r"total_steps \(25\) must be a multiple of eval_every \(10\)"),
    "zero hidden width": ({"hidden_dims": "(0,16)"}, r"hidden_dims"),
    "unknown evaluation env": ({"env": "NoSuchEnv-v0", "eval_episodes": "1"},
                               r"cannot make evaluation env 'NoSuchEnv-v0'"),
    "seed negative": ({"seed": "-1"}, r"seed must be an integer in \[0, 2147483647\].*got -1"),
    "seed beyond what PRNGKey tells apart": ({"seed": str(2**32)}, r"seed must be an integer in \[0, "),
    "checkpoint_every negative": ({"checkpoint_every": "-10"}, r"checkpoint_every must be an integer >= 0, got -10"),
    "resume_changes naming no field": ({"resume_changes": "critic_lr,no_such"},
                                       r"resume_changes names 'no_such', which is not a config field"),
    "a sweep value given twice": ({"sweep.alpha": "2.5,2.5"}, r"sweep\.alpha: 2\.5 is given twice"),
    "a sweep value given twice in other words": ({"sweep.alpha": "1,2.5,2.50"}, r"sweep\.alpha: 2\.5 is given twice"),
    "NaN in a sweep": ({"sweep.alpha": "1,nan"}, r"sweep\.alpha: nan is not a finite number"),
    "inf in a sweep": ({"sweep.tau": "inf"}, r"sweep\.tau: inf is not a finite number"),
    "discount above 1": ({"discount": "1.5"}, r"discount must lie in \(0, 1\], got 1\.5"),
    "discount zero": ({"discount": "0"}, r"discount must lie in \(0, 1\], got 0"),
    "discount NaN": ({"discount": "nan"}, r"discount must be a finite number, got nan"),
    "swept discount above 1": ({"sweep.discount": "0.9,1.5"}, r"sweep\.discount must lie in \(0, 1\], got 1\.5"),
    "tau zero": ({"tau": "0"}, r"tau must lie in \(0, 1\], got 0"),
    "tau above 1": ({"tau": "2"}, r"tau must lie in \(0, 1\], got 2"),
    "swept tau negative": ({"sweep.tau": "-0.005"}, r"sweep\.tau must lie in \(0, 1\], got -0\.005"),
    "critic_lr negative": ({"critic_lr": "-3e-4"}, r"critic_lr must lie in \(0, inf\), got -0\.0003"),
    "actor_lr zero": ({"actor_lr": "0"}, r"actor_lr must lie in \(0, inf\), got 0"),
    "actor_lr infinite": ({"actor_lr": "inf"}, r"actor_lr must be a finite number, got inf"),
    "alpha negative": ({"alpha": "-2.5"}, r"alpha must lie in \[0, inf\), got -2\.5"),
    "swept alpha negative": ({"sweep.alpha": "1,-1"}, r"sweep\.alpha must lie in \[0, inf\), got -1"),
    "policy_noise negative": ({"policy_noise": "-0.2"}, r"policy_noise must lie in \[0, inf\), got -0\.2"),
    "noise_clip NaN": ({"noise_clip": "nan"}, r"noise_clip must be a finite number, got nan"),
    "normalization_eps negative": ({"normalization_eps": "-1e-3"},
                                   r"normalization_eps must lie in \[0, inf\), got -0\.001"),
    "no hidden layer": ({"hidden_dims": "()"}, r"hidden_dims must name at least one hidden layer"),
    "init_style unknown": ({"init_style": "keras"}, r"init_style must be one of \('torch', 'flax'\), got 'keras'"),
    "members beyond the cap": ({"num_seeds": "4097"}, r"4097 members .*more than 4096"),
    "evaluation envs beyond the cap": ({"num_seeds": "41", "eval_episodes": "100"},
                                       r"41 members x 100 eval_episodes = 4100 evaluation envs, more than 4096"),
    "swept members beyond the cap": ({"num_seeds": "2048", "sweep.alpha": "1,2,3"},
                                     r"6144 members \(2048 seeds x 3 values of alpha\), more than 4096"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIG))
def test_bad_config(case, good_file, tmp_path, capsys):
    fields, pattern = BAD_CONFIG[case]
    refuse_in_process(cli_args(good_file, tmp_path / "runs", **fields), capsys, tmp_path, pattern)
    assert not (tmp_path / "runs").exists()


def test_a_field_overridden_twice(good_file, tmp_path, capsys):
    argv = cli_args(good_file, tmp_path / "runs") + ["--config.hidden_dims=(64,64)"]
    refuse_in_process(argv, capsys, tmp_path, r"--config\.hidden_dims is given twice .*give each field once")
    assert not (tmp_path / "runs").exists()


def test_an_env_error_with_an_empty_message(good_file, tmp_path, capsys, monkeypatch):
    def broken_make(env_id, **kwargs):
        raise RuntimeError()

    monkeypatch.setattr("common.evaluation.gym.make", broken_make)
    refuse_in_process(cli_args(good_file, tmp_path / "runs", eval_episodes="1"), capsys, tmp_path,
                      r"cannot make evaluation env 'Hopper-v4': RuntimeError \(no message\)")
    assert not (tmp_path / "runs").exists()


# method -> (its main, its config file, {case: (fields, pattern)}): each method's own fields, and the shared rules
METHOD_CONFIG = {
    "cql": (cql.main, "cql_mujoco.py", {
        "policy_lr zero": ({"policy_lr": "0"}, r"policy_lr must lie in \(0, inf\), got 0"),
        "critic_lr negative": ({"critic_lr": "-1e-4"}, r"critic_lr must lie in \(0, inf\), got -0\.0001"),
        "min_q_weight negative": ({"min_q_weight": "-5"}, r"min_q_weight must lie in \[0, inf\), got -5"),
        "swept min_q_weight negative": ({"sweep.min_q_weight": "1,-5"},
                                        r"sweep\.min_q_weight must lie in \[0, inf\), got -5"),
        "alpha_multiplier NaN": ({"alpha_multiplier": "nan"}, r"alpha_multiplier must be a finite number, got nan"),
        "cql_temp zero": ({"cql_temp": "0"}, r"cql_temp must lie in \(0, inf\), got 0"),
        "swept cql_temp zero": ({"sweep.cql_temp": "1,0"}, r"sweep\.cql_temp must lie in \(0, inf\), got 0"),
        "reward_scale NaN": ({"reward_scale": "nan"}, r"reward_scale must be a finite number, got nan"),
        "discount above 1": ({"discount": "1.01"}, r"discount must lie in \(0, 1\], got 1\.01"),
        "no hidden layer": ({"hidden_dims": "()"}, r"hidden_dims must name at least one hidden layer"),
        # alpha' is clipped at 1e6 = e^13.8155: a start above never moves (its gradient is 0; above ~88 it is NaN)
        "log_alpha_prime_init beyond the clip": ({"log_alpha_prime_init": "20"},
                                                 r"log_alpha_prime_init must lie in \(-inf, 13\.8155\d*\], got 20"),
    }),
    "misa": (misa.main, "misa_mujoco.py", {
        "alpha_lr negative": ({"alpha_lr": "-1e-4"}, r"alpha_lr must lie in \(0, inf\), got -0\.0001"),
        "policy_lr NaN": ({"policy_lr": "nan"}, r"policy_lr must be a finite number, got nan"),
        "bc_weight negative": ({"bc_weight": "-0.5"}, r"bc_weight must lie in \[0, inf\), got -0\.5"),
        "swept unbiased_weight negative": ({"sweep.unbiased_weight": "-0.1"},
                                           r"sweep\.unbiased_weight must lie in \[0, inf\), got -0\.1"),
        "target_action_gap infinite": ({"target_action_gap": "inf"},
                                       r"target_action_gap must be a finite number, got inf"),
        "tau above 1": ({"tau": "1.5"}, r"tau must lie in \(0, 1\], got 1\.5"),
        "log_alpha_prime_init beyond the clip": ({"log_alpha_prime_init": "100"},
                                                 r"log_alpha_prime_init must lie in \(-inf, 13\.8155\d*\], got 100"),
        "critic_activation unknown": ({"critic_activation": "swish"},
                                      r"critic_activation must be one of \[.*\], got 'swish'"),
        "no hidden layer": ({"hidden_dims": "()"}, r"hidden_dims must name at least one hidden layer"),
    }),
}


@pytest.mark.parametrize("method, case", [(m, case) for m, (_, _, cases) in METHOD_CONFIG.items() for case in cases])
def test_bad_config_of_each_method(method, case, good_file, tmp_path, capsys):
    main, config_file, cases = METHOD_CONFIG[method]
    fields, pattern = cases[case]
    refuse_in_process(cli_args(good_file, tmp_path / "runs", config_file=config_file, **fields), capsys, tmp_path,
                      pattern, main=main)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag, package", [("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_an_optional_package_that_is_not_installed(flag, package, good_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` fails, installed or not
    refuse_in_process(cli_args(good_file, tmp_path / "runs", **{flag: "True"}), capsys, tmp_path,
                      rf"{flag}=True needs the package {package}, which is not installed \(pip install {package}\)")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", ["abc", 0, -5, 2.5, True])
def test_bad_max_episode_steps_in_the_metadata(value, raw, tmp_path, capsys):
    path = write_hdf5(tmp_path / "hopper-meta.hdf5", raw, {"env_id": "Hopper-v4", "max_episode_steps": value})
    refuse_in_process(cli_args(path, tmp_path / "runs"), capsys, tmp_path,
                      rf"hopper-meta\.hdf5: metadata max_episode_steps must be a positive integer, got "
                      rf"{re.escape(repr(value))}")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("value", [5, 2.5])
def test_metadata_env_id_that_is_not_text(value, raw, tmp_path, capsys):
    path = write_hdf5(tmp_path / "hopper-meta.hdf5", raw, {"env_id": value})
    refuse_in_process(cli_args(path, tmp_path / "runs", eval_episodes="1"), capsys, tmp_path,
                      rf"hopper-meta\.hdf5: metadata env_id must be a gymnasium env id \(text\), got {value!r}")
    assert not (tmp_path / "runs").exists()


def test_log_dir_with_a_nul(good_file, tmp_path, capsys):
    refuse_in_process(cli_args(good_file, f"{tmp_path}/runs\0x"), capsys, tmp_path,
                      r"log_dir must be a path without NUL, got '.*runs\\x00x'")


def _npz(path, raw, **extra):
    np.savez(path, **raw, **extra, **{"metadata/env_id": np.asarray("Hopper-v4")})
    return path


def test_npz_with_nan_in_next_observations(raw, tmp_path, capsys):
    nxt = np.concatenate([raw["observations"][1:], raw["observations"][-1:]])
    nxt[77, 3] = np.nan
    path = _npz(tmp_path / "hopper-next.npz", raw, next_observations=nxt)
    refuse_in_process(cli_args(path, tmp_path / "runs"), capsys, tmp_path,
                      r"non-finite value in 'next_observations' \(first at row 77\)")
    assert not (tmp_path / "runs").exists()


def test_npz_with_next_observations_of_another_shape(raw, tmp_path, capsys):
    path = _npz(tmp_path / "hopper-next.npz", raw, next_observations=raw["observations"][:, :5])
    refuse_in_process(cli_args(path, tmp_path / "runs"), capsys, tmp_path,
                      r"'next_observations' has shape \(300, 5\), observations have \(300, 11\)")


def test_unknown_config_file(good_file, tmp_path, capsys):
    argv = cli_args(good_file, tmp_path / "runs")
    argv[1] = f"--config={tmp_path / 'no_such_config.py'}"
    refuse_in_process(argv, capsys, tmp_path, r"cannot load the config file.*no_such_config\.py")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage_and_the_configs_fields_and_trains_nothing(flag, good_file, tmp_path, capsys):
    """`algorithms/<method>.py --help` was refused by absl as "Unknown command line flag 'help'" (exit 2)."""
    argv = cli_args(good_file, tmp_path / "runs", num_seeds="3") + [flag]
    argv[1] = f"--config={ROOT}/configs/td3_bc_antmaze.py:antmaze-umaze-v2"
    before = snapshot(tmp_path)
    capsys.readouterr()
    status = td3_bc.main(argv)
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.startswith("usage: python algorithms/td3_bc.py --config configs/<file>.py[:variant]"), out
    assert [line.strip() for line in out.splitlines() if line.strip().startswith("configs/")] == [
        f"configs/td3_bc_{domain}.py" for domain in ("adroit", "antmaze", "kitchen", "mujoco")]
    assert "td3_bc_antmaze.py:antmaze-umaze-v2 (with the overrides given)" in out
    assert "  num_seeds = 3\n" in out and "  eval_episodes = 0\n" in out  # the overrides are applied
    assert snapshot(tmp_path) == before


def test_help_with_a_bad_override_is_refused(good_file, tmp_path, capsys):
    argv = cli_args(good_file, tmp_path / "runs", no_such_field="1") + ["--help"]
    refuse_in_process(argv, capsys, tmp_path, r"no_such_field")


# ------------------------------------------------------------------------------------------------
# Run directories and checkpoints
# ------------------------------------------------------------------------------------------------


def test_run_name_dot_with_overwrite_leaves_the_log_dir_alone(good_file, tmp_path, capsys):
    """run_name "." would make log_dir itself the run directory, and overwrite would empty it."""
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    (log_dir / "notes.txt").write_text("not a run\n")
    refuse_in_process(cli_args(good_file, log_dir, run_name=".", overwrite="True"), capsys, tmp_path,
                      r"run_name must be one path component .*got '\.'")
    assert (log_dir / "notes.txt").read_text() == "not a run\n"


def test_overwrite_of_a_run_directory_that_is_a_symbolic_link_leaves_its_target_alone(good_file, tmp_path, capsys):
    """Bug: with log_dir/<run_name> a symbolic link, overwrite emptied the directory it points to (another run, a
    user's files), far from log_dir."""
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious.txt").write_text("keep me\n")
    log_dir = tmp_path / "runs"
    log_dir.mkdir()
    (log_dir / "linked").symlink_to(target)
    refuse_in_process(cli_args(good_file, log_dir, run_name="linked", overwrite="True"), capsys, tmp_path,
                      r"run directory .*linked is a symbolic link \(to .*elsewhere\) and replacing the run would "
                      r"empty the directory it points to")
    assert (target / "precious.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("dataset", ["minari:door/human-v2", "../../data/x.hdf5", "a/../b", "..", "hopper-medium-v2"])
def test_the_derived_run_name_is_one_path_component(dataset):
    config = td3_bc_mujoco.get_config()
    config.dataset = dataset
    name = configuration.run_name("td3_bc", config)
    assert configuration.check_run_name(name) == name and name.startswith("td3_bc_") and name.endswith("_s0")


@pytest.mark.parametrize("name", ["..", "../x", "{tmp}/abs/x", "a/b", "a\0b"])
def test_run_name_that_is_not_one_path_component(name, good_file, tmp_path, capsys):
    name = name.format(tmp=tmp_path)
    refuse_in_process(cli_args(good_file, tmp_path / "runs" / "inner", run_name=name, overwrite="True"), capsys,
                      tmp_path, rf"run_name must be one path component .*got {re.escape(repr(name))}")
    assert not (tmp_path / "runs").exists()


def test_log_dir_that_cannot_be_written(good_file, tmp_path, capsys):
    """log_dir lies below a regular file, so no directory can be made there. (chmod 555 on a directory does
    not stop root, who runs these tests in CI containers; a file in the path stops everyone.)"""
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a regular file\n")
    refuse_in_process(cli_args(good_file, blocker / "logs"), capsys, tmp_path,
                      r"log directory .*not_a_dir/logs/bad is not writable")
    assert blocker.read_text() == "a regular file\n"


@pytest.fixture(scope="module")
def tiny_run(good_file, tmp_path_factory) -> Path:
    """A real finished run: 20 steps, checkpoints at 10 and 20, one evaluation episode per interval."""
    log_dir = tmp_path_factory.mktemp("tiny_run")
    argv = cli_args(good_file, log_dir, run_name="tiny", eval_episodes="1", checkpoint_every="10")
    assert td3_bc.main(argv) == 0
    run = log_dir / "tiny"
    assert (run / "checkpoints" / "LATEST").read_text().strip() == "step_20"
    return run


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run at tmp_path/runs/tiny (the same run name, so resume finds it)."""
    return Path(shutil.copytree(tiny_run, tmp_path / "runs" / "tiny"))


def test_existing_run_dir_is_refused_and_untouched(good_file, run_copy, tmp_path, capsys):
    assert {"config.json", "metrics.csv", "eval.csv", "summary.json", "curves.png"} <= {
        p.name for p in run_copy.iterdir()}
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny"), capsys, tmp_path,
                      r"run directory .*tiny already exists.*resume.*overwrite")


def test_resume_without_a_run_dir(good_file, tmp_path, capsys):
    refuse_in_process(cli_args(good_file, tmp_path / "runs", resume="True"), capsys, tmp_path,
                      r"nothing to resume: .*runs/bad has no checkpoint")
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_run_dir_without_checkpoint(good_file, run_copy, tmp_path, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True"), capsys, tmp_path,
                      r"nothing to resume: .*tiny has no checkpoint")


def test_resume_from_another_algorithms_checkpoint(good_file, run_copy, tmp_path, capsys):
    meta_path = run_copy / "checkpoints" / "step_20" / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["algorithm"] == "td3_bc"
    meta_path.write_text(json.dumps({**meta, "algorithm": "cql"}))
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True",
                               total_steps="40"), capsys, tmp_path,
                      r"checkpoint .*step_20 was written with algorithm='cql', this run has algorithm='td3_bc'")


def test_resume_with_other_network_shapes(good_file, run_copy, tmp_path, capsys):
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                               hidden_dims="(32,32)"), capsys, tmp_path,
                      r"checkpoint .*step_20 does not match this run: state/\S+ has shape \(1, .*16.*\), "
                      r"expected \(1, .*32.*\)")


@pytest.mark.parametrize("damage", ["truncated state.msgpack", "meta.json not JSON"])
def test_resume_from_a_damaged_checkpoint(damage, good_file, run_copy, tmp_path, capsys):
    step = run_copy / "checkpoints" / "step_20"
    if damage == "truncated state.msgpack":
        (step / "state.msgpack").write_bytes((step / "state.msgpack").read_bytes()[:100])
    else:
        (step / "meta.json").write_text("{not json")
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40"),
                      capsys, tmp_path, r"checkpoint .*step_20")


def test_resume_with_another_dataset(raw, run_copy, tmp_path, capsys):
    _keep_rows(raw, 200)
    other = write_hdf5(tmp_path / "hopper-other.hdf5", raw, {"env_id": "Hopper-v4"})
    refuse_in_process(cli_args(other, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40"),
                      capsys, tmp_path, r"checkpoint .*step_20 was written with dataset_stats=")


def test_resume_with_another_dataset_of_the_same_size(raw, run_copy, tmp_path, capsys):
    raw["rewards"] = raw["rewards"] + 0.5  # same counts and shapes, other content
    other = write_hdf5(tmp_path / "hopper-tiny.hdf5", raw, {"env_id": "Hopper-v4"})
    refuse_in_process(cli_args(other, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                               eval_episodes="1", checkpoint_every="10"), capsys, tmp_path,
                      r"resume refused: the dataset's content differs from the one checkpoint .*step_20 was trained on")


def test_resume_with_a_changed_learning_rate(good_file, run_copy, tmp_path, capsys):
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                               eval_episodes="1", checkpoint_every="10", critic_lr="1e-5"), capsys, tmp_path,
                      r"resume refused: config differs from checkpoint .*step_20: critic_lr 0\.0003 -> 1e-05 "
                      r"\(to continue with the change, add --config\.resume_changes=critic_lr\)")


@pytest.mark.parametrize("name", ["eval.csv", "metrics.csv"])
def test_resume_with_a_csv_file_without_its_header(name, good_file, run_copy, tmp_path, capsys):
    path = run_copy / name
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                               eval_episodes="1", checkpoint_every="10"), capsys, tmp_path,
                      rf"cannot resume .*tiny: {re.escape(name)} does not start with its header 'step,seed,")


def test_resume_with_a_csv_cell_that_is_not_a_number(good_file, run_copy, tmp_path, capsys):
    path = run_copy / "eval.csv"
    lines = path.read_text().splitlines(keepends=True)
    cells = lines[1].split(",")
    lines[1] = ",".join(cells[:2] + ["twelve"] + cells[3:])
    path.write_text("".join(lines))
    refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                               eval_episodes="1", checkpoint_every="10"), capsys, tmp_path,
                      r"cannot resume .*tiny: eval\.csv line 2 column 'return' holds 'twelve', not a number")


def test_run_directory_locked_by_another_run(good_file, run_copy, tmp_path, capsys):
    import fcntl

    with open(run_copy / ".lock", "w") as holder:  # what a live run holds (flock is per open file)
        holder.write("4242\n")
        holder.flush()
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        refuse_in_process(cli_args(good_file, tmp_path / "runs", run_name="tiny", overwrite="True"), capsys,
                          tmp_path, r"run directory .*tiny is in use by another run \(pid 4242\)")


# ------------------------------------------------------------------------------------------------
# The real process: exit code and one stderr line without a traceback
# ------------------------------------------------------------------------------------------------


def test_process_refuses_nan_actions(raw, tmp_path):
    raw["actions"][3, 0] = np.nan
    path = write_hdf5(tmp_path / "hopper-nan.hdf5", raw, {"env_id": "Hopper-v4"})
    refuse_in_subprocess(cli_args(path, tmp_path / "runs"), tmp_path, r"^error: .*non-finite value in 'actions'")
    assert not (tmp_path / "runs").exists()


def test_process_refuses_an_unknown_config_key(good_file, tmp_path):
    refuse_in_subprocess(cli_args(good_file, tmp_path / "runs", no_such_field="1"), tmp_path,
                         r"^error: unknown config field.*no_such_field")
    assert not (tmp_path / "runs").exists()


def test_process_refuses_a_mismatched_checkpoint(good_file, run_copy, tmp_path):
    refuse_in_subprocess(cli_args(good_file, tmp_path / "runs", run_name="tiny", resume="True", total_steps="40",
                                  hidden_dims="(32,32)"), tmp_path, r"^error: checkpoint .* does not match this run")
