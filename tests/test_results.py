"""The results pipeline: FLOP counting across loops, bench.py --quick, the report writers, results.py end to end."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.hardware import device_info
from common.logger import RunLogger, write_json_atomic
from scripts import bench, results

# ------------------------------------------------------------------------------------------------
# bench.py
# ------------------------------------------------------------------------------------------------


def test_flop_count_multiplies_nested_scan_bodies_by_their_trip_counts():
    x, w = jnp.ones((64, 64)), jnp.ones((64, 64))

    def f(x, w):
        def outer(c, _):
            return jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), c, None, length=3)[0], None

        return jax.lax.scan(outer, x, None, length=4)[0]

    one_matmul = 2.0 * 64**3
    closed = jax.make_jaxpr(f)(x, w)
    xla = bench.xla_flops(closed)
    # The evidence: XLA's CPU cost analysis counts each loop body once (plus a few loop-counter adds).
    assert xla == pytest.approx(one_matmul, rel=1e-4)
    info = {}
    assert xla + bench.loop_corrections(closed.jaxpr, info) == pytest.approx(12 * one_matmul, rel=1e-4)
    assert [s["length"] for s in info["scans"]] == [4, 3] and info["while_loops_counted_once"] == 0
    assert bench.matmul_flops(closed.jaxpr) == 12 * one_matmul


def test_bench_skips_an_algorithm_that_does_not_import(monkeypatch):
    ghost = bench.Bench("Ghost", "algorithms.no_such_algorithm", "configs.td3_bc_mujoco", {}, 2)
    monkeypatch.setitem(bench.BENCHMARKS, "ghost", ghost)
    out = bench.bench_algorithm("ghost", [1], bench.QUICK, None, quick=True)
    assert out["status"] == "skipped" and "import failed" in out["reason"]


def test_bench_quick_reports_every_key(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--quick", "--algos", "td3_bc", "--seeds", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert {"device", "settings", "matmul", "matmul_large_gflops", "algorithms", "reference"} <= set(report)
    assert report["device"]["device_kind"] and report["device"]["cpu_count"] >= 1
    assert all(r["gflops"] > 0 for r in report["matmul"])
    td3 = report["algorithms"]["td3_bc"]
    assert td3["status"] == "ok", td3.get("reason")
    # XLA counts every op, the jaxpr walk only the matmuls: the first is the larger.
    assert td3["flops"]["flops_per_step"] >= td3["flops"]["matmul_flops_per_step"] > 0
    run = td3["seeds"]["1"]
    for key in ("compile_seconds", "steps_per_second", "ms_per_step", "gflops_achieved", "fraction_of_large_matmul"):
        assert run[key] > 0, key
    assert run["metrics_finite"]
    grid = report["grid_8_members"]
    assert [r["devices"] for r in grid] == [1, 4] and all(r["status"] == "ok" and r["members"] == 8 for r in grid)
    assert all(r["ms_per_step"] > 0 for r in grid)
    printed = capsys.readouterr().out
    assert "device:" in printed and "TD3+BC" in printed


def test_bench_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--algos", "nope"])
    assert e.value.code == 2 and "unknown algorithm" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# results.py: report from fake runs
# ------------------------------------------------------------------------------------------------


def fake_run(out, algo, dataset, finals, steps=(10, 20), hardware=("Box (cpu, 2 CPUs)",), domain="locomotion"):
    """A run directory as results.py leaves it: eval.csv (via RunLogger), summary.json and sweep.json."""
    run_dir = out / "runs" / results.run_name(algo, dataset)
    run_dir.mkdir(parents=True)
    members = [{"seed": i} for i in range(len(finals))]
    logger = RunLogger(run_dir, members, ["loss"])
    for t, step in enumerate(steps):
        scores = np.asarray(finals, float)[:, None] * (t + 1) / len(steps) * np.ones((1, 2))
        logger.log_eval(step, scores * 10, scores)
    logger.close()
    write_json_atomic(run_dir / "summary.json", {
        "algorithm": algo, "dataset": dataset, "num_seeds": len(finals), "total_steps": steps[-1],
        "normalized_score_final": list(finals), "normalized_score_best": list(finals),
        "steps_per_second": 100.0, "compile_seconds": 1.0, "env": "Hopper-v4",
        "evaluation": {"domain": domain, "score": "100 * (return - min) / (max - min)"}})
    sweep = {"status": "done", "wall_seconds": 36.0}
    if hardware is not None:
        sweep["hardware"] = list(hardware)
    write_json_atomic(run_dir / "sweep.json", sweep)


BUDGET = {"num_seeds": 3, "total_steps": 20, "eval_every": 10, "eval_episodes": 2}


def test_report_tables_plot_and_json_from_run_directories(tmp_path):
    datasets = ["ds-a", "ds-b", "ds-c"]
    for i, d in enumerate(datasets):
        fake_run(tmp_path, "td3_bc", d, [10.0 + i, 20.0 + i, 30.0 + i])
        if d != "ds-c":  # MISA on ds-c is missing
            fake_run(tmp_path, "misa", d, [50.0, 50.0, 80.0])
    payload = results.write_report(tmp_path, ["td3_bc", "misa"], datasets, BUDGET, n_resamples=200)

    md = (tmp_path / "results.md").read_text()
    assert "| dataset | TD3+BC | MISA |" in md
    assert "| ds-a | 20.0 ± 8.2 | 60.0 ± 14.1 |" in md
    assert "| ds-c | 22.0 ± 8.2 | – |" in md
    assert "- MISA on ds-c: not run yet" in md
    assert (tmp_path / "curves.png").stat().st_size > 0

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["budget"] == BUDGET and len(saved["runs"]) == 5
    # IQM over the 9 TD3+BC finals (10..32): drop 2 at each end.
    finals = np.sort([10.0 + i + 10 * s for i in range(3) for s in range(3)])
    assert saved["aggregate_final"]["locomotion"]["TD3+BC"]["iqm"]["value"] == pytest.approx(finals[2:-2].mean())
    assert saved["aggregate_final"]["locomotion"]["MISA"]["runs"] == 6
    curve = payload["curves"]["ds-a"]["MISA"]
    assert curve["step"] == [10, 20] and curve["mean"] == pytest.approx([30.0, 60.0])
    assert curve["std"] == pytest.approx([np.std([25, 25, 40]), np.std([50, 50, 80])])


def test_the_report_keeps_domains_apart(tmp_path):
    """Bug: one IQM, mean and sum pooled AntMaze success rates with locomotion returns, the header claimed one
    number of episodes per evaluation for runs of 2 and of 100, and a "sum over datasets" added up only the
    datasets an algorithm happened to have."""
    fake_run(tmp_path, "td3_bc", "ds-a", [10.0, 20.0])
    fake_run(tmp_path, "td3_bc", "ds-b", [30.0, 40.0])
    fake_run(tmp_path, "misa", "ds-a", [50.0, 70.0])  # MISA has no score on ds-b
    fake_run(tmp_path, "td3_bc", "maze", [0.0, 100.0], domain="antmaze")
    budget = {**BUDGET, "eval_episodes": {"locomotion": 2, "antmaze": 100}}
    payload = results.write_report(tmp_path, ["td3_bc", "misa"], ["ds-a", "maze", "ds-b"], budget, n_resamples=100)

    assert payload["domains"] == {"ds-a": "locomotion", "ds-b": "locomotion", "maze": "antmaze"}
    assert list(payload["aggregate_final"]) == ["locomotion", "antmaze"]
    locomotion, maze = payload["aggregate_final"]["locomotion"], payload["aggregate_final"]["antmaze"]
    assert locomotion["TD3+BC"]["runs"] == 4 and locomotion["TD3+BC"]["mean"]["value"] == pytest.approx(25.0)
    assert locomotion["TD3+BC"]["total"] == pytest.approx(50.0)
    assert locomotion["MISA"]["mean"]["value"] == pytest.approx(60.0) and np.isnan(locomotion["MISA"]["total"])
    assert maze["TD3+BC"]["runs"] == 2 and maze["TD3+BC"]["mean"]["value"] == pytest.approx(50.0)
    md = (tmp_path / "results.md").read_text()
    assert "evaluation every 10 steps with 2 (locomotion), 100 (antmaze) episodes" in md
    assert "**locomotion** (2 datasets; score: 100 * (return - min) / (max - min))" in md
    assert "| MISA | 60.0 [50.0, 70.0] | 60.0 [50.0, 70.0] | – | 1 | 2 |" in md
    assert "| TD3+BC (antmaze) | 1 | 20 | 100.0 | 0.01 |" in md  # the cost table too, per domain
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["aggregate_final"]["locomotion"]["MISA"]["total"] is None


def test_the_report_names_the_machine_each_run_trained_on(tmp_path):
    fake_run(tmp_path, "td3_bc", "ds-a", [10.0, 20.0])
    fake_run(tmp_path, "misa", "ds-a", [40.0, 60.0])
    results.write_report(tmp_path, ["td3_bc", "misa"], ["ds-a"], BUDGET, n_resamples=100)
    md = (tmp_path / "results.md").read_text()
    assert "Hardware: Box (cpu, 2 CPUs)." in md and "| hardware |" not in md

    # The runs trained on different machines (one resumed on a second; one from before sweep.json said):
    # the header names none of them, the cost table names each algorithm's.
    for algo, hardware in (("td3_bc", ["Box (cpu, 2 CPUs)", "Other (gpu, 16 CPUs)"]), ("misa", None)):
        path = tmp_path / "runs" / results.run_name(algo, "ds-a") / "sweep.json"
        record = json.loads(path.read_text())
        record.pop("hardware")
        write_json_atomic(path, record if hardware is None else {**record, "hardware": hardware})
    payload = results.write_report(tmp_path, ["td3_bc", "misa"], ["ds-a"], BUDGET, n_resamples=100)
    md = (tmp_path / "results.md").read_text()
    assert "Hardware: per algorithm in the cost table" in md and "Box (cpu, 2 CPUs)." not in md
    assert "| TD3+BC | 1 | 20 | 100.0 | 0.01 | Box (cpu, 2 CPUs); Other (gpu, 16 CPUs) |" in md
    assert "| MISA | 1 | 20 | 100.0 | 0.01 | unknown |" in md
    assert payload["hardware"] == ["Box (cpu, 2 CPUs)", "Other (gpu, 16 CPUs)", "unknown"]


def test_an_unfinished_run_is_drawn_and_noted_but_never_scored(tmp_path):
    fake_run(tmp_path, "td3_bc", "ds-a", [10.0, 20.0, 30.0])
    fake_run(tmp_path, "misa", "ds-a", [40.0, 60.0, 80.0], steps=(10,))  # one interval of two, then stopped
    run_dir = tmp_path / "runs" / results.run_name("misa", "ds-a")
    for name in ("summary.json", "sweep.json"):
        (run_dir / name).unlink()
    payload = results.write_report(tmp_path, ["td3_bc", "misa"], ["ds-a"], BUDGET, n_resamples=100)

    md = (tmp_path / "results.md").read_text()
    assert "| ds-a | 20.0 ± 8.2 | – |" in md  # MISA's 60 at step 10 of 20 is not a final score
    assert "- MISA on ds-a: unfinished, evaluated up to step 10 of 20 (score there 60.0 ± 16.3" in md
    assert "not run yet" not in md
    assert payload["curves"]["ds-a"]["MISA (unfinished)"]["mean"] == pytest.approx([60.0])
    assert payload["aggregate_final"]["locomotion"]["MISA"]["runs"] == 0


def test_update_doc_fills_the_marked_block(tmp_path):
    fake_run(tmp_path / "out", "td3_bc", "ds-a", [1.0, 2.0])
    results.write_report(tmp_path / "out", ["td3_bc"], ["ds-a"], BUDGET, n_resamples=100)
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Results\nbefore\n{results.MARKER_BEGIN}\nold table\n{results.MARKER_END}\nafter\n")
    results.update_doc(doc, tmp_path / "out")
    text = doc.read_text()
    assert "old table" not in text and "| ds-a | 1.5 ± 0.5 |" in text
    assert text.startswith("# Results\nbefore\n") and text.endswith(f"{results.MARKER_END}\nafter\n")
    assert "](out/curves.png)" in text


# ------------------------------------------------------------------------------------------------
# results.py end to end
# ------------------------------------------------------------------------------------------------


def tiny_sweep(data, out, seeds: int, steps: int) -> list[str]:
    """results.py arguments of a BC sweep on `data` small enough for a test (32-unit networks, 10-step intervals)."""
    return ["--algos", "bc", "--datasets", str(data), "--seeds", str(seeds), "--steps", str(steps),
            "--eval-every", "10", "--eval-episodes", "1", "--out", str(out), "--resamples", "100",
            "--set", "hidden_dims=(32, 32)", "--set", "batch_size=32"]


def rewind(run_dir, to_step: int, last_step: int) -> None:
    """Leaves a finished run as one stopped at `to_step` leaves it: no summary, its latest checkpoint there."""
    for name in ("summary.json", "sweep.json"):
        (run_dir / name).unlink()
    shutil.rmtree(run_dir / "checkpoints" / f"step_{last_step}")
    (run_dir / "checkpoints" / "LATEST").write_text(f"step_{to_step}")


def history_events(run_dir) -> list[str]:
    return [json.loads(line)["event"] for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_results_trains_then_resumes_without_retraining(tmp_path, hopper_random_file, capsys):
    argv = tiny_sweep(hopper_random_file, tmp_path, seeds=2, steps=20)
    assert results.main(argv) == 0
    run_dir = tmp_path / "runs" / "bc__hopper-random-tiny"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_seeds"] == 2 and summary["total_steps"] == 20
    config = json.loads((run_dir / "config.json").read_text())
    assert config["bc_only"] is True and config["hidden_dims"] == [32, 32] and config["batch_size"] == 32
    assert "| hopper-random-tiny | " in (tmp_path / "results.md").read_text()
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    capsys.readouterr()

    assert results.main(argv) == 0
    assert "skip bc on" in capsys.readouterr().out
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp


def test_an_unfinished_run_continues_from_its_checkpoint(tmp_path, hopper_random_file, capsys):
    argv = tiny_sweep(hopper_random_file, tmp_path, seeds=2, steps=30)
    assert results.main(argv) == 0
    run_dir = tmp_path / "runs" / "bc__hopper-random-tiny"
    finished = {name: (run_dir / name).read_text() for name in ("eval.csv", "metrics.csv")}
    rewind(run_dir, to_step=20, last_step=30)  # a sweep stopped after its second interval
    # What a signal-stopped attempt on another machine leaves:
    (run_dir / "earlier_wall.json").write_text('{"seconds": 1000.0, "hardware": ["Elsewhere (gpu, 8 CPUs)"]}')
    capsys.readouterr()

    assert results.main(argv) == 0
    assert "resumed at step 20" in capsys.readouterr().out
    assert {name: (run_dir / name).read_text() for name in finished} == finished
    sweep = json.loads((run_dir / "sweep.json").read_text())
    assert sweep["wall_seconds"] > 1000.0  # both attempts counted, and both machines
    here = results.hardware_label(device_info(None))
    assert sweep["hardware"] == ["Elsewhere (gpu, 8 CPUs)", here]
    assert "Hardware: per algorithm in the cost table" in (tmp_path / "results.md").read_text()
    assert history_events(run_dir).count("resume") == 1


def test_a_retried_diverged_run_starts_again_from_step_0(tmp_path, hopper_random_file, capsys):
    argv = tiny_sweep(hopper_random_file, tmp_path, seeds=1, steps=20)
    assert results.main(argv) == 0
    run_dir = tmp_path / "runs" / "bc__hopper-random-tiny"
    rewind(run_dir, to_step=10, last_step=20)  # a run that diverged after its first checkpoint
    (run_dir / "failed.json").write_text('{"status": "diverged", "error": "non-finite parameters"}')
    capsys.readouterr()

    assert results.main(argv + ["--retry-failed"]) == 0
    assert "resumed at" not in capsys.readouterr().out
    assert history_events(run_dir) == ["start"] and (run_dir / "summary.json").exists()


def test_a_signal_stops_the_sweep_in_one_line_that_says_how_to_continue(tmp_path, hopper_random_file, capsys,
                                                                       monkeypatch):
    from common import experiment

    def stopped(*args, **kwargs):
        raise experiment.Interrupted(15, "stopped after step 10 of 20 and saved a checkpoint there; continue with "
                                         "--config.resume=True")

    monkeypatch.setattr(experiment, "run", stopped)
    argv = ["--algos", "bc", "--datasets", str(hopper_random_file), "--steps", "20", "--eval-every", "10",
            "--out", str(tmp_path)]
    assert results.main(argv) == 128 + 15
    err = capsys.readouterr().err
    assert err == (f"interrupted by SIGTERM: bc on {hopper_random_file} stopped after step 10 of 20 and saved a "
                   "checkpoint there; the same command continues it\n")


@pytest.mark.parametrize("argv, message", [
    (["--algos", "sac"], "unknown algorithm"),
    (["--datasets", "x", "--steps", "15", "--eval-every", "10"], "multiple of --eval-every"),
    (["--datasets", "x", "--set", "no_such_field=1"], "no selected algorithm's config has this field"),
    (["--datasets", "no-such-dataset-v0"], "unknown dataset"),
])
def test_results_rejects_bad_input_in_one_line(tmp_path, capsys, argv, message):
    assert results.main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------------------
# results.py: every argument checked before training; a budget is the runs' own
# ------------------------------------------------------------------------------------------------


def call(argv, capsys) -> tuple[int, str, str]:
    """results.main(argv): (exit status, stdout, stderr); an argument error's SystemExit counts as its status."""
    capsys.readouterr()
    try:
        status = results.main(argv)
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("case, pattern", [
    ("--resamples 0", r"^error: --resamples must be >= 1, got 0$"),
    ("--doc without markers", r"^error: --doc .*NOTES\.md has no '<!-- results:begin -->' \.\.\. "
                              r"'<!-- results:end -->' block to fill$"),
    ("--out a file", r"^error: --out .*taken is a file, not a directory$"),
    ("--seeds two", r"^error: argument --seeds: invalid int value: 'two' \(see --help\)$"),
    ("--seed -1", r"^error: bc on .*: seed must be an integer in \[0, "),
    ("a bad value for the second algorithm", r"^error: td3_bc on .*hopper-random-tiny\.hdf5: batch_size must be a "
                                             r"positive integer, got 0$"),
    ("two files of one stem", r"^error: --datasets names .*hopper-random-tiny\.hdf5' and .*elsewhere/"
                              r"hopper-random-tiny\.hdf5', which share the run directories of 'hopper-random-tiny'"),
    ("an algorithm twice", r"^error: --algos names 'bc' and 'bc', which share the run directories of 'bc'"),
])
def test_results_refuses_bad_arguments_before_training(tmp_path, hopper_random_file, capsys, monkeypatch, case,
                                                       pattern):
    """Bug: --resamples 0 and a --doc without markers failed with a traceback after all the training; --out a file
    with a traceback; --seeds two printed 7 lines of usage; a bad --set value for td3_bc after BC had trained; two
    dataset files of one stem share one run directory (the second failed after the first trained, and a rerun
    reported the first's run for both); a name given twice failed after training it once."""
    from test_bad_inputs import assert_refused, snapshot

    monkeypatch.setattr(results, "train_one", lambda *a, **k: pytest.fail("trained before refusing"))
    (tmp_path / "NOTES.md").write_text("# notes without the results block\n")
    (tmp_path / "taken").write_text("a file\n")
    twin = shutil.copy(hopper_random_file, (tmp_path / "elsewhere").mkdir() or tmp_path / "elsewhere")
    argv = ["--algos", "bc,td3_bc", "--datasets", str(hopper_random_file), "--steps", "20", "--eval-every", "10",
            "--out", str(tmp_path / "out")]
    argv += {"--resamples 0": ["--resamples", "0"], "--doc without markers": ["--doc", str(tmp_path / "NOTES.md")],
             "--out a file": ["--out", str(tmp_path / "taken")], "--seeds two": ["--seeds", "two"],
             "--seed -1": ["--seed", "-1"], "a bad value for the second algorithm": ["--set", "td3_bc.batch_size=0"],
             "two files of one stem": ["--datasets", f"{hopper_random_file},{twin}"], "an algorithm twice":
             ["--algos", "bc,td3_bc,bc"]}[case]
    before = snapshot(tmp_path)
    status, out, err = call(argv, capsys)
    assert_refused(status, err, pattern)
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, hopper_random_file) -> object:
    """A finished tiny BC sweep: 1 seed, 20 steps (the fixture's own directory: copy it before changing it)."""
    out = tmp_path_factory.mktemp("sweep")
    assert results.main(tiny_sweep(hopper_random_file, out, seeds=1, steps=20)) == 0
    return out


