"""Several processes (jax.distributed over loopback, CPU collectives) train one sharded grid like one process does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
from conftest import ROOT
from test_sweeps import checkpoint_actor, run_cli, with_defaults


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one_process(hopper_random_file, tmp_path):
    common = [f"--config.dataset={hopper_random_file}", "--config.num_seeds=4", "--config.run_name=grid",
              "--config.eval_episodes=1"]
    single = run_cli(common, 4, tmp_path / "single")
    assert single.returncode == 0, single.stderr

    port = free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "algorithms" / "td3_bc.py"), f"--config.log_dir={tmp_path / 'multi'}",
             *with_defaults(common), "--config.distributed=True",
             f"--config.coordinator_address=127.0.0.1:{port}", "--config.num_processes=2",
             f"--config.process_id={pid}"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for pid in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
    assert "results:" in outputs[0][0] and "results:" not in outputs[1][0]  # only process 0 reports

    for a, b in zip(checkpoint_actor(tmp_path / "single" / "grid"), checkpoint_actor(tmp_path / "multi" / "grid")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    single_summary = json.loads((tmp_path / "single" / "grid" / "summary.json").read_text())
    multi_summary = json.loads((tmp_path / "multi" / "grid" / "summary.json").read_text())
    assert multi_summary["members"] == single_summary["members"]
    np.testing.assert_allclose(multi_summary["return_final"], single_summary["return_final"], rtol=1e-4)
