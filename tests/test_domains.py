"""Every domain scores by its own protocol: D4RL file names, env inference, the AntMaze/Adroit/Kitchen
evaluation envs against d4rl's rules, and each domain's configs end to end from a D4RL file and from a
Minari dataset (tiny data made here by random play)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import ROOT, rollout, write_d4rl

from common import d4rl_envs, datasets, domains, evaluation

gym = pytest.importorskip("gymnasium")
pytest.importorskip("gymnasium_robotics")

# ----------------------------------------------------------------------------------------------
# Names -> the files d4rl caches
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, file", [
    ("hopper-medium-replay-v0", "hopper_mixed.hdf5"),
    ("walker2d-medium-replay-v0", "walker_mixed.hdf5"),
    ("halfcheetah-medium-expert-v0", "halfcheetah_medium_expert.hdf5"),
    ("hopper-medium-replay-v2", "hopper_medium_replay-v2.hdf5"),
    ("ant-expert-v1", "ant_expert-v1.hdf5"),
    ("antmaze-umaze-v0", "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse.hdf5"),
    ("antmaze-umaze-v2", "Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5"),
    ("antmaze-medium-play-v2", "Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5"),
    ("antmaze-large-diverse-v0", "Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse.hdf5"),
    ("pen-human-v0", "pen-v0_demos_clipped.hdf5"),
    ("door-cloned-v0", "door-demos-v0-bc-combined.hdf5"),
    ("relocate-expert-v0", "relocate-v0_expert_clipped.hdf5"),
    ("hammer-human-v1", "hammer-human-v1.hdf5"),
    ("kitchen-complete-v0", "mini_kitchen_microwave_kettle_light_slider-v0.hdf5"),
    ("kitchen-partial-v0", "kitchen_microwave_kettle_light_slider-v0.hdf5"),
    ("kitchen-mixed-v0", "kitchen_microwave_kettle_bottomburner_light-v0.hdf5"),
])
def test_d4rl_names_map_to_the_files_d4rl_caches(name, file):
    assert datasets.d4rl_filename(name) == file
    assert domains.d4rl_name_of(file) == name
    assert domains.d4rl_name_of(f"/somewhere/{file}") == name


def test_table_covers_every_dataset_the_papers_use_and_files_are_unique():
    levels = ("random", "medium", "medium-replay", "medium-expert", "expert")
    names = [f"{e}-{lvl}-{v}" for e in ("hopper", "halfcheetah", "walker2d", "ant") for lvl in levels
             for v in ("v0", "v1", "v2")]
    names += [f"antmaze-{m}-{v}" for m in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play",
                                           "large-diverse") for v in ("v0", "v2")]
    names += [f"{t}-{k}-{v}" for t in ("pen", "hammer", "door", "relocate") for k in ("human", "cloned", "expert")
              for v in ("v0", "v1")]
    names += [f"kitchen-{k}-v0" for k in ("complete", "partial", "mixed")]
    missing = [n for n in names if n not in domains.D4RL_DATASETS]
    assert not missing
    files = [e["file"] for e in domains.D4RL_DATASETS.values()]
    assert len(files) == len(set(files))
    for name in names:  # every one of them has one evaluation setup
        assert domains.setup_for_d4rl(name).env_id


def test_names_are_resolved_without_prefix_guessing():
    assert domains.d4rl_name_of("antmaze_umaze-v2.hdf5") == "antmaze-umaze-v2"  # the derived short name
    assert domains.d4rl_name_of("antmaze_medium_play-v2") == "antmaze-medium-play-v2"
    assert domains.infer_env_id("antmaze_umaze-v2.hdf5") == "AntMazeD4RL_UMaze-v0"
    assert domains.infer_env_id("Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse.hdf5") == \
        "AntMazeD4RL_UMaze-v0"
    assert domains.infer_env_id("ant-medium-v2") == "Ant-v4"
    for name in ("ant-maze-thing.hdf5", "antmaze-umaze-v7", "hopper-medium-v4-small", "my_data.hdf5"):
        assert domains.d4rl_name_of(name) is None and domains.infer_env_id(name) is None


# ----------------------------------------------------------------------------------------------
# Tiny data in each domain's own layout
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d4rl_dir(tmp_path_factory):
    """D4RL_DATASET_DIR with one tiny file per domain under d4rl's own file names."""
    root = tmp_path_factory.mktemp("d4rl")
    for name, rows, episode in (("antmaze-umaze-v2", 300, 100), ("pen-human-v0", 300, 100),
                                ("kitchen-partial-v0", 200, 100),
                                ("ant-medium-v2", 300, 100)):
        setup = domains.setup_for_d4rl(name, domains.D4RL_ANT_OBS_DIM if name.startswith("ant-") else None)
        write_d4rl(root, name, rollout(setup, rows, episode))
    return root


