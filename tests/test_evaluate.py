"""Using a saved run: load_run rebuilds the policies, scripts/evaluate.py re-evaluates, video renders headless."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before any renderer starts

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import ROOT  # noqa: E402

from algorithms import load_run, td3_bc  # noqa: E402
from common.evaluation import Evaluator  # noqa: E402
from common.runs import RunError, write_video  # noqa: E402
from scripts import evaluate  # noqa: E402

STEPS, EVERY, EPISODES = 200, 100, 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny TD3+BC run on a shipped dataset, trained through the command line (2 seeds, checkpoints at 100, 200)."""
    log_dir = tmp_path_factory.mktemp("runs")
    code = td3_bc.main(["td3_bc", f"--config={ROOT}/configs/td3_bc_mujoco.py", "--config.dataset=hopper-medium-v4",
                        f"--config.total_steps={STEPS}", f"--config.eval_every={EVERY}",
                        f"--config.checkpoint_every={EVERY}", f"--config.eval_episodes={EPISODES}",
                        "--config.num_seeds=2", "--config.hidden_dims=(32, 32)", "--config.batch_size=32",
                        f"--config.log_dir={log_dir}", "--config.run_name=tiny", "--config.progress=False"])
    assert code == 0
    return log_dir / "tiny"


def eval_rows(run_dir, step):
    with open(run_dir / "eval.csv", newline="") as f:
        return {int(r["seed"]): float(r["return"]) for r in csv.DictReader(f) if int(r["step"]) == step}


