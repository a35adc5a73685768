"""The bad-input catalogue of the tools on saved runs: `load_run`, scripts/evaluate.py, scripts/demo.py.

Every refused input gives exit status 2 (RunError in Python) with one stderr line and leaves the disk as it was
(`snapshot`: every file's bytes and mtime). The run is a real tiny TD3+BC run (2 seeds, checkpoints at steps 10
and 20) trained on a private Hopper-v4 file, copied for each test that could touch it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT, rollout_raw, write_hdf5  # noqa: E402
from test_bad_inputs import assert_refused, cli_args, snapshot  # noqa: E402

from algorithms import load_run, td3_bc  # noqa: E402
from common import checkpoints  # noqa: E402
from common.datasets import load_dataset  # noqa: E402
from common.runs import RunError  # noqa: E402
from scripts import demo, evaluate  # noqa: E402


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    """300 rows of random Hopper-v4 play."""
    path = tmp_path_factory.mktemp("tools_data") / "hopper-tools.hdf5"
    return write_hdf5(path, rollout_raw("Hopper-v4", 300, seed=5), {"env_id": "Hopper-v4"})


@pytest.fixture(scope="module")
def tiny_run(data_file, tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("tools_run")
    argv = cli_args(data_file, log_dir, run_name="tiny", eval_episodes="1", checkpoint_every="10", num_seeds="2")
    assert td3_bc.main(argv) == 0
    return log_dir / "tiny"


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "runs" / "tiny"))


def call(main, argv, capsys) -> tuple[int, str, str]:
    """main(argv) in-process: (exit status, stdout, stderr); an argparse exit counts as its status."""
    capsys.readouterr()
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


def refused(main, argv, capsys, watched: Path, pattern: str) -> str:
    """main(argv) refuses in one line matching `pattern` and nothing under `watched` changes; returns the line."""
    before = snapshot(watched)
    status, out, err = call(main, argv, capsys)
    assert_refused(status, err, pattern)
    assert snapshot(watched) == before
    return err.strip()


def evaluations(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "evaluations").glob("*.json"))


# ------------------------------------------------------------------------------------------------
# The dataset a run was trained on
# ------------------------------------------------------------------------------------------------


def test_evaluate_refuses_a_run_whose_dataset_changed_with_the_same_counts(data_file, tmp_path, capsys):
    """Bug: a rewritten dataset file (same counts, other observations) was loaded as the run's: TD3+BC's state
    normalisation was recomputed from it and the run scored with it (exit 0), though the checkpoint records the
    dataset's sha256."""
    import h5py

    data = Path(shutil.copy(data_file, tmp_path / "hopper-tools.hdf5"))
    assert td3_bc.main(cli_args(data, tmp_path / "runs", run_name="tiny", checkpoint_every="10")) == 0
    stats = load_dataset(str(data)).stats
    with h5py.File(data, "r+") as f:  # rewritten in place: the same rows, other observations
        f["observations"][...] = f["observations"][...] * 2.0 + 0.5
    assert load_dataset(str(data)).stats == stats
    run_dir = tmp_path / "runs" / "tiny"
    pattern = (r"^error: run .*tiny: the dataset changed since training: the dataset's content differs from the one "
               r"checkpoint .*step_20 was trained on")
    refused(evaluate.main, ["--run", str(run_dir), "--episodes", "1"], capsys, tmp_path, pattern)
    with pytest.raises(RunError, match="the dataset changed since training"):
        load_run(run_dir)


def test_load_run_refuses_a_dataset_given_that_is_not_the_runs(run_copy, data_file, tmp_path):
    raw = rollout_raw("Hopper-v4", 300, seed=6)
    other = load_dataset(str(write_hdf5(tmp_path / "other.hdf5", raw, {"env_id": "Hopper-v4"})))
    with pytest.raises(RunError, match="the dataset changed since training"):
        load_run(run_copy, dataset=other)
    assert load_run(run_copy, dataset=load_dataset(str(data_file))).step == 20


# ------------------------------------------------------------------------------------------------
# evaluate.py arguments
# ------------------------------------------------------------------------------------------------


def test_evaluate_refuses_a_negative_seed(run_copy, tmp_path, capsys):
    """Bug: gymnasium's "Seed must be a python integer greater or equal to 0" traceback, after loading the run."""
    refused(evaluate.main, ["--run", str(run_copy), "--seed", "-1"], capsys, tmp_path,
            r"^error: --seed must be >= 0, got -1 \(see --help\)$")


@pytest.mark.parametrize("where", ["an existing file", "below a file"])
def test_evaluate_refuses_a_video_directory_it_cannot_make_before_evaluating(run_copy, tmp_path, capsys, where,
                                                                            monkeypatch):
    """Bug: the evaluation ran, then writing the video failed with a traceback and the evaluation was lost."""
    blocker = tmp_path / "clip.mp4"
    blocker.write_text("not a directory\n")
    video = blocker if where == "an existing file" else blocker / "videos"
    monkeypatch.setattr("common.runs.Run.evaluate", lambda *a, **k: pytest.fail("evaluated before refusing"))
    refused(evaluate.main, ["--run", str(run_copy), "--episodes", "1", "--video", str(video)], capsys, tmp_path,
            r"^error: --video .*clip\.mp4.* (is a file|cannot be made)")