def report_only(data, out) -> list[str]:
    return ["--report-only", "--algos", "bc", "--datasets", str(data), "--out", str(out), "--resamples", "100"]


def test_report_only_states_the_budget_of_the_runs(finished_sweep, hopper_random_file, tmp_path, capsys):
    """Bug: --report-only headlined its own defaults, 'Budget: 100,000 gradient steps ... 5 seeds', over runs of
    20 steps and 1 seed, replacing a correct results.md."""
    from test_bad_inputs import assert_refused, snapshot

    out = shutil.copytree(finished_sweep, tmp_path / "out")
    (out / "results.md").unlink()
    status, printed, err = call(report_only(hopper_random_file, out), capsys)
    assert status == 0, err
    md = (out / "results.md").read_text()
    assert md.startswith("Budget: 20 gradient steps, evaluation every 10 steps with 1 episodes, 1 seeds per "), md
    assert "Config overrides: batch_size=32, hidden_dims=[32, 32]." in md
    budget = json.loads((out / "results.json").read_text())["budget"]
    assert (budget["total_steps"], budget["num_seeds"], budget["eval_every"], budget["eval_episodes"]) == (20, 1, 10, 1)

    before = snapshot(out)  # a budget asked explicitly must be the runs'
    status, printed, err = call(report_only(hopper_random_file, out) + ["--seeds", "5"], capsys)
    assert_refused(status, err, r"^error: .*runs/bc__hopper-random-tiny was trained with num_seeds=1, this command "
                                r"asks num_seeds=5: leave --seeds out to report the runs' own settings$")
    assert snapshot(out) == before