def tree_digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("step", [EVERY, STEPS])
def test_loaded_policies_replay_the_runs_own_evaluation(run_dir, step):
    """The bug this catches: a loader that rebuilds the wrong parameters (fresh init, wrong member, wrong
    checkpoint, no state normalisation) cannot replay the training's evaluation episodes return for return."""
    run = load_run(run_dir, checkpoint=None if step == STEPS else step)
    assert run.algorithm == "td3_bc" and run.step == step and run.config.dataset == "hopper-medium-v4"
    assert run.members == [{"seed": 0}, {"seed": 1}]
    stats = run.dataset.stats
    evaluator = Evaluator(run.env_id, run.agent.act, 2, EPISODES, stats["obs_dim"], stats["act_dim"], run.config.seed)
    returns = evaluator(run.policy_params, step // EVERY).mean(axis=1)
    evaluator.close()
    expected = eval_rows(run_dir, step)
    np.testing.assert_allclose(returns, [expected[0], expected[1]], rtol=1e-6)


def test_policy_is_a_jitted_function_of_one_member(run_dir):
    run = load_run(run_dir)
    obs = np.asarray(run.dataset.transitions.observations[:16])
    a0, a1 = run.policy(0), run.policy(1)
    batch = np.asarray(a0(obs))
    assert batch.shape == (16, 3) and np.all(np.abs(batch) <= 1.0)
    np.testing.assert_allclose(np.asarray(a0(obs[3])), batch[3], rtol=1e-5, atol=1e-6)
    assert not np.allclose(np.asarray(a1(obs)), batch)  # two seeds, two different policies
    with pytest.raises(RunError, match="member 2 does not exist"):
        run.policy(2)


def test_evaluate_returns_scores_per_member(run_dir):
    run = load_run(run_dir)
    result = run.evaluate(episodes=1, seed=7, members=[1])
    assert result.returns.shape == (1, 1) and result.members == [{"seed": 1}] and result.env == "Hopper-v4"
    expected = 100 * (result.returns - -20.272305) / (3234.3 - -20.272305)  # D4RL's hopper reference returns
    np.testing.assert_allclose(result.scores, expected)


def written_record(capsys) -> dict:
    """The evaluations/<time>.json that evaluate.py's last output line names."""
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("written: "), line
    return json.loads(Path(line.removeprefix("written: ")).read_text())


def test_a_member_evaluated_alone_gets_the_episodes_it_gets_beside_the_others(run_dir, capsys):
    """Bug: `--member 1` seeded member 1's envs as the first member's (episode index counted over the members
    evaluated), so its returns differed from its returns in the full evaluation, both files saying seed 0."""
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2", "--seed", "0"]) == 0
    full = written_record(capsys)
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2", "--seed", "0", "--member", "1"]) == 0
    alone = written_record(capsys)
    assert [m["member_index"] for m in alone["members"]] == [1] and alone["seed"] == full["seed"] == 0
    assert alone["members"][0]["returns"] == full["members"][1]["returns"]
    assert full["members"][0]["returns"] != full["members"][1]["returns"]
    run = load_run(run_dir)  # the Python API: the same episodes, members in any order
    both = run.evaluate(episodes=2, seed=0, members=[1, 0]).returns
    np.testing.assert_array_equal(both, np.asarray([full["members"][1]["returns"], full["members"][0]["returns"]]))


def test_evaluate_script_writes_a_new_file_and_touches_nothing_else(run_dir, capsys):
    before = tree_digest(run_dir)
    assert evaluate.main(["--run", str(run_dir), "--episodes", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "| seed 0 |" in out and "| seed 1 |" in out and "normalised score" in out
    after = tree_digest(run_dir)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and new[0].startswith("evaluations/") and new[0].endswith(".json")
    assert {k: after[k] for k in before} == before
    record = json.loads((run_dir / new[0]).read_text())
    assert record["checkpoint_step"] == STEPS and record["episodes"] == 2 and record["seed"] == 3
    assert [m["seed"] for m in record["members"]] == [0, 1]
    assert all(len(m["returns"]) == 2 and np.isfinite(m["normalized_score_mean"]) for m in record["members"])
    assert f"{np.mean(record['members'][1]['returns']):.1f}" in out


@pytest.mark.parametrize("case, pattern", [
    ("missing", r"^error: run directory .* does not exist$"),
    ("empty", r"^error: .* is not a run directory: no config.json$"),
    ("no checkpoint", r"^error: .* has no complete checkpoint"),
    ("step", r"^error: .* has no checkpoint at step 150 \(checkpoints at steps: 100, 200\)$"),
    ("member", r"^error: member 5 does not exist"),
    ("not a method", r"^error: the checkpoint names algorithm 'sac', which is not a method of this project "
                     r"\(td3_bc, cql, misa\)$"),
])
def test_bad_run_directory_one_line_exit_2(run_dir, tmp_path, capsys, case, pattern):
    target, extra = tmp_path / "nothing_here", []
    if case == "empty":
        target.mkdir()
    elif case == "no checkpoint":
        target.mkdir()
        (target / "config.json").write_text((run_dir / "config.json").read_text())
    elif case == "step":
        target, extra = run_dir, ["--checkpoint", "150"]
    elif case == "member":
        target, extra = run_dir, ["--member", "5"]
    elif case == "not a method":  # a checkpoint written by another program (the dataset generator's SAC, say)
        shutil.copytree(run_dir, target)
        meta_path = target / "checkpoints" / f"step_{STEPS}" / "meta.json"
        meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "algorithm": "sac"}))
    assert evaluate.main(["--run", str(target), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match(pattern, err), err


def offscreen_gl_problem() -> str | None:
    """Why MuJoCo cannot render headless here, or None when it can."""
    import gymnasium as gym

    try:
        env = gym.make("Hopper-v4", render_mode="rgb_array", width=32, height=32)
        env.reset(seed=0)
        env.render()
        env.close()
    except Exception as e:  # noqa: BLE001 - any failure to create a GL context
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def test_video_of_a_shipped_dataset_policy_renders_headless(run_dir, tmp_path):
    problem = offscreen_gl_problem()
    if problem is not None:
        pytest.skip(f"no offscreen OpenGL for MuJoCo (MUJOCO_GL={os.environ.get('MUJOCO_GL')}; apt install libegl1 "
                    f"libegl-mesa0 libgl1-mesa-dri): {problem}")
    import imageio.v2 as imageio

    run = load_run(run_dir)
    frames, fps, returns = run.render(1, episodes=1, seed=0, max_steps=12, size=(64, 48))
    assert len(frames) == 3 and fps == pytest.approx(125 / 4)  # Hopper renders at 125 fps: every 4th frame kept
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert all(f.std() > 1.0 for f in frames)  # a scene, not a blank buffer
    assert not np.array_equal(frames[0], frames[-1])  # the hopper moved
    path = write_video(frames, fps, tmp_path / "clip")
    assert path.exists() and path.stat().st_size > 0
    back = imageio.mimread(path)
    assert len(back) == len(frames) and back[0].shape[:2] == (48, 64)
