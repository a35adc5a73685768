"""Preemption: SIGTERM (what SLURM sends) and SIGINT (Ctrl-C) at random points, then resume == an uninterrupted run.

Each run is the real process. A signal during training lets the interval under way finish, checkpoints it, prints
one line and exits 128 + the signal number; `--config.resume=True` then continues, and after a SIGTERM, a SIGINT
on the resumed process and a final resume, the parameters, eval.csv and metrics.csv equal those of a run never
interrupted, bit for bit. A signal before the first training step leaves nothing to lose: the same command runs.
"""

from __future__ import annotations

import importlib.util
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_resume import ALGORITHMS as RESUME_ALGORITHMS
from test_resume import STEPS as RESUME_STEPS
from test_resume import final_files, uninterrupted

STEPS, EVERY, CHECKPOINT_EVERY = 200, 20, 100  # checkpoints of their own only at 100 and 200
assert STEPS == RESUME_STEPS  # final_files reads step_{STEPS}
ALGORITHMS = {name: RESUME_ALGORITHMS[name] for name in ("td3_bc", "misa")}  # test_resume's runs: its numbers


def command(algorithm, dataset, log_dir, *extra, steps=STEPS):
    return [sys.executable, str(ROOT / "algorithms" / f"{algorithm}.py"), f"--config.dataset={dataset}",
            f"--config.log_dir={log_dir}", "--config.run_name=run", f"--config.total_steps={steps}",
            f"--config.eval_every={EVERY}", f"--config.checkpoint_every={CHECKPOINT_EVERY}",
            "--config.batch_size=32", "--config.eval_episodes=1", "--config.progress=False",
            *ALGORITHMS[algorithm], *extra]


def environment():
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}


def eval_rows(run_dir) -> int:
    path = run_dir / "eval.csv"
    return max(len(path.read_text().splitlines()) - 1, 0) if path.exists() else 0