# ----------------------------------------------------------------------------------------------
# The evaluation envs against d4rl's rules
# ----------------------------------------------------------------------------------------------


def test_antmaze_env_is_d4rls_maze_start_goal_and_ant():
    env = gym.make("AntMazeD4RL_UMaze-v0")
    assert env.spec.max_episode_steps == 700 and gym.spec("AntMazeD4RL_Large-v0").max_episode_steps == 1000
    u = env.unwrapped
    assert u.model.opt.timestep == pytest.approx(0.02) and u.frame_skip == 5
    np.testing.assert_allclose(u.model.actuator_gear[:, 0], 1.0)
    np.testing.assert_allclose(u.model.actuator_ctrlrange, [[-30.0, 30.0]] * 8)
    # d4rl frame: start cell R at the origin, walls at (col * 4 - x_R, row * 4 - y_R)
    import mujoco

    block = mujoco.mj_name2id(u.model, mujoco.mjtObj.mjOBJ_GEOM, "block_2_1")  # the U's middle wall
    np.testing.assert_allclose(u.model.geom_pos[block], [0.0, 4.0, 1.0])
    np.testing.assert_allclose(u.model.geom_size[block], [2.0, 2.0, 1.0])
    goals = []
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (29,)
        assert np.all(np.abs(obs[:2]) <= 0.1) and abs(obs[2] - 0.75) <= 0.1  # xy first, d4rl's start
        goals.append(info["goal"])
    goals = np.asarray(goals)  # goal cell (row 3, col 1) = (0, 8) plus U(0, 1) + U(0, 0.5) per axis
    assert np.all(goals >= [0.0, 8.0]) and np.all(goals <= [1.5, 9.5]) and goals.std(axis=0).min() > 0.1
    # sparse reward within 0.5 of the goal; the episode ends there
    obs, reward, terminated, _, _ = env.step(np.zeros(8))
    assert reward == 0.0 and not terminated
    u.data.qpos[:2] = u.goal + [0.3, 0.3]  # 0.42 away
    obs, reward, terminated, _, _ = env.step(np.zeros(8))
    assert reward == 1.0 and terminated
    np.testing.assert_allclose(obs[:15], u.data.qpos[:15]) and np.testing.assert_allclose(obs[15:], u.data.qvel[:14])


def d4rl_reward(task, u):
    """d4rl's dense reward, written from hand_manipulation_suite/{door,hammer,relocate}_v0.py's formulas."""
    d = u.data
    if task == "door":
        handle, palm, door = d.site_xpos[u.handle_site_id], d.site_xpos[u.grasp_site_id], d.qpos[u.door_hinge_addrs]
        reward = -0.1 * np.linalg.norm(palm - handle) - 0.1 * (door - 1.57) ** 2 - 1e-5 * np.sum(d.qvel ** 2)
        return float(reward + 2 * (door > 0.2) + 8 * (door > 1.0) + 10 * (door > 1.35))
    obj, palm = d.xpos[u.obj_body_id], d.site_xpos[u.S_grasp_site_id]
    target = d.site_xpos[u.target_obj_site_id]
    if task == "hammer":
        tool, goal = d.site_xpos[u.tool_site_id], d.site_xpos[u.goal_site_id]
        nail = np.linalg.norm(target - goal)
        reward = -0.1 * np.linalg.norm(palm - obj) - np.linalg.norm(tool - target) - 10 * nail
        reward -= 1e-2 * np.linalg.norm(d.qvel)
        return float(reward + 2 * (obj[2] > 0.04 and tool[2] > 0.04) + 25 * (nail < 0.02) + 75 * (nail < 0.01))
    reward = -0.1 * np.linalg.norm(palm - obj)
    if obj[2] > 0.04:
        reward += 1.0 - 0.5 * np.linalg.norm(palm - target) - 0.5 * np.linalg.norm(obj - target)
    return float(reward + 10 * (np.linalg.norm(obj - target) < 0.1) + 20 * (np.linalg.norm(obj - target) < 0.05))


