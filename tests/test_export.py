"""Exported policies (scripts/export.py, `Run.export`, common/export.py): the files give the run's own actions in a
Python process that cannot import this project, refuse observations of another size, carry their metadata; bad
arguments are refused in one line with exit status 2 and nothing written.

One tiny run per method (TD3+BC with 2 seeds, CQL, MISA, and CQL with LayerNorm and an elu policy) on the session's
random Hopper-v4 file, shared by every test of this file; each exported in both formats once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from test_bad_inputs import cli_args
from test_bad_inputs_tools import refused

from algorithms import cql, load_run, misa, td3_bc
from common import export as policy_export
from common.runs import RunError
from scripts import export

FORMATS = (".jaxexport", ".onnx")
TOLERANCE = 1e-5
# name: (method's main, config file, overrides, member exported)
RUNS = {
    "td3_bc": (td3_bc.main, "td3_bc_mujoco.py", {"num_seeds": "2"}, 1),
    "cql": (cql.main, "cql_mujoco.py", {"cql_n_actions": "2"}, 0),
    "misa": (misa.main, "misa_mujoco.py", {"n_actions": "2", "hmc_burn_in": "1", "hmc_num_samples": "2"}, 0),
    "cql_layer_norm": (cql.main, "cql_mujoco.py", {"layer_norm": "True", "policy_activation": "elu",
                                                   "cql_n_actions": "2"}, 0),
}
needs_onnx = pytest.mark.skipif(not policy_export.onnx_available(),
                                reason="onnx/onnxruntime not installed: make install-export")


@pytest.fixture(scope="module")
def runs(hopper_random_file, tmp_path_factory) -> dict[str, Path]:
    """name -> run directory (checkpoints at steps 10 and 20)."""
    log_dir = tmp_path_factory.mktemp("export_runs")
    for name, (main, config_file, overrides, _) in RUNS.items():
        argv = cli_args(hopper_random_file, log_dir, run_name=name, config_file=config_file, checkpoint_every="10",
                        **overrides)
        assert main(argv) == 0, name
    return {name: log_dir / name for name in RUNS}


def observations(run) -> dict[str, np.ndarray]:
    """Real (dataset) observations and random ones far from the data (standard normal x 3)."""
    real = np.asarray(run.dataset.transitions.observations[:200], np.float32)
    random = 3.0 * np.random.default_rng(7).standard_normal((100, real.shape[1])).astype(np.float32)
    return {"real": real, "random": random}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory) -> list[dict]:
    """Every run exported to both formats (the ONNX ones where the packages are installed), with the run's own
    actions on real and random observations."""
    out = tmp_path_factory.mktemp("exported")
    items = []
    for name, run_dir in runs.items():
        run = load_run(run_dir)
        member = RUNS[name][3]
        policy = run.policy(member)
        for kind, obs in observations(run).items():
            np.save(out / f"{name}_{kind}.npy", obs)
        for suffix in FORMATS:
            if suffix == ".onnx" and not policy_export.onnx_available():
                continue
            path = out / f"{name}{suffix}"
            metadata = run.export(path, member=member)
            items.append({"name": name, "path": str(path), "metadata": metadata, "obs_dim": 11,
                          "obs": {kind: str(out / f"{name}_{kind}.npy") for kind in ("real", "random")},
                          "expected": {kind: np.asarray(policy(obs)).tolist()
                                       for kind, obs in observations(run).items()},
                          "other_member": (np.asarray(run.policy(0)(observations(run)["real"])).tolist()
                                           if member else None)})
    return items


PROJECT_PACKAGES = ("common", "algorithms", "configs", "datagen", "scripts", "tests")
# Runs in a fresh interpreter, from an empty folder, with this project's packages made unimportable.
FRESH = textwrap.dedent("""
    import sys
    for name in PROJECT_PACKAGES:
        sys.modules[name] = None  # the editable install maps these names to the project: refused here
    import json
    import numpy as np
    try:
        import common  # noqa: F401
        raise SystemExit("this project is importable")
    except ImportError:
        pass
    items, results = json.load(open(sys.argv[1])), []
    for item in items:
        path = item["path"]
        if path.endswith(".jaxexport"):
            import jax
            exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
            call = lambda x: np.asarray(exported.call(x))  # noqa: E731
            metadata = json.load(open(path + ".json"))
        else:
            import onnxruntime
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            call = lambda x: session.run(None, {"observations": x})[0]  # noqa: E731
            metadata = dict(session.get_modelmeta().custom_metadata_map)
        actions = {kind: call(np.load(obs)).tolist() for kind, obs in item["obs"].items()}
        refused = {}
        for shape in [(2, item["obs_dim"] + 1), (2, item["obs_dim"] - 1), (item["obs_dim"],), (2, 3, item["obs_dim"])]:
            try:
                call(np.zeros(shape, np.float32))
                refused[str(shape)] = False
            except Exception:
                refused[str(shape)] = True
        results.append({"actions": actions, "refused": refused, "metadata": metadata})
    project = [m for m, module in sys.modules.items()
               if module is not None and any(str(getattr(module, "__file__", "") or "").startswith(root)
                                             for root in sys.argv[3:])]
    json.dump({"results": results, "project_modules": project}, open(sys.argv[2], "w"))
