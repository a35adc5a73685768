"""CQL: the conservative term against numpy, per-critic independence, the Lagrange multiplier, gradient routing,
vmap invariants, smoke runs of both configs and every flag, the CLI, and every config variant."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import ROOT

from algorithms import cql
from common import datasets, experiment
from common.experiment import configuration
from configs import cql_antmaze, cql_mujoco

OBS_DIM, ACT_DIM = 5, 3


def tiny_dataset(rows=400, seed=0):
    rng = np.random.default_rng(seed)
    terminals = np.zeros(rows, bool)
    terminals[49::50] = True
    raw = {
        "observations": rng.normal(size=(rows, OBS_DIM)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (rows, ACT_DIM)).astype(np.float32),
        "rewards": rng.uniform(0, 1, rows).astype(np.float32),
        "terminals": terminals,
    }
    raw["actions"][0] = 1.0  # on the boundary: must be clipped to +-action_clip
    return datasets.from_raw(raw, "tiny", None, "tiny")


@pytest.fixture(scope="module")
def tiny():
    return tiny_dataset()


def tiny_config(module=cql_mujoco, **overrides):
    config = module.get_config()
    config.update(dict(total_steps=20, eval_every=10, batch_size=32, hidden_dims=(32, 32), cql_n_actions=4,
                       eval_episodes=0))
    config.update(overrides)
    return config


# ------------------------------------------------------------------------------------------------
# The conservative term
# ------------------------------------------------------------------------------------------------


def test_conservative_penalty_matches_brute_force_numpy():
    rng = np.random.default_rng(0)
    critics, batch, n = 2, 7, 4
    q_uniform, q_pi, q_next_pi = 3.0 * rng.normal(size=(3, critics, batch, n))
    log_pi, log_pi_next = rng.normal(size=(2, batch, n))
    q_data = rng.normal(size=(critics, batch))
    log_uniform = ACT_DIM * math.log(0.5)
    cat = cql.cql_importance_weighted_q(*(jnp.asarray(x, jnp.float32) for x in (q_uniform, q_pi, q_next_pi)),
                                        log_uniform, jnp.asarray(log_pi, jnp.float32),
                                        jnp.asarray(log_pi_next, jnp.float32))
    assert cat.shape == (critics, batch, 3 * n)
    for temp in (1.0, 0.3):
        expected = np.zeros(critics)
        for i in range(critics):
            for b in range(batch):
                values = ([q_uniform[i, b, j] - log_uniform for j in range(n)]
                          + [q_pi[i, b, j] - log_pi[b, j] for j in range(n)]
                          + [q_next_pi[i, b, j] - log_pi_next[b, j] for j in range(n)])
                expected[i] += temp * math.log(sum(math.exp(v / temp) for v in values)) - q_data[i, b]
        expected /= batch
        diff = cql.cql_conservative_penalty(cat, jnp.asarray(q_data, jnp.float32), temp)
        np.testing.assert_allclose(diff, expected, rtol=1e-5)
        np.testing.assert_allclose(cql.cql_critic_penalty(diff, 5.0, 2.0, 1.5, lagrange=False), 5.0 * expected,
                                   rtol=1e-5)
        np.testing.assert_allclose(cql.cql_critic_penalty(diff, 5.0, 2.0, 1.5, lagrange=True),
                                   2.0 * 5.0 * (expected - 1.5), rtol=1e-5)


def test_uniform_actions_cover_the_box_with_log_density_a_log_half():
    actions, log_density = cql.draw_step_noise(jax.random.PRNGKey(0), 64, 10, 1, 6).uniform, cql.uniform_log_density(6)
    assert actions.shape == (64, 10, 6)
    assert float(actions.min()) >= -1.0 and float(actions.max()) <= 1.0
    assert float(actions.min()) < -0.95 and float(actions.max()) > 0.95
    np.testing.assert_allclose(log_density, 6 * np.log(0.5), rtol=1e-6)


def test_each_critic_has_its_own_logsumexp():
    net = cql.CriticEnsemble(2, (16, 16), "relu", False, "flax", cql.CRITIC_OUTPUT_SCALE)
    rng = np.random.default_rng(1)
    obs = jnp.asarray(rng.normal(size=(8, 1 + 3 * 4, OBS_DIM)), jnp.float32)
    actions = jnp.asarray(rng.uniform(-1, 1, size=(8, 1 + 3 * 4, ACT_DIM)), jnp.float32)
    log_pi = jnp.asarray(rng.normal(size=(8, 4)), jnp.float32)

    def penalties(params):
        q = net.apply(params, obs, actions)
        cat = cql.cql_importance_weighted_q(q[..., 1:5], q[..., 5:9], q[..., 9:], ACT_DIM * np.log(0.5), log_pi,
                                            log_pi)
        return cql.cql_conservative_penalty(cat, q[..., 0], 1.0)

    @jax.jit  # one compiled program: eager dispatch of many small ops is slow on a busy CPU
    def check(key):
        params = net.init(key, obs, actions)
        perturbed = jax.tree.map(lambda x: x.at[1].add(0.5), params)  # critic 2 only
        jac = jax.jacobian(cql.cql_conservative_penalty)(jnp.ones((2, 3, 6)), jnp.zeros((2, 3)), 1.0)
        return penalties(params), penalties(perturbed), jac

    before, after, jac = check(jax.random.PRNGKey(0))
    assert float(before[0]) == float(after[0])
    assert abs(float(before[1]) - float(after[1])) > 1e-3
    # and on the values: critic 1's penalty has no derivative with respect to critic 2's entries
    assert np.all(np.asarray(jac[0, 1]) == 0) and np.all(np.asarray(jac[1, 0]) == 0)
    assert np.all(np.asarray(jac[0, 0]) != 0)


def test_lagrange_multiplier_grows_above_the_target_gap_and_shrinks_below():
    gap, weight = 5.0, 5.0
    adam = optax.adam(3e-4)
    for diff, direction in (([6.0, 7.0], 1.0), ([3.0, 4.0], -1.0)):
        params = {"value": jnp.asarray(1.0)}
        loss = lambda p, d: cql.lagrange_multiplier_loss(p["value"], d, weight, gap)  # noqa: E731
        grad = jax.grad(loss)(params, jnp.asarray(diff))
        np.testing.assert_allclose(grad["value"], -math.e * weight * (np.mean(diff) - gap), rtol=1e-5)
        updates, _ = adam.update(grad, adam.init(params))
        new = optax.apply_updates(params, updates)["value"]
        assert direction * (float(new) - 1.0) > 0
    # the critics' penalty treats alpha' as fixed, and alpha' is clipped to [0, 1e6]
    assert float(jax.grad(lambda a: cql.cql_critic_penalty(jnp.asarray(6.0), 5.0, a, gap, True))(2.0)) == 0.0
    assert float(cql.alpha_prime_value(jnp.asarray(20.0))) == 1e6


def test_small_terms_match_numpy():
    rng = np.random.default_rng(2)
    next_q, next_log_pi = rng.normal(size=(2, 6, 5))
    q, log_pi = cql.max_target_backup(jnp.asarray(next_q), jnp.asarray(next_log_pi))
    best = next_q.argmax(-1)
    np.testing.assert_allclose(q, next_q[np.arange(6), best])
    np.testing.assert_allclose(log_pi, next_log_pi[np.arange(6), best])
    r, nq, nlp = rng.normal(size=(3, 6))
    d = (rng.uniform(size=6) < 0.3).astype(float)
    np.testing.assert_allclose(cql.soft_td_target(r, d, nq, nlp, 0.2, 0.99, False), r + 0.99 * (1 - d) * nq)
    np.testing.assert_allclose(cql.soft_td_target(r, d, nq, nlp, 0.2, 0.99, True),
                               r + 0.99 * (1 - d) * (nq - 0.2 * nlp))
    q_data, y = rng.normal(size=(2, 6)), rng.normal(size=6)
    np.testing.assert_allclose(cql.critic_td_loss(q_data, y), ((q_data - y) ** 2).mean(1).sum(), rtol=1e-5)
    q_pi, lp, lp_data = rng.normal(size=(2, 6)), rng.normal(size=6), rng.normal(size=6)
    np.testing.assert_allclose(cql.sac_policy_loss(0.3, lp, q_pi), (0.3 * lp - q_pi.min(0)).mean(), rtol=1e-5)
    np.testing.assert_allclose(cql.bc_policy_loss(0.3, lp, lp_data), (0.3 * lp - lp_data).mean(), rtol=1e-5)
    np.testing.assert_allclose(cql.entropy_temperature_loss(0.7, lp, -3.0), -0.7 * (lp - 3.0).mean(), rtol=1e-5)


def test_prepare_data_transforms_rewards_and_clips_actions(tiny):
    data = cql.prepare_data(tiny, tiny_config(cql_antmaze))
    np.testing.assert_allclose(data.rewards, (tiny.transitions.rewards - 0.5) * 4, rtol=1e-6, atol=1e-6)
    assert float(jnp.abs(data.actions).max()) == pytest.approx(0.999)
    np.testing.assert_array_equal(cql.prepare_data(tiny, tiny_config()).rewards, tiny.transitions.rewards)


# ------------------------------------------------------------------------------------------------
# Updates: gradient routing, flags, vmap
# ------------------------------------------------------------------------------------------------



def test_flags_bc_warmup_and_gradient_routing(tiny):
    """backup_entropy, fixed alpha, LayerNorm, ELU critics and a BC warm-up, all through one compiled update.

    During the warm-up the policy ignores the critics; after it, the penalty weight moves the critics only.
    """
    config = tiny_config(backup_entropy=True, use_automatic_entropy_tuning=False, alpha_multiplier=0.2,
                         layer_norm=True, critic_activation="elu", bc_steps=5)
    cql.validate_config(config)
    agent = cql.make_agent(config, tiny)
    data = cql.prepare_data(tiny, config)
    update = jax.jit(agent.update, static_argnums=2)
    state = agent.init(jax.random.PRNGKey(0), agent.hparams)
    other_critic = agent.init(jax.random.PRNGKey(1), agent.hparams).critic

    def policies(a, b):
        return zip(jax.tree.leaves(a.policy.params), jax.tree.leaves(b.policy.params))

    (bc_a, metrics), (bc_b, _) = (update(s, data, 1) for s in (state, state._replace(critic=other_critic)))
    for a, b in policies(bc_a, bc_b):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    np.testing.assert_allclose(metrics["alpha"], 0.2)
    assert float(bc_a.log_alpha.params["value"]) == 0.0  # no tuning: log alpha stays at its initial value
    assert float(bc_a.log_alpha_prime.params["value"]) == 1.0  # no Lagrange: alpha' is never trained
    assert int(bc_a.step) == 1

    after = state._replace(step=jnp.asarray(10, jnp.int32))  # same dtypes: no recompile
    (rl_a, _), (rl_b, _) = (update(s, data, 1) for s in (after, after._replace(critic=other_critic)))
    assert any(not np.allclose(a, b) for a, b in policies(rl_a, rl_b))
    # one compiled update, two penalty weights: the critics differ, the policy does not
    heavy = after._replace(hparams={**after.hparams, "min_q_weight": jnp.asarray(50.0, jnp.float32)})
    rl_heavy, _ = update(heavy, data, 1)
    for a, b in policies(rl_a, rl_heavy):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(rl_a.critic.params),
                                                         jax.tree.leaves(rl_heavy.critic.params)))


def test_antmaze_config_runs_with_lagrange_and_max_target_backup(tiny):
    config = tiny_config(cql_antmaze, max_target_backup=True)  # as the `jaxcql` variant
    assert config.lagrange and config.max_target_backup and config.bc_steps > config.total_steps
    state, metrics = jax.jit(cql.make_train(config, tiny))(jax.random.PRNGKey(0))
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    assert int(state.step) == 20
    assert float(state.log_alpha_prime.params["value"]) != config.log_alpha_prime_init
    assert np.all(np.asarray(metrics["alpha_prime"]) > 0)


def test_vmapped_seeds_equal_separate_runs(tiny):
    train = cql.make_train(tiny_config(), tiny)
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(2)])
    batched_state, batched_metrics = jax.jit(jax.vmap(train))(keys)
    single = jax.jit(train)
    for i in range(2):
        state, metrics = single(keys[i])
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(batched_state)):
            np.testing.assert_allclose(a, b[i], rtol=2e-5, atol=1e-6)
        for name in metrics:
            np.testing.assert_allclose(metrics[name], batched_metrics[name][i], rtol=2e-5, atol=1e-6)
    assert int(state.step) == 20 and all(np.all(np.isfinite(v)) for v in metrics.values())


# ------------------------------------------------------------------------------------------------
# Configs and the command line
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module, default", [(cql_mujoco, "hopper-medium-v2"), (cql_antmaze, "antmaze-umaze-v0")])
def test_every_config_variant_loads(module, default):
    assert module.get_config().dataset == default
    assert len(module.VARIANTS) >= (15 if module is cql_mujoco else 6)
    for variant in module.VARIANTS:
        config = module.get_config(variant)
        assert config.dataset == variant
        configuration.validate_shared(config)
        cql.validate_config(config)
    path = f"{ROOT}/configs/{module.__name__.split('.')[-1]}.py:{module.VARIANTS[-1]}"
    parsed = experiment.parse_config(["cql", f"--config={path}"], "configs/cql_mujoco.py")
    assert parsed.dataset == module.VARIANTS[-1] and parsed.lagrange == (module is cql_antmaze)


def test_antmaze_config_follows_the_cql_authors_recipe():
    """Bug: the authors' AntMaze script (aviralkumar2907/CQL cql_antmaze_new.py, README) run with other settings."""
    c = cql_antmaze.get_config()
    assert (c.lagrange, c.min_q_weight, c.max_target_backup, c.backup_entropy) == (True, 5.0, False, False)
    assert (c.hidden_dims, c.bc_steps, c.log_alpha_prime_init, c.total_steps) == ((256, 256, 256), 40_000, 0.0, 3e6)
    assert (c.reward_scale, c.reward_bias, c.policy_lr, c.critic_lr, c.eval_episodes) == (4.0, -2.0, 1e-4, 3e-4, 100)
    old = cql_antmaze.get_config("antmaze-umaze-v2,jaxcql")  # the previous recipe, by name
    assert (old.dataset, old.hidden_dims, old.max_target_backup, old.target_action_gap) == \
        ("antmaze-umaze-v2", (256, 256), True, 5.0)