@pytest.mark.parametrize("task", ["door", "hammer", "relocate"])
def test_adroit_reward_is_d4rls(task):
    setup = domains.setup_for_d4rl(f"{task}-human-v0")
    env, raw_env = evaluation.make_env(setup), evaluation.make_env(setup._replace(reward_fix=""))
    env.reset(seed=3), raw_env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, env.action_space.shape)
        _, reward, *_ = env.step(action)
        _, raw_reward, *_ = raw_env.step(action)
        assert reward == pytest.approx(d4rl_reward(task, env.unwrapped), abs=1e-9)
        assert raw_reward > reward  # the uncorrected env adds the palm-object distance instead


def test_adroit_pen_horizon_is_100():
    pen = evaluation.make_env(domains.setup_for_d4rl("pen-human-v1"))
    pen.reset(seed=0)
    steps = 0
    while True:
        steps += 1
        if any(pen.step(np.zeros(24))[2:4]):
            break
    assert steps == 100 and pen.observation_space.shape == (45,)


def test_kitchen_builds_on_this_mujoco_with_d4rls_view_and_reward():
    setup = domains.setup_for_d4rl("kitchen-mixed-v0")
    env = evaluation.make_env(setup)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (60,) and env.spec is not None
    goal = np.zeros(30)
    goal[22], goal[23:30], goal[11:13], goal[17:19] = -0.75, [-0.23, 0.75, 1.62, 0.99, 0, 0, -0.06], \
        [-0.88, -0.01], [-0.69, -0.05]
    np.testing.assert_allclose(obs[30:], goal)  # microwave, kettle, bottom burner, light switch
    u = env.unwrapped
    np.testing.assert_allclose(obs[:30], u.data.qpos[:30], atol=0.2)  # robot 9 + objects 21 (sensor noise)
    _, reward, terminated, truncated, _ = env.step(np.zeros(9))
    assert reward == 0.0 and not terminated
    u.data.qpos[22] = -0.75  # open the microwave: one task done, counted once
    rewards = [env.step(np.zeros(9))[1] for _ in range(3)]
    assert rewards[0] == 1.0 and rewards[1:] == [0.0, 0.0]
    assert setup.normalized(4.0) == pytest.approx(100.0) and setup.horizon == 280


# ----------------------------------------------------------------------------------------------
# End to end: each config of each domain, from d4rl's files
# ----------------------------------------------------------------------------------------------

TINY = ["--config.total_steps=2", "--config.eval_every=2", "--config.eval_episodes=1", "--config.batch_size=16",
        "--config.hidden_dims=(32, 32)", "--config.progress=False"]
TINY_MISA = ["--config.n_actions=4", "--config.hmc_num_samples=3", "--config.hmc_burn_in=2"]


def run_cli(config, dataset, tmp_path, run, extra=()):
    from algorithms import cql, misa

    module, flags = (cql, ["--config.cql_n_actions=2"]) if "cql_" in config else (misa, TINY_MISA)
    argv = ["x", f"--config={ROOT}/configs/{config}", f"--config.dataset={dataset}", f"--config.log_dir={tmp_path}",
            f"--config.run_name={run}", *TINY, *flags, *extra]
    status = module.main(argv)
    summary = json.loads((tmp_path / run / "summary.json").read_text()) if status == 0 else None
    return status, summary