""").replace("PROJECT_PACKAGES", repr(PROJECT_PACKAGES))


@pytest.fixture(scope="module")
def loaded_elsewhere(exported, tmp_path_factory) -> list[dict]:
    """What the exported files give in a fresh Python process that cannot import this project."""
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "load.py").write_text(FRESH)
    (folder / "items.json").write_text(json.dumps([{k: item[k] for k in ("path", "obs", "obs_dim")}
                                                   for item in exported]))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The project's own packages (not its root: a .venv inside the checkout holds jax itself).
    roots = sorted({f"{base}/{package}/" for base in (ROOT, Path(policy_export.__file__).resolve().parent.parent)
                    for package in PROJECT_PACKAGES})
    done = subprocess.run([sys.executable, "load.py", "items.json", "out.json", *roots], cwd=folder, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((folder / "out.json").read_text())
    assert found["project_modules"] == []
    return found["results"]


def test_exported_files_give_the_runs_actions_without_this_project(exported, loaded_elsewhere):
    """Bugs: a policy exported without TD3+BC's state normalisation, without tanh or the mean clip, with the wrong
    member's parameters, LayerNorm or elu left out or mistranslated, or a file that still needs this project."""
    assert {item["name"] for item in exported} == set(RUNS)
    for item, result in zip(exported, loaded_elsewhere):
        for kind, expected in item["expected"].items():
            got, expected = np.asarray(result["actions"][kind]), np.asarray(expected)
            assert got.shape == expected.shape == (len(expected), 3)
            difference = float(np.max(np.abs(got - expected)))
            size = Path(item["path"]).stat().st_size
            print(f"{item['name']:16s} {Path(item['path']).suffix:10s} {kind:6s} {size:7d} bytes, "
                  f"largest action difference {difference:.2e}")
            assert difference <= TOLERANCE, (item["path"], kind, difference)
            assert np.all(np.abs(got) <= 1.0)
        if item["other_member"] is not None:  # the member asked for, not member 0
            assert np.max(np.abs(np.asarray(item["other_member"]) - np.asarray(item["expected"]["real"]))) > 1e-3


def test_exported_files_refuse_observations_of_another_size(exported, loaded_elsewhere):
    """Bug: an 11-wide policy given 12 numbers (or 10) broadcast or truncated them and returned actions."""
    for item, result in zip(exported, loaded_elsewhere):
        assert all(result["refused"].values()), (item["path"], result["refused"])