def test_a_rerun_with_another_budget_is_refused_before_training(finished_sweep, hopper_random_file, tmp_path, capsys):
    """Bug: a rerun with other --steps or --seeds skipped the finished runs and reported them under the new
    budget."""
    from test_bad_inputs import assert_refused, snapshot

    out = shutil.copytree(finished_sweep, tmp_path / "out")
    before = snapshot(out)
    for argv, pattern in [
        (tiny_sweep(hopper_random_file, out, seeds=2, steps=20),
         r"num_seeds=1, this command asks num_seeds=2: pass another --out, or the same budget \(--seeds 1\)$"),
        (tiny_sweep(hopper_random_file, out, seeds=1, steps=40), r"total_steps=20, this command asks total_steps=40"),
        (tiny_sweep(hopper_random_file, out, seeds=1, steps=20) + ["--set", "hidden_dims=(16, 16)"],
         r"hidden_dims=\[32, 32\], this command asks hidden_dims=\[16, 16\]: pass another --out, or the run's "
         r"settings"),
    ]:
        status, printed, err = call(argv, capsys)
        assert_refused(status, err, r"^error: .*runs/bc__hopper-random-tiny was trained with " + pattern)
        assert "train bc" not in printed
        assert snapshot(out) == before
    status, printed, err = call(tiny_sweep(hopper_random_file, out, seeds=1, steps=20), capsys)  # the same: reused
    assert status == 0 and "skip bc on" in printed, err