def check_score(summary, env_id, formula):
    assert summary["env"] == env_id and summary["evaluation"]["env_id"] == env_id
    score, ret = summary["normalized_score_final"][0], summary["return_final"][0]
    assert np.isfinite(score) and score == pytest.approx(formula(ret))


@pytest.mark.parametrize("config, name, env_id, formula", [
    ("misa_antmaze.py", "real-file-path", "AntMazeD4RL_UMaze-v0", lambda r: 100.0 * r),
    ("misa_adroit.py", "pen-human-v0", "AdroitHandPen-v1", lambda r: 100 * (r - 96.262799) / (3076.8331 - 96.262799)),
    ("misa_kitchen.py", "kitchen-partial-v0", "FrankaKitchen-v1", lambda r: 25.0 * r),
])
def test_config_trains_and_scores_from_a_d4rl_file(config, name, env_id, formula, d4rl_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_dir))
    if name == "real-file-path":  # an AntMaze file given by path, under d4rl's own name: AntMaze, never Ant
        name = d4rl_dir / domains.D4RL_DATASETS["antmaze-umaze-v2"]["file"]
    status, summary = run_cli(config, name, tmp_path, "run")
    assert status == 0
    check_score(summary, env_id, formula)
    assert summary["evaluation"]["ref_source"].startswith("d4rl")
    assert summary["dataset_stats"]["obs_dim"] == {"AntMazeD4RL_UMaze-v0": 29, "AdroitHandPen-v1": 45,
                                                   "FrankaKitchen-v1": 60}[env_id]


def zero_policy_returns(dataset, episodes=1, env=""):
    """Evaluates a policy that always acts 0 through the same setup and Evaluator a training run uses."""
    import jax.numpy as jnp

    setup = domains.setup_for_dataset(dataset, env)
    act_dim = dataset.stats["act_dim"]
    evaluator = evaluation.Evaluator(setup, lambda p, obs: jnp.zeros(obs.shape[:-1] + (act_dim,)) * p, 1, episodes,
                                     dataset.stats["obs_dim"], act_dim, seed=0)
    returns = evaluator(jnp.zeros((1,)), 0)
    evaluator.close()
    return setup, returns


def test_antmaze_short_file_name_by_path_is_antmaze(d4rl_dir, tmp_path):
    short = tmp_path / "antmaze_umaze-v2.hdf5"
    short.write_bytes((d4rl_dir / domains.D4RL_DATASETS["antmaze-umaze-v2"]["file"]).read_bytes())
    data = datasets.load_dataset(str(short))
    setup, returns = zero_policy_returns(data)
    assert data.env_id == setup.env_id == "AntMazeD4RL_UMaze-v0" and setup.ref == (0.0, 1.0)
    assert returns.shape == (1, 1) and returns[0, 0] in (0.0, 1.0)


def test_ant_padding_only_for_ant_locomotion_data(d4rl_dir, tmp_path, monkeypatch):
    raw = rollout(domains.setup_for_d4rl("ant-medium-v2"), 120, 60)  # 27 dims: no padding
    assert raw["observations"].shape[1] == 27
    path = write_d4rl(tmp_path, "ant-medium-v2", raw)
    assert domains.setup_for_dataset(datasets.load_dataset(str(path))).adapter == "identity"
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_dir))
    data = datasets.load_dataset("ant-medium-v2")  # d4rl's 111 dims: Ant-v4's 27 + zeros, D4RL's ant refs
    setup, returns = zero_policy_returns(data)
    assert (setup.env_id, setup.adapter, data.stats["obs_dim"]) == ("Ant-v4", "pad_ant_111", 111)
    np.testing.assert_allclose(setup.normalized(returns), 100 * (returns + 325.6) / (3879.7 + 325.6))
    maze = datasets.load_dataset(str(d4rl_dir / domains.D4RL_DATASETS["antmaze-umaze-v2"]["file"]))
    assert domains.setup_for_dataset(maze).adapter == "identity"