def test_exported_metadata_names_the_run(runs, exported, loaded_elsewhere):
    """Bug: metadata that names another checkpoint, member or dataset than the one exported, or none at all."""
    for item, result in zip(exported, loaded_elsewhere):
        run_dir = runs[item["name"]]
        meta = json.loads((run_dir / "checkpoints" / "step_20" / "meta.json").read_text())
        found = result["metadata"]
        if item["path"].endswith(".onnx"):  # metadata_props hold strings: JSON for the rest
            found = {k: v if k in ("algorithm", "env_id", "dataset", "dataset_sha256", "run_dir", "format",
                                   "input", "output", "exported_with", "checked_on", "observation_adapter")
                     else json.loads(v) for k, v in found.items()}
        member = RUNS[item["name"]][3]
        assert found["algorithm"] == meta["algorithm"] == item["name"].removesuffix("_layer_norm")
        assert (found["env_id"], found["obs_dim"], found["act_dim"]) == ("Hopper-v4", 11, 3)
        assert found["dataset_sha256"] == meta["identity"]["dataset_sha256"]
        assert (found["checkpoint_step"], found["member"], found["member_values"]) == (20, member, {"seed": member})
        assert found["format"] == item["path"].rsplit(".", 1)[1]
        assert found == item["metadata"]


def test_the_layer_norm_run_has_layer_norm(runs):
    """The LayerNorm case is one only if its policy has LayerNorm parameters (a config typo would hide it)."""
    run = load_run(runs["cql_layer_norm"])
    layers = run.member_params(0)["params"]["MLP_0"]
    assert run.config.layer_norm and run.config.policy_activation == "elu" and "LayerNorm_0" in layers


@pytest.mark.parametrize("suffix", FORMATS)
def test_an_earlier_checkpoint_is_exported_as_itself(runs, tmp_path, suffix, capsys):
    """Bug: --checkpoint ignored, the latest checkpoint's policy written under the earlier step's name."""
    if suffix == ".onnx" and not policy_export.onnx_available():
        pytest.skip("onnx/onnxruntime not installed: make install-export")
    out = tmp_path / f"policy{suffix}"
    assert export.main(["--run", str(runs["cql"]), "--checkpoint", "10", "--out", str(out)]) == 0
    assert "checkpoint step 10" in capsys.readouterr().out
    early, late = load_run(runs["cql"], checkpoint=10).policy(0), load_run(runs["cql"]).policy(0)
    obs = 3.0 * np.random.default_rng(1).standard_normal((50, 11)).astype(np.float32)
    if suffix == ".jaxexport":
        import jax

        got = np.asarray(jax.export.deserialize(bytearray(out.read_bytes())).call(obs))
        step = json.loads(policy_export.sidecar(out).read_text())["checkpoint_step"]
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {"observations": obs})[0]
        step = int(session.get_modelmeta().custom_metadata_map["checkpoint_step"])
    assert step == 10
    assert np.max(np.abs(got - np.asarray(early(obs)))) <= TOLERANCE
    assert np.max(np.abs(got - np.asarray(late(obs)))) > 1e-4