def test_evaluate_refuses_an_evaluations_folder_that_is_a_file_before_evaluating(run_copy, tmp_path, capsys,
                                                                                 monkeypatch):
    """Bug: the evaluation ran, then making run_dir/evaluations raised FileExistsError (traceback, result lost)."""
    (run_copy / "evaluations").write_text("a file in the way\n")
    monkeypatch.setattr("common.runs.Run.evaluate", lambda *a, **k: pytest.fail("evaluated before refusing"))
    refused(evaluate.main, ["--run", str(run_copy), "--episodes", "1"], capsys, tmp_path,
            r"^error: the evaluations folder .*tiny/evaluations is a file, not a directory$")


def test_a_film_that_fails_keeps_the_evaluation(run_copy, tmp_path, capsys, monkeypatch):
    """Bug: a renderer failure (no OpenGL, say) came after the evaluation, as a traceback, and lost it."""
    def no_gl(*args, **kwargs):
        raise RuntimeError("invalid value for environment variable MUJOCO_GL: nonsense")

    monkeypatch.setattr("common.runs.Run.render", no_gl)
    status, out, err = call(evaluate.main, ["--run", str(run_copy), "--episodes", "1", "--video",
                                            str(tmp_path / "videos")], capsys)
    assert_refused(status, err, r"^error: cannot render member 0: RuntimeError: invalid value for environment "
                                r"variable MUJOCO_GL: nonsense \(the evaluation is written: .*\.json\)$")
    (record,) = evaluations(run_copy)
    assert json.loads(record.read_text())["videos"] == [] and not (tmp_path / "videos").exists()


def test_a_second_film_keeps_the_first(run_copy, tmp_path, capsys):
    """Bug: a second --video into the same folder replaced the first film of the same member (another seed or
    length, the first record still naming it)."""
    from test_evaluate import offscreen_gl_problem

    if offscreen_gl_problem() is not None:
        pytest.skip(f"no offscreen OpenGL for MuJoCo: {offscreen_gl_problem()}")
    videos = tmp_path / "videos"
    argv = ["--run", str(run_copy), "--episodes", "1", "--member", "0", "--video", str(videos), "--video-episodes", "1"]
    assert call(evaluate.main, argv, capsys)[0] == 0
    (first,) = videos.iterdir()
    before = snapshot(videos)
    assert call(evaluate.main, [*argv, "--seed", "1"], capsys)[0] == 0
    assert {k: v for k, v in snapshot(videos).items() if k in before} == before
    records = [json.loads(p.read_text()) for p in evaluations(run_copy)]
    assert sorted(Path(r["videos"][0]).name for r in records) == sorted(p.name for p in videos.iterdir())
    assert len(list(videos.iterdir())) == 2 and not any(p.name.startswith(".") for p in videos.iterdir())


def test_evaluate_interrupted_says_so_in_one_line_and_writes_nothing(run_copy, tmp_path):
    """Bug: Ctrl-C printed a KeyboardInterrupt traceback. A real SIGINT, sent by the process to itself while it
    evaluates."""
    script = ("import os, signal, sys, time\n"
              "from common import runs\n"
              "def evaluate(*args, **kwargs):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(30)\n"
              "runs.Run.evaluate = evaluate\n"
              "from scripts import evaluate as tool\n"
              "sys.exit(tool.main(sys.argv[1:]))\n")
    before = snapshot(tmp_path)
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", script, "--run", str(run_copy), "--episodes", "1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signal.SIGINT, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted by SIGINT: ") and "nothing was written" in lines[0], \
        done.stderr
    assert snapshot(tmp_path) == before


def test_evaluate_while_training_rotates_its_checkpoints(run_copy, monkeypatch, capsys):
    """Bug: the latest checkpoint was removed by the training's rotation between finding and reading it, and
    evaluate.py said the run was not a run directory. Here the rotation happens right after LATEST is read."""
    real_latest = checkpoints.latest

    def rotate(run_dir):
        root = Path(run_dir) / "checkpoints"
        newer = root / "step_30"
        shutil.copytree(root / "step_20", newer)
        meta = json.loads((newer / "meta.json").read_text())
        (newer / "meta.json").write_text(json.dumps({**meta, "step": 30}))
        (root / "LATEST").write_text("step_30\n")
        shutil.rmtree(root / "step_10")
        shutil.rmtree(root / "step_20")

    def latest_then_rotated(run_dir):
        path = real_latest(run_dir)
        if path is not None and path.name == "step_20":
            rotate(run_dir)
        return path

    monkeypatch.setattr(checkpoints, "latest", latest_then_rotated)
    status, out, err = call(evaluate.main, ["--run", str(run_copy), "--episodes", "1"], capsys)
    assert status == 0, err
    record = json.loads(evaluations(run_copy)[0].read_text())
    assert record["checkpoint_step"] == 30