@pytest.mark.parametrize("variant, tau, w", [(None, 5.0, 5.0), ("script_defaults", 5.0, 1.0)])
def test_antmaze_threshold_is_the_cql_authors_tau_over_w(variant, tau, w):
    """Bug: the authors' tau put where JaxCQL's form expects a bound on diff (their alpha' (w diff - tau) is
    diff <= tau / w; ours alpha' w (diff - gap) is diff <= gap). Worked by hand for tau = 5: the alpha' gradient
    -alpha' (w diff - tau) is 0 at diff = tau / w, negative above (alpha' grows), positive below (it shrinks)."""
    c = cql_antmaze.get_config(variant)
    assert (c.min_q_weight, c.target_action_gap) == (w, tau / w)
    grad = jax.grad(lambda log_a, d: cql.lagrange_multiplier_loss(log_a, d, c.min_q_weight, c.target_action_gap))
    log_alpha_prime = jnp.asarray(0.5)
    tight = jnp.full((2,), tau / w)
    assert float(grad(log_alpha_prime, tight)) == 0.0
    for delta in (0.25, -0.25):
        diff = tight + delta
        theirs = -math.exp(0.5) * (w * (tau / w + delta) - tau)  # d/dlog a' of -a' (w diff - tau), a' = e^0.5
        np.testing.assert_allclose(float(grad(log_alpha_prime, diff)), theirs, rtol=1e-5)
        assert np.sign(float(grad(log_alpha_prime, diff))) == -np.sign(delta)
    # the critics see the same slope in both forms: d/d diff of a' w (diff - tau / w) = d/d diff of a' (w diff - tau)
    slope = jax.grad(lambda d: cql.cql_critic_penalty(d, w, 2.0, c.target_action_gap, True))(jnp.asarray(0.3))
    assert float(slope) == pytest.approx(2.0 * w)