def interrupt(cmd, run_dir, signum, rows, delay):
    """Starts the run, waits until eval.csv holds `rows` rows (0: until the run directory exists, i.e. before the
    first training step), sleeps `delay` s, sends `signum`; returns (exit status, stderr)."""
    process = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "config.json").exists() and eval_rows(run_dir) >= rows:
            break
        time.sleep(0.01)
    time.sleep(delay)
    process.send_signal(signum)
    _, err = process.communicate(timeout=600)
    return process.returncode, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def latest_step(run_dir) -> int:
    return int((run_dir / "checkpoints" / "LATEST").read_text().strip().split("_")[1])


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_sigterm_then_sigint_then_resume_equals_an_uninterrupted_run(algorithm, hopper_random_file, tmp_path,
                                                                     tmp_path_factory):
    if importlib.util.find_spec(f"algorithms.{algorithm}") is None:
        pytest.skip(f"algorithms/{algorithm}.py not present")
    expected = uninterrupted(algorithm, hopper_random_file, tmp_path_factory)  # test_resume's: same numbers

    rng = random.Random(f"signals-{algorithm}")
    log_dir = tmp_path / "interrupted"
    run_dir = log_dir / "run"
    cmd = command(algorithm, hopper_random_file, log_dir)

    # 1. SIGTERM after a random number of evaluated intervals, at a random moment of the next one
    status, err = interrupt(cmd, run_dir, signal.SIGTERM, rng.randint(1, 3), rng.uniform(0.0, 0.05))
    assert status == 143, (status, err)
    line = one_line(err)
    stopped = latest_step(run_dir)
    assert EVERY <= stopped < STEPS, stopped
    assert line == (f"interrupted by SIGTERM: stopped after step {stopped} of {STEPS} and saved a checkpoint there; "
                    "continue with --config.resume=True"), line
    assert eval_rows(run_dir) == stopped // EVERY

    # 2. the resumed run, interrupted by SIGINT further on
    status, err = interrupt(cmd + ["--config.resume=True"], run_dir, signal.SIGINT,
                            stopped // EVERY + rng.randint(1, 3), rng.uniform(0.0, 0.05))
    assert status == 130, (status, err)
    assert one_line(err).startswith("interrupted by SIGINT: stopped after step ")
    assert stopped < latest_step(run_dir) < STEPS

    # 3. resumed to the end: the same bits as the uninterrupted run
    done = subprocess.run(cmd + ["--config.resume=True"], env=environment(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed = final_files(run_dir)
    assert resumed["eval.csv"] == expected["eval.csv"]
    assert resumed["metrics.csv"] == expected["metrics.csv"]
    assert resumed["state"] == expected["state"], "parameters differ"


def test_signal_before_the_first_training_step_leaves_a_run_that_the_same_command_starts(hopper_random_file,
                                                                                         tmp_path):
    cmd = command("td3_bc", hopper_random_file, tmp_path, steps=40)
    run_dir = tmp_path / "run"
    status, err = interrupt(cmd, run_dir, signal.SIGINT, 0, 0.0)
    line = one_line(err)
    assert status == 130, (status, err)
    if "before the first training step" in line:  # the usual case: the signal came while compiling
        assert line == ("interrupted by SIGINT: stopped before the first training step; nothing to lose: rerun the "
                        "same command")
        assert not (run_dir / "checkpoints").exists() and eval_rows(run_dir) == 0
    else:  # a fast machine finished the first interval first: then it was checkpointed
        assert line == ("interrupted by SIGINT: stopped after step 20 of 40 and saved a checkpoint there; continue "
                        "with --config.resume=True"), line
        cmd = cmd + ["--config.resume=True"]
    done = subprocess.run(cmd, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert eval_rows(run_dir) == 2 and latest_step(run_dir) == 40


def test_a_second_signal_stops_at_once_keeping_the_last_checkpoint(hopper_random_file, tmp_path):
    """SIGTERM then SIGINT within one long interval: the second one does not wait for the interval to end, and the
    checkpoint before it stays the latest. (Two signals of the same kind that arrive while the interval's compiled
    call runs reach Python as one, so the test sends two kinds.)"""
    cmd = [a for a in command("td3_bc", hopper_random_file, tmp_path, steps=8000)
           if not a.startswith(("--config.eval_every=", "--config.checkpoint_every="))]
    cmd += ["--config.eval_every=4000", "--config.checkpoint_every=4000"]
    run_dir = tmp_path / "run"
    process = subprocess.Popen(cmd, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None and not (run_dir / "checkpoints" / "LATEST").exists():
        time.sleep(0.01)
    time.sleep(0.2)  # past the stop check that follows the checkpoint: into the second interval's updates
    process.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=600)
    line = one_line(err)
    assert process.returncode in (130, 143), (process.returncode, err)
    assert "(second signal), after step 4000; last checkpoint: step 4000; continue with --config.resume=True" in line
    assert latest_step(run_dir) == 4000 and not list(run_dir.rglob("*.tmp"))
    done = subprocess.run(cmd + ["--config.resume=True"], env=environment(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert latest_step(run_dir) == 8000


def test_a_signal_inside_a_garbage_collector_callback_is_not_lost():
    """Python drops exceptions raised in gc callbacks (JAX installs one): the signal stays pending and the run's
    next check raises it, instead of an 'Exception ignored' traceback and a run that goes on."""
    import gc
    import os

    from common.experiment import Interrupted
    from common.experiment.preemption import Preemption

    def callback(phase, info):
        if phase == "start":
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs here, inside the callback
                pass

    with Preemption() as preemption:
        gc.callbacks.append(callback)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(callback)
        with pytest.raises(Interrupted) as caught:
            preemption.check()
    assert caught.value.signum == signal.SIGINT
    preemption.check()  # raised once


# The signal arrives while XLA compiles the interval (as a Ctrl-C lands there by chance): a thread sends it 50 ms
# into the compilation, and Python runs the handler as the compilation returns.
COMPILING_SIGNAL = """
import os, signal, sys, threading
from jax._src import compiler
real = compiler.backend_compile_and_load
def compile_then_signal(*args, **kwargs):
    if getattr(compile_then_signal, "armed", False):
        compile_then_signal.armed = False  # one signal, in the interval's compilation
        threading.Timer(0.05, os.kill, (os.getpid(), {signum})).start()
    return real(*args, **kwargs)
compiler.backend_compile_and_load = compile_then_signal
from common.experiment import program
real_compile_interval = program.compile_interval
def arm(*args):
    compile_then_signal.armed = True
    return real_compile_interval(*args)
program.compile_interval = arm
import common.experiment.runner as runner
runner.compile_interval = arm
from algorithms import td3_bc
sys.argv[0] = "td3_bc"
sys.exit(td3_bc.main())  # as the command line runs it (argv None)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_compilation_exits_with_its_status_not_a_crash(signum, hopper_random_file, tmp_path):
    """Bug: an Interrupted raised as XLA's compilation returned left objects that crashed the interpreter at exit
    (exit 139, "Segmentation fault", in 6 of 6 tries at 5-8 s). The set-up now stops between its steps."""
    cmd = [sys.executable, "-c", COMPILING_SIGNAL.format(signum=int(signum)),
           *command("td3_bc", hopper_random_file, tmp_path)[2:]]
    env = {**environment(), "JAX_ENABLE_COMPILATION_CACHE": "false"}  # a cached program would not be compiled
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 128 + signum, (done.returncode, done.stderr[-500:])
    assert one_line(done.stderr) == (f"interrupted by {signal.Signals(signum).name}: stopped before the first training "
                                     "step; nothing to lose: rerun the same command")
