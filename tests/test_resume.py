"""Runs that survive: SIGKILL at random points then resume == an uninterrupted run, bit for bit; divergence stop."""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT

STEPS, EVERY = 200, 20
ALGORITHMS = {
    "td3_bc": ["--config.hidden_dims=(32, 32)"],
    "misa": ["--config.hidden_dims=(32, 32)", "--config.n_actions=4", "--config.hmc_burn_in=2",
             "--config.hmc_num_samples=3"],
    "cql": ["--config.hidden_dims=(32, 32)", "--config.cql_n_actions=4"],
}


def command(algorithm, dataset, log_dir, *extra):
    return [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), f"--config.dataset={dataset}",
            f"--config.log_dir={log_dir}", "--config.run_name=run", f"--config.total_steps={STEPS}",
            f"--config.eval_every={EVERY}", f"--config.checkpoint_every={EVERY}", "--config.batch_size=32",
            "--config.eval_episodes=1", "--config.progress=False", *ALGORITHMS[algorithm], *extra]


def environment():
    return {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def run_to_end(cmd):
    result = subprocess.run(cmd, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def kill_after_checkpoint(cmd, run_dir, checkpoint_step, delay):
    """Starts the run, waits for checkpoint `checkpoint_step`, sleeps `delay` s, then SIGKILLs it."""
    process = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "LATEST"
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if latest.exists() and int(latest.read_text().strip().split("_")[1]) >= checkpoint_step:
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


def final_files(run_dir):
    step_dir = run_dir / "checkpoints" / f"step_{STEPS}"
    return {
        "state": (step_dir / "state.msgpack").read_bytes(),
        "eval.csv": (run_dir / "eval.csv").read_text(),
        "metrics.csv": (run_dir / "metrics.csv").read_text(),
    }


_UNINTERRUPTED: dict[str, dict] = {}


def uninterrupted(algorithm, dataset, tmp_path_factory) -> dict:
    """final_files of `command(algorithm, dataset, ...)` run once without interruption; one run per algorithm and
    test session, shared with test_signals (checkpoint_every changes no number, only which checkpoints exist)."""
    if algorithm not in _UNINTERRUPTED:
        log_dir = tmp_path_factory.mktemp(f"uninterrupted_{algorithm}")
        run_to_end(command(algorithm, dataset, log_dir))
        _UNINTERRUPTED[algorithm] = final_files(log_dir / "run")
    return _UNINTERRUPTED[algorithm]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_killed_and_resumed_runs_equal_an_uninterrupted_run_bit_for_bit(algorithm, hopper_random_file, tmp_path,
                                                                        tmp_path_factory):
    if importlib.util.find_spec(f"algorithms.{algorithm}") is None:
        pytest.skip(f"algorithms/{algorithm}.py not present")
    expected = uninterrupted(algorithm, hopper_random_file, tmp_path_factory)
    assert len(expected["eval.csv"].splitlines()) == 1 + STEPS // EVERY
    rng = random.Random(algorithm)
    kill_point = rng.randint(1, 6) * EVERY  # each algorithm its own point (seeded: reproducible)
    log_dir = tmp_path / "killed"
    code = kill_after_checkpoint(command(algorithm, hopper_random_file, log_dir), log_dir / "run", kill_point,
                                 rng.uniform(0.0, 0.1))
    assert code == -signal.SIGKILL, f"the run ended by itself before it could be killed (exit {code})"
    killed_at = int((log_dir / "run" / "checkpoints" / "LATEST").read_text().strip().split("_")[1])
    assert kill_point <= killed_at < STEPS
    run_to_end(command(algorithm, hopper_random_file, log_dir, "--config.resume=True"))
    resumed = final_files(log_dir / "run")
    assert resumed["eval.csv"] == expected["eval.csv"], f"kill after step {killed_at}"
    assert resumed["metrics.csv"] == expected["metrics.csv"], f"kill after step {killed_at}"
    assert resumed["state"] == expected["state"], f"kill after step {killed_at}: parameters differ"


def test_divergence_stops_with_status_3_and_keeps_the_last_checkpoint(hopper_random_file, tmp_path):
    short = [a for a in command("td3_bc", hopper_random_file, tmp_path) if not a.startswith("--config.total_steps=")]
    run_to_end(short + ["--config.total_steps=20"])
    checkpoint = tmp_path / "run" / "checkpoints" / "step_20" / "state.msgpack"
    before = checkpoint.read_bytes()
    diverging = command("td3_bc", hopper_random_file, tmp_path, "--config.resume=True", "--config.critic_lr=1e30",
                        "--config.resume_changes=critic_lr")
    result = subprocess.run(diverging, env=environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "training diverged: non-finite" in message and "seed 0" in message and "at step" in message, message
    assert "last checkpoint: step 20" in message
    assert checkpoint.read_bytes() == before
    assert (tmp_path / "run" / "checkpoints" / "LATEST").read_text().strip() == "step_20"
    run_to_end(command("td3_bc", hopper_random_file, tmp_path, "--config.resume=True"))
    assert (tmp_path / "run" / "checkpoints" / f"step_{STEPS}" / "state.msgpack").exists()