def test_cli_end_to_end(hopper_random_file, tmp_path):
    argv = ["cql", f"--config={ROOT}/configs/cql_mujoco.py", f"--config.dataset={hopper_random_file}",
            "--config.num_seeds=2", "--config.total_steps=20", "--config.eval_every=10", "--config.eval_episodes=1",
            "--config.batch_size=32", "--config.hidden_dims=(32, 32)", "--config.cql_n_actions=2",
            f"--config.log_dir={tmp_path}", "--config.run_name=e2e", "--config.progress=False"]
    assert cql.main(argv) == 0
    summary = json.loads((tmp_path / "e2e" / "summary.json").read_text())
    assert summary["algorithm"] == "cql" and len(summary["normalized_score_final"]) == 2
    assert summary["dataset_stats"]["act_dim"] == 3


@pytest.mark.parametrize("override, message", [("cql_temp=0", "cql_temp"), ("action_clip=1.0", "action_clip"),
                                               ("critic_activation=swish", "critic_activation")])
def test_cli_refuses_bad_config_with_one_line(override, message, tmp_path, capsys):
    argv = ["cql", f"--config={ROOT}/configs/cql_antmaze.py", f"--config.{override}",
            f"--config.log_dir={tmp_path / 'runs'}", "--config.progress=False"]
    assert cql.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "runs").exists()