def test_config_of_another_domain_is_refused_or_warned(d4rl_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(d4rl_dir))
    status, _ = run_cli("misa_antmaze.py", "ant-medium-v2", tmp_path, "a")
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0 and "antmaze" in err and "locomotion" in err
    assert not (tmp_path / "a").exists()
    kitchen = domains.setup_for_d4rl("kitchen-partial-v0")
    assert "kitchen dataset" in domains.check_config_domain(None, kitchen, "kitchen-partial-v0")
    assert domains.check_config_domain("kitchen", kitchen, "kitchen-partial-v0") is None
    assert domains.check_config_domain(None, domains.setup_for_d4rl("hopper-medium-v2"), "x") is None


def test_unknown_file_needs_config_env(d4rl_dir, tmp_path, capsys):
    path = tmp_path / "ant-maze-mine.hdf5"
    path.write_bytes((d4rl_dir / domains.D4RL_DATASETS["antmaze-umaze-v2"]["file"]).read_bytes())
    from algorithms import misa

    argv = ["x", f"--config={ROOT}/configs/misa_antmaze.py", f"--config.dataset={path}", *TINY, *TINY_MISA,
            f"--config.log_dir={tmp_path}"]
    assert misa.main(argv) == 2
    assert "--config.env" in capsys.readouterr().err
    data = datasets.load_dataset(str(path))  # named by the user, the env is scored with no D4RL refs
    setup, returns = zero_policy_returns(data, env="AntMazeD4RL_UMaze-v0")
    assert setup.ref is None and np.isnan(setup.normalized(returns)).all()


