"""Run directories that never lie: one writer at a time, nothing lost to a full disk, honest runs without evaluation,
and runs that stopped before their first checkpoint can be started again or resumed from step 0.

In-process runs call the real CLI entry `td3_bc.main(argv)`; the concurrency test runs two real processes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, rollout_raw, write_hdf5
from test_bad_inputs import assert_refused, cli_args

from algorithms import td3_bc
from common import checkpoints


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_hdf5(tmp_path_factory.mktemp("data") / "hopper-tiny.hdf5", rollout_raw("Hopper-v4", 300, seed=3),
                      {"env_id": "Hopper-v4"})


def state_bytes(run_dir, step):
    return (run_dir / "checkpoints" / f"step_{step}" / "state.msgpack").read_bytes()


def strict_json(path):
    def refuse(name):
        raise ValueError(f"{path.name} holds {name}, which strict JSON readers reject")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def no_eval_run(data_file, tmp_path_factory):
    """A finished 20-step run with eval_episodes=0 (its only checkpoint is the final one), and its stdout."""
    log_dir = tmp_path_factory.mktemp("noeval")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert td3_bc.main(cli_args(data_file, log_dir, run_name="noeval")) == 0
    return log_dir / "noeval", out.getvalue()


def test_no_evaluation_is_reported_plainly_in_strict_json(no_eval_run):
    run_dir, out = no_eval_run
    assert "no evaluation (eval_episodes=0)" in out and "nan" not in out, out
    assert f"results: {run_dir} (metrics.csv, summary.json)" in out, out
    assert not (run_dir / "eval.csv").exists() and not (run_dir / "curves.png").exists()
    summary = strict_json(run_dir / "summary.json")
    assert summary["evaluations"] == 0
    assert summary["normalized_score_final"] == [None] and summary["normalized_score_final_mean"] is None
    strict_json(run_dir / "checkpoints" / "step_20" / "meta.json")


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0_exactly(no_eval_run, data_file, tmp_path):
    """A run that died after logging rows but before any checkpoint: resume starts again from step 0, keeps the
    original config.json, appends to history.jsonl, and ends exactly as the run that was never stopped."""
    whole = no_eval_run[0]
    stopped = shutil.copytree(whole, tmp_path / "stopped")
    shutil.rmtree(stopped / "checkpoints")
    (stopped / "summary.json").unlink()
    config_before = (stopped / "config.json").read_bytes()
    assert td3_bc.main(cli_args(data_file, tmp_path, run_name="stopped", resume="True")) == 0
    assert (stopped / "config.json").read_bytes() == config_before
    history = [json.loads(line) for line in (stopped / "history.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in history] == [("start", 0), ("resume", 0)]
    assert (stopped / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert state_bytes(stopped, 20) == state_bytes(whole, 20)


def test_a_directory_without_results_is_started_again_without_overwrite(data_file, tmp_path, capsys):
    """What a run killed while compiling leaves (config.json, a header-only metrics.csv, a half-written checkpoint,
    the lock file naming a dead pid) holds no results: the same command starts it again. A stale lock never
    blocks."""
    run_dir = tmp_path / "left"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}\n")
    (run_dir / "metrics.csv").write_text("step,seed,critic_loss\n")
    (run_dir / "checkpoints" / ".step_10.tmp").mkdir(parents=True)
    (run_dir / ".lock").write_text("999999\n")  # no process holds it
    assert td3_bc.main(cli_args(data_file, tmp_path, run_name="left")) == 0
    assert not (run_dir / ".lock").exists() and not (run_dir / "checkpoints" / ".step_10.tmp").exists()
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_20"
    assert json.loads((run_dir / "config.json").read_text())["total_steps"] == 20


def test_a_full_disk_keeps_the_last_good_checkpoint_and_no_temporary_file(data_file, tmp_path, capsys, monkeypatch):
    written = []
    real = checkpoints.write_state

    def fills_the_disk(path, payload):
        written.append(path)
        if len(written) == 2:  # the checkpoint at step 20
            with open(path, "wb") as f:
                f.write(payload[: len(payload) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, payload)

    monkeypatch.setattr(checkpoints, "write_state", fills_the_disk)
    argv = cli_args(data_file, tmp_path, run_name="full", checkpoint_every="10", total_steps="30")
    capsys.readouterr()
    status = td3_bc.main(argv)
    _, err = capsys.readouterr()
    assert_refused(status, err, r"cannot write checkpoint step_20 .*\(No space left on device\); last checkpoint: "
                                r"step 10; continue with --config.resume=True")
    run_dir = tmp_path / "full"
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_10"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["LATEST", "step_10"]
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / ".lock").exists()
    monkeypatch.setattr(checkpoints, "write_state", real)
    assert td3_bc.main(cli_args(data_file, tmp_path, run_name="full", checkpoint_every="10", total_steps="30",
                                resume="True")) == 0
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_30"
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"]) for e in history] == [("start", 0), ("resume", 10)]


def test_divergence_before_the_first_checkpoint_says_there_is_none(data_file, tmp_path, capsys):
    argv = cli_args(data_file, tmp_path, run_name="diverged", critic_lr="1e30", checkpoint_every="0",
                    total_steps="40")
    capsys.readouterr()
    assert td3_bc.main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert "training diverged: non-finite" in err and "no checkpoint yet: start again with --config.overwrite=True" \
        in err, err
    assert "last checkpoint" not in err


def test_two_runs_into_one_directory(data_file, tmp_path):
    """The second run, even with overwrite, exits 2 naming the first one's pid and changes nothing of it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    first_cmd = [sys.executable, "algorithms/td3_bc.py", *cli_args(data_file, tmp_path, run_name="shared",
                                                                     total_steps="100000")[1:]]
    first = subprocess.Popen(first_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    run_dir = tmp_path / "shared"
    deadline = time.time() + 600
    while time.time() < deadline and first.poll() is None:
        if (run_dir / "metrics.csv").exists() and len((run_dir / "metrics.csv").read_text().splitlines()) > 2:
            break
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read()
    config_before = (run_dir / "config.json").read_bytes()
    second_cmd = [sys.executable, "algorithms/td3_bc.py", *cli_args(data_file, tmp_path, run_name="shared",
                                                                      overwrite="True", seed="7")[1:]]
    second = subprocess.run(second_cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    alive = first.poll() is None
    first.send_signal(signal.SIGTERM)
    _, first_err = first.communicate(timeout=600)
    assert alive, first_err
    assert_refused(second.returncode, second.stderr,
                   rf"^error: run directory .*shared is in use by another run \(pid {first.pid}\)")
    assert first.returncode == 143, first_err
    assert (run_dir / "config.json").read_bytes() == config_before
    seeds = {line.split(",")[1] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]}
    assert seeds == {"0"}
    stopped = int((run_dir / "checkpoints" / "LATEST").read_text().strip().split("_")[1])
    assert stopped > 0 and not (run_dir / ".lock").exists()


def test_a_file_size_limit_of_the_os_is_one_line_and_leaves_no_temporary_file(data_file, tmp_path):
    """A real write error from the OS (RLIMIT_FSIZE: EFBIG, as a full disk gives ENOSPC) at the first checkpoint:
    exit 2, one line, no temporary file; the run then resumes from step 0."""
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))  # the state of these networks is larger

    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    cmd = [sys.executable, "algorithms/td3_bc.py", *cli_args(data_file, tmp_path, run_name="big",
                                                               checkpoint_every="10")[1:]]
    limited = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                             preexec_fn=limit_file_size)
    assert_refused(limited.returncode, limited.stderr,
                   r"^error: cannot write checkpoint step_10 .*\(File too large\); no checkpoint yet: rerun with "
                   r"--config\.resume=True")
    run_dir = tmp_path / "big"
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "checkpoints" / "LATEST").exists()
    resumed = subprocess.run(cmd + ["--config.resume=True"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run_dir / "checkpoints" / "LATEST").read_text().strip() == "step_20"