def test_report_only_refuses_runs_of_different_budgets(finished_sweep, hopper_random_file, tmp_path, capsys):
    from test_bad_inputs import assert_refused, snapshot

    out = shutil.copytree(finished_sweep, tmp_path / "out")
    other = shutil.copy(hopper_random_file, tmp_path / "hopper-other.hdf5")
    assert results.main(tiny_sweep(other, out, seeds=2, steps=20)) == 0
    before = snapshot(out)
    argv = ["--report-only", "--algos", "bc", "--datasets", f"{hopper_random_file},{other}", "--out", str(out)]
    status, printed, err = call(argv, capsys)
    assert_refused(status, err, r"^error: the runs disagree on their budget: .*bc__hopper-random-tiny has "
                                r"num_seeds=1, .*bc__hopper-other has num_seeds=2: report them apart")
    assert snapshot(out) == before


def test_an_interrupted_report_leaves_the_previous_one(finished_sweep, hopper_random_file, tmp_path, capsys,
                                                      monkeypatch):
    """Bug: Ctrl-C while the report was written printed a traceback, with curves.png already replaced and
    results.md not yet (the files written one after the other, in place)."""
    from test_bad_inputs import snapshot

    out = shutil.copytree(finished_sweep, tmp_path / "out")
    doc = tmp_path / "RESULTS.md"
    doc.write_text(f"# Results\n{results.MARKER_BEGIN}\nthe earlier table\n{results.MARKER_END}\n")
    before = snapshot(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.stats, "aggregate_table", interrupted)
    status, printed, err = call(report_only(hopper_random_file, out) + ["--doc", str(doc)], capsys)
    assert status == 130 and err.startswith("interrupted by SIGINT: ") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before