def test_missing_d4rl_file_names_both_file_names(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    with pytest.raises(datasets.DatasetError, match="Ant_maze_u-maze.*sparse_fixed.hdf5 or antmaze_umaze-v2.hdf5"):
        datasets.load_dataset("antmaze-umaze-v2")


# ----------------------------------------------------------------------------------------------
# Local Minari datasets: their env spec, their refs
# ----------------------------------------------------------------------------------------------


def make_minari(dataset_id, env_id, steps, episode_len, refs=None, **kwargs):
    import minari

    d4rl_envs.import_gymnasium_robotics()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = minari.DataCollector(gym.make(env_id, max_episode_steps=episode_len, **kwargs))
        eval_env = gym.make(env_id, max_episode_steps=episode_len, **kwargs) if refs else None
    env.action_space.seed(0)
    env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    extra = dict(ref_min_score=refs[0], ref_max_score=refs[1], eval_env=eval_env) if refs else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env.create_dataset(dataset_id, algorithm_name="random", author="tests", description="test data", **extra)
    env.close()


MINARI_CASES = {
    "antmaze": ("AntMaze_UMaze-v4", {"continuing_task": True, "reset_target": False}, (0.0, 10.0), 40),
    "antmaze-norefs": ("AntMaze_UMaze-v4", {"continuing_task": True, "reset_target": False}, None, 40),
    "pen": ("AdroitHandPen-v1", {}, (-50.0, 500.0), 30),
    "kitchen": ("FrankaKitchen-v1", {"tasks_to_complete": ["microwave", "kettle"]}, (0.0, 2.0), 20),
}


@pytest.mark.parametrize("case", sorted(MINARI_CASES))
def test_minari_dataset_is_evaluated_on_its_spec_with_its_refs(case, tmp_path, monkeypatch):
    env_id, kwargs, refs, horizon = MINARI_CASES[case]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    make_minari(f"test/{case}/tiny-v0", env_id, 100, horizon, refs, **kwargs)
    data = datasets.load_dataset(f"minari:test/{case}/tiny-v0")
    setup, returns = zero_policy_returns(data)
    ev = setup.describe()
    assert ev["minari_id"] == f"test/{case}/tiny-v0" and ev["env_spec_source"] == ("eval_env_spec" if refs else
                                                                                  "env_spec")
    assert ev["horizon"] == horizon and all(ev["env_kwargs"][k] == v for k, v in kwargs.items())
    scores = setup.normalized(returns)
    if refs:
        assert (ev["ref_min_score"], ev["ref_max_score"]) == refs
        np.testing.assert_allclose(scores, 100 * (returns - refs[0]) / (refs[1] - refs[0]))
    else:  # no refs of its own: never D4RL's, the score is n/a
        assert ev["ref_min_score"] is None and np.isnan(scores).all()
    env = evaluation.make_env(setup)  # the env's observation is flattened exactly as the data's
    np.testing.assert_allclose(env.reset(seed=0)[0], data.transitions.observations[0], rtol=1e-6, atol=1e-6)
    if case != "pen":
        assert setup.adapter == "flatten_dict" and data.metadata["observation_keys"][0].startswith("achieved_goal")


def test_cql_antmaze_trains_and_scores_from_a_minari_dataset(tmp_path, monkeypatch):
    env_id, kwargs, refs, horizon = MINARI_CASES["antmaze"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    make_minari("test/antmaze/tiny-v0", env_id, 100, horizon, refs, **kwargs)
    status, summary = run_cli("cql_antmaze.py", "minari:test/antmaze/tiny-v0", tmp_path / "runs", "m")
    assert status == 0
    check_score(summary, env_id, lambda r: 100 * (r - refs[0]) / (refs[1] - refs[0]))
    ev = summary["evaluation"]
    assert ev["ref_source"].startswith("minari") and ev["env_spec_source"] == "eval_env_spec"
    assert ev["horizon"] == horizon and ev["env_kwargs"]["continuing_task"] is True


def test_gymnasium_robotics_antmaze_is_a_mirrored_frame_and_another_ant():
    """Why AntMaze is not evaluated on gymnasium-robotics' env: in umaze the goal lies 8 *below* the start
    there (8 above in d4rl's frame, which AntMazeD4RL keeps), and its ant has gear 150 at timestep 0.01."""
    d4rl_envs.import_gymnasium_robotics()
    env = gym.make("AntMaze_UMaze-v4", continuing_task=False)
    obs, _ = env.reset(seed=0, options={"goal_cell": np.array([3, 1]), "reset_cell": np.array([1, 1])})
    delta = obs["desired_goal"] - obs["achieved_goal"]
    assert abs(delta[0]) < 2.0 and -10.0 < delta[1] < -6.0
    u = env.unwrapped.ant_env
    assert u.model.opt.timestep == pytest.approx(0.01) and np.all(u.model.actuator_gear[:, 0] == 150)
    ours = gym.make("AntMazeD4RL_UMaze-v0")
    _, info = ours.reset(seed=0)
    assert 6.0 < info["goal"][1] < 10.0


def test_mujoco4_shim_touches_only_gymnasium_robotics_joint_helpers():
    import mujoco
    from gymnasium_robotics.utils import mujoco_utils

    def hopper_return():
        env = gym.make("Hopper-v4")
        env.reset(seed=0)
        return sum(env.step(np.full(3, 0.3))[1] for _ in range(30))

    before = hopper_return()
    d4rl_envs.mujoco4_enum_shim()
    assert hopper_return() == before  # locomotion is untouched
    assert isinstance(mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint)  # the real module keeps its enums
    model = mujoco.MjModel.from_xml_string(
        '<mujoco><worldbody><body><joint name="robot:j" type="hinge"/><geom size=".1"/></body></worldbody></mujoco>')
    data = mujoco.MjData(model)
    data.qpos[0] = 0.25
    qpos, _ = mujoco_utils.robot_get_obs(model, data, ["robot:j"])  # asserts on the joint type (failed on 4.0.0)
    assert float(qpos) == 0.25


def test_mujoco_warnings_are_python_warnings_less_the_known_harmless_deprecation(capfd):
    """mujoco 4 prints a 'settotalmass' deprecation to stderr for every HalfCheetah env; that line is dropped and
    any other MuJoCo warning reaches Python's warnings (so it can be seen, filtered or turned into an error)."""
    env = evaluation.make_env("HalfCheetah-v4")
    env.close()
    assert "settotalmass" not in capfd.readouterr().err
    with pytest.warns(RuntimeWarning, match="MuJoCo: something else happened"):
        d4rl_envs._mujoco_warning("something else happened\n")