# ------------------------------------------------------------------------------------------------
# Bad arguments: one line, exit 2, nothing written
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, pattern", [
    (["--run", "{tmp}/nowhere", "--out", "{tmp}/p.jaxexport"], r"^error: run directory .*nowhere does not exist$"),
    (["--run", "{run}", "--member", "2", "--out", "{tmp}/p.jaxexport"], r"^error: member 2 does not exist"),
    (["--run", "{run}", "--member", "-1", "--out", "{tmp}/p.jaxexport"], r"--member must be >= 0, got -1"),
    (["--run", "{run}", "--checkpoint", "15", "--out", "{tmp}/p.jaxexport"],
     r"^error: .* has no checkpoint at step 15 \(checkpoints at steps: 10, 20\)$"),
    (["--run", "{run}", "--out", "{tmp}/p.pt"], r"^error: output .*p\.pt has suffix '\.pt': use \.jaxexport"),
    (["--run", "{run}", "--out", "{tmp}/p"], r"^error: output .*p has suffix '': use \.jaxexport"),
    (["--run", "{run}", "--out", "{tmp}/missing/p.onnx"], r"^error: output .* cannot be written: folder .*missing"),
    (["--run", "{run}", "--out", "{tmp}/a_file/p.onnx"], r"^error: output .* cannot be written: folder .*a_file"),
    (["--run", "{run}", "--out", "{tmp}/existing.onnx"], r"^error: .*existing\.onnx exists: choose another name"),
    (["--run", "{run}", "--out", "{tmp}/existing.jaxexport"], r"^error: .*existing\.jaxexport exists"),
    (["--run", "{run}", "--out", "{tmp}/only_sidecar.jaxexport"],
     r"^error: .*only_sidecar\.jaxexport\.json exists: choose another name"),
    (["--run", "{run}", "--out", "{tmp}/folder.onnx", "--overwrite"], r"^error: output .*folder\.onnx is a directory"),
    (["--out", "{tmp}/p.onnx"], r"^error: the following arguments are required: --run"),
    (["--run", "{run}"], r"^error: the following arguments are required: --out"),
])
def test_export_refuses_bad_arguments(runs, tmp_path, capsys, args, pattern):
    """Bugs: a traceback (argparse usage, a loader's error) instead of one line; a file written before the refusal;
    an existing file (the model, or the sidecar of a .jaxexport) replaced without --overwrite."""
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "existing.onnx").write_text("keep me")
    (tmp_path / "existing.jaxexport").write_text("keep me")
    (tmp_path / "only_sidecar.jaxexport.json").write_text("keep me")
    (tmp_path / "folder.onnx").mkdir()
    argv = [a.format(tmp=tmp_path, run=runs["td3_bc"]) for a in args]
    refused(export.main, argv, capsys, tmp_path, pattern)
    if "{run}" in args:
        refused(export.main, argv, capsys, runs["td3_bc"], pattern)  # the run directory is untouched too


@needs_onnx
def test_overwrite_replaces_an_existing_file_only_when_asked(runs, tmp_path, capsys):
    out = tmp_path / "policy.onnx"
    out.write_text("keep me")
    refused(export.main, ["--run", str(runs["cql"]), "--out", str(out)], capsys, tmp_path, r"policy\.onnx exists")
    assert export.main(["--run", str(runs["cql"]), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]


def test_onnx_without_its_packages_names_the_make_target(runs, tmp_path, capsys, monkeypatch):
    """Bug: a ModuleNotFoundError traceback (or a half-written file) when onnx is not installed."""
    monkeypatch.setitem(sys.modules, "onnx", None)
    refused(export.main, ["--run", str(runs["cql"]), "--out", str(tmp_path / "p.onnx")], capsys, tmp_path,
            r"^error: exporting to \.onnx needs .*requirements-export\.txt: run `make install-export`$")
    assert Path(ROOT / "requirements-export.txt").exists()


def test_run_export_in_python_refuses_with_run_error(runs, tmp_path):
    run = load_run(runs["td3_bc"])
    with pytest.raises(RunError, match="member 5 does not exist"):
        run.export(tmp_path / "p.jaxexport", member=5)
    with pytest.raises(RunError, match="suffix '.pb'"):
        run.export(tmp_path / "p.pb")
    assert list(tmp_path.iterdir()) == []


@needs_onnx
def test_an_export_that_differs_from_the_run_is_not_written(runs, tmp_path, monkeypatch):
    """Bug: a file that computes something else (here: a translation that turns tanh into the identity) written."""
    monkeypatch.setitem(policy_export.UNARY, "tanh", "Identity")
    with pytest.raises(RunError, match=r"the exported policy differs from the run's by .* nothing written"):
        load_run(runs["cql"]).export(tmp_path / "p.onnx")
    assert list(tmp_path.iterdir()) == []

