"""The dataset generator (datagen/make_datasets.py) and its SAC, on a tiny budget."""

from __future__ import annotations

import numpy as np
import pytest

from common import datasets, domains
from datagen import make_datasets, sac

# A few hundred SAC steps: 200 random-action steps, then 200 updates in one fused scan.
TINY = ["--sac-steps", "400", "--learning-starts", "200", "--chunk-steps", "200", "--eval-every", "200",
        "--eval-episodes", "2", "--max-transitions", "1500", "--seed", "3", "--command", "tiny"]


def _generate(out, work, extra=()):
    args = make_datasets.parse_args(["--env", "hopper", "--levels", "random,medium,medium-replay", "--out",
                                     str(out), "--work-dir", str(work), *TINY, *extra])
    return make_datasets.generate(args, log=lambda s: None)


@pytest.fixture(scope="module")
def generated_twice(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    first = _generate(root / "a", root / "work_a")
    second = _generate(root / "b", root / "work_b")
    return first, second


def test_generator_writes_loadable_d4rl_files(generated_twice):
    written, _ = generated_twice
    assert sorted(written) == ["hopper-medium-replay-v4", "hopper-medium-v4", "hopper-random-v4"]
    for name, path in written.items():
        raw, meta = datasets.read_hdf5(path)
        assert set(make_datasets.ROW_KEYS) <= set(raw)
        assert raw["observations"].dtype == np.float32 and raw["actions"].dtype == np.float32
        assert raw["terminals"].dtype == bool and raw["timeouts"].dtype == bool
        assert np.abs(raw["actions"]).max() <= 1.0
        data = datasets.load_file(path)  # runs the loader's validation
        assert data.env_id == "Hopper-v4" and data.stats["obs_dim"] == 11 and data.stats["act_dim"] == 3
        for key in ("env_id", "level", "generator_seed", "format_version", "creation_command", "max_episode_steps",
                    "episode_return_mean", "episode_return_std", "transitions", "episodes",
                    "behaviour_policy_sac_steps"):
            assert key in meta, (name, key)
        assert meta["level"] == name.split("-", 1)[1].rsplit("-", 1)[0] and meta["generator_seed"] == 3
        assert meta["transitions"] == raw["rewards"].shape[0] <= 1500
        # whole episodes only: the last row ends an episode
        assert raw["terminals"][-1] or raw["timeouts"][-1]


def test_metadata_returns_match_recomputed_episode_returns(generated_twice):
    for path in generated_twice[0].values():
        raw, meta = datasets.read_hdf5(path)
        ends = np.flatnonzero(raw["terminals"] | raw["timeouts"])
        returns = [raw["rewards"][s:e + 1].astype(np.float64).sum()
                   for s, e in zip(np.concatenate([[0], ends[:-1] + 1]), ends)]
        assert meta["episodes"] == len(returns)
        np.testing.assert_allclose(meta["episode_return_mean"], np.mean(returns), rtol=1e-9)
        np.testing.assert_allclose(meta["episode_return_std"], np.std(returns), rtol=1e-9)
        hopper = domains.REFERENCE_RETURNS["hopper"]
        np.testing.assert_allclose(meta["normalized_score_mean"], domains.normalized_score(np.mean(returns), hopper),
                                   rtol=1e-9)


def test_same_seed_gives_the_same_bytes(generated_twice):
    first, second = generated_twice
    for name in first:
        assert first[name].read_bytes() == second[name].read_bytes(), name


def test_medium_replay_is_the_replay_prefix_in_order(generated_twice):
    path = generated_twice[0]["hopper-medium-replay-v4"]
    raw, meta = datasets.read_hdf5(path)
    # 400 SAC steps: the replay holds at most 400 rows, the first 200 of them uniform random actions
    assert raw["rewards"].shape[0] <= meta["behaviour_policy_sac_steps"] == 400
    replay = dict(np.load(path.parent.parent / "work_a" / "replay.npz"))
    assert replay["rewards"].shape == (400,)
    n = raw["rewards"].shape[0]
    for key in make_datasets.ROW_KEYS:
        np.testing.assert_array_equal(raw[key], replay[key][:n], err_msg=key)
    # inside an episode, the next row's observation is the env's next observation
    inside = ~(raw["terminals"] | raw["timeouts"])[:-1]
    np.testing.assert_array_equal(raw["observations"][1:][inside], replay["next_observations"][:n - 1][inside])


def test_halfcheetah_episodes_time_out_at_1000_steps(tmp_path):
    args = make_datasets.parse_args(["--env", "halfcheetah", "--levels", "random", "--out", str(tmp_path),
                                     "--max-transitions", "2000", "--seed", "0"])
    path = make_datasets.generate(args, log=lambda s: None)["halfcheetah-random-v4"]
    raw, meta = datasets.read_hdf5(path)
    assert raw["rewards"].shape == (2000,) and not raw["terminals"].any()
    np.testing.assert_array_equal(np.flatnonzero(raw["timeouts"]), [999, 1999])
    assert meta["episodes"] == 2 and meta["env_id"] == "HalfCheetah-v4"
    data = datasets.load_file(path)
    assert data.stats["transitions"] == 1998  # d4rl drops each timed-out row and the last row


def test_a_different_seed_gives_different_data(tmp_path):
    paths = []
    for seed in (0, 1):
        args = make_datasets.parse_args(["--env", "hopper", "--levels", "random", "--out", str(tmp_path / str(seed)),
                                         "--max-transitions", "300", "--seed", str(seed)])
        paths.append(make_datasets.generate(args, log=lambda s: None)["hopper-random-v4"])
    a, b = (datasets.read_hdf5(p)[0] for p in paths)
    assert not np.array_equal(a["observations"][:10], b["observations"][:10])


def test_whole_episode_capping_keeps_order():
    episodes = [{"rewards": np.ones(n), "terminals": np.eye(1, n, n - 1, dtype=bool)[0]} for n in (5, 3, 7, 2, 4)]
    assert [len(e["rewards"]) for e in make_datasets.cap_episodes(episodes, 9)] == [5, 3]
    sampled = make_datasets.cap_episodes(episodes, 9, np.random.default_rng(0))
    assert sum(len(e["rewards"]) for e in sampled) <= 9
    order = [next(i for i, e in enumerate(episodes) if e is s) for s in sampled]
    assert order == sorted(order)
    rows = {"rewards": np.arange(6.0), "terminals": np.array([0, 1, 0, 0, 1, 0], bool),
            "timeouts": np.zeros(6, bool)}
    split = make_datasets.split_episodes(rows)  # the trailing unfinished episode is dropped
    assert [list(e["rewards"]) for e in split] == [[0.0, 1.0], [2.0, 3.0, 4.0]]


def test_bad_level_is_a_one_line_error(tmp_path, capsys):
    code = make_datasets.main(["--env", "hopper", "--levels", "medium,superb", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "superb" in err and "\n" not in err
    assert make_datasets.main(["--env", "pong", "--levels", "random", "--out", str(tmp_path)]) == 2


def test_sac_losses_by_hand():
    import jax.numpy as jnp

    q_next = jnp.array([[1.0, 2.0], [3.0, 0.5]])
    y = sac.soft_td_target(jnp.array([1.0, 1.0]), jnp.array([0.0, 1.0]), q_next, jnp.array([-1.0, 2.0]), 0.5, 0.9)
    np.testing.assert_allclose(y, [1.0 + 0.9 * (1.0 + 0.5), 1.0])
    np.testing.assert_allclose(sac.actor_loss(jnp.array([[1.0], [2.0]]), jnp.array([0.4]), 0.5), 0.2 - 1.0)
    loss = sac.entropy_temperature_loss({"log_alpha": jnp.array(0.3)}, jnp.array([-1.0, -3.0]), -3.0)
    np.testing.assert_allclose(loss, -0.3 * (-5.0), rtol=1e-6)


def test_policy_snapshot_round_trip(tmp_path):
    import jax

    config = sac.SACConfig()
    fns = sac.make_sac(config, 11, 3)
    params = fns.init(jax.random.PRNGKey(1)).actor.params
    sac.save_policy(tmp_path / "p.msgpack", params, {"step": 7, "return_mean": 12.5}, config)
    loaded, record = sac.load_policy(tmp_path / "p.msgpack", 11, 3)
    assert record["return_mean"] == 12.5 and record["env_id"] == "Hopper-v4"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(a, b)


def test_reusing_a_sac_run_gives_the_same_files(generated_twice, tmp_path):
    """sac.py --out DIR --save-replay, then make_datasets --sac-run DIR == make_datasets training SAC itself."""
    run = tmp_path / "run"
    code = sac.main(["--env", "hopper", "--seed", "3", "--total-steps", "400", "--learning-starts", "200",
                     "--chunk-steps", "200", "--eval-every", "200", "--eval-episodes", "2", "--stop-return", "1100",
                     "--out", str(run), "--save-replay"])
    assert code == 0
    args = make_datasets.parse_args(["--env", "hopper", "--levels", "medium,medium-replay", "--out",
                                     str(tmp_path / "out"), "--sac-run", str(run), *TINY])
    reused = make_datasets.generate(args, log=lambda s: None)
    for name, path in reused.items():
        a, meta_a = datasets.read_hdf5(path)
        b, meta_b = datasets.read_hdf5(generated_twice[0][name])
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}/{key}")
        assert meta_a["behaviour_policy_eval_return"] == meta_b["behaviour_policy_eval_return"]