# ------------------------------------------------------------------------------------------------
# load_run and the Run it returns
# ------------------------------------------------------------------------------------------------


def test_a_config_json_without_a_field(run_copy, tmp_path, capsys):
    """Bug: an AttributeError traceback from inside the method's make_agent."""
    config_path = run_copy / "config.json"
    config = json.loads(config_path.read_text())
    del config["hidden_dims"]
    config_path.write_text(json.dumps(config))
    pattern = r"^error: .*tiny/config\.json lacks the field 'hidden_dims'"
    refused(evaluate.main, ["--run", str(run_copy)], capsys, tmp_path, pattern)
    with pytest.raises(RunError, match="lacks the field 'hidden_dims'"):
        load_run(run_copy)


def test_a_file_given_as_the_run_directory(run_copy, tmp_path, capsys):
    """Bug: 'run directory ... does not exist' for a file that does exist."""
    target = run_copy / "config.json"
    refused(evaluate.main, ["--run", str(target)], capsys, tmp_path, r"^error: .*config\.json is a file, not a run "
                                                                     r"directory$")
    with pytest.raises(RunError, match="is a file, not a run directory"):
        load_run(target)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"seed": -5}, r"seed must be an integer >= 0, got -5"),
    ({"seed": 1.5}, r"seed must be an integer >= 0, got 1\.5"),
    ({"members": []}, r"members must name at least one member"),
    ({"members": [1, 1]}, r"members must be distinct, got \[1, 1\]"),
])
def test_evaluate_refuses_bad_arguments(run_copy, kwargs, pattern):
    """Bug: seed=-5 raised gymnasium's error from the first reset; members=[] a reshape error."""
    run = load_run(run_copy)
    with pytest.raises(RunError, match=pattern):
        run.evaluate(episodes=1, **kwargs)


@pytest.mark.parametrize("shape", [(), (3,), (12,), (2, 12), (2, 3, 11), (0,)])
def test_policy_refuses_observations_of_another_size(run_copy, shape):
    """Bug: a scalar or a (3,) observation broadcast against TD3+BC's 11-wide normalisation and gave an action;
    other sizes gave a shape error from inside flax."""
    act = load_run(run_copy).policy(0)
    with pytest.raises(RunError, match=r"observation of shape \(.*\): this run's policies take \(11,\) or "
                                       r"\(batch, 11\)"):
        act(np.zeros(shape, np.float32))
    assert np.asarray(act(np.zeros((2, 11), np.float32))).shape == (2, 3)


# ------------------------------------------------------------------------------------------------
# demo.py
# ------------------------------------------------------------------------------------------------

DEMO = ["--config.total_steps=20", "--config.eval_every=10", "--config.eval_episodes=1", "--config.batch_size=32",
        "--config.hidden_dims=(16, 16)", "--config.n_actions=2", "--config.hmc_burn_in=1",
        "--config.hmc_num_samples=2", "--config.progress=False"]


def test_demo_refuses_a_transitions_file_before_training(tmp_path, capsys, monkeypatch):
    """Bug: a transitions file (rows out of order, its own next_observations, no episodes) trained, then the
    table's np.max over no episode returns raised a traceback."""
    raw = rollout_raw("Hopper-v4", 300, seed=7)
    nxt = np.concatenate([raw["observations"][1:], raw["observations"][-1:]])
    order = np.random.default_rng(0).permutation(300)
    rows = {k: v[order] for k, v in raw.items()}
    path = tmp_path / "hopper-shuffled.npz"
    np.savez(path, **rows, next_observations=nxt[order], **{"metadata/env_id": np.asarray("Hopper-v4")})
    assert load_dataset(str(path)).stats["episodes"] == 0
    monkeypatch.setattr("algorithms.misa.main", lambda argv: pytest.fail("trained before refusing"))
    refused(demo.main, [*DEMO, f"--config.dataset={path}", f"--config.log_dir={tmp_path / 'runs'}"], capsys,
            tmp_path, r"^error: .*hopper-shuffled\.npz has no complete episodes")


@pytest.mark.parametrize("name", ["", ".", "..", "../elsewhere", "/tmp/elsewhere"])
def test_demo_refuses_a_run_name_that_is_no_directory_below_log_dir(tmp_path, capsys, monkeypatch, name):
    """Bug: `--config.run_name=` trained (the host names such a run itself), then the demo read summary.json from
    log_dir itself: a FileNotFoundError traceback after training."""
    monkeypatch.setattr("algorithms.misa.main", lambda argv: pytest.fail("trained before refusing"))
    refused(demo.main, [*DEMO, f"--config.log_dir={tmp_path / 'runs'}", f"--config.run_name={name}"], capsys,
            tmp_path, r"^error: run_name must be one path component")
