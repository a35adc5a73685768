"""One training step of our MISA and CQL against the authors' code (sail-sg/MISA), on recorded inputs.

tests/fixtures/parity.npz holds, per case, the inputs of one step (parameters, targets, temperatures, a batch
with terminals, every random draw: the normals behind each policy sample, CQL's uniform actions, the HMC
momenta and accept-test uniforms the authors' tensorflow-probability kernel drew) and what the authors' code
computed from them (tools/parity/generate.py, run in an environment with the authors' code; tools/parity/README.md
says how to regenerate it). Here our step runs on the same inputs, the draws injected through each algorithm's
`draw_step_noise` and the batch through `buffer.sample_batch`, and must agree on every loss, gradient, updated
parameter and soft-updated target.

Tolerance: both codebases compute in float32 with different operation orders (one critic ensemble call on
concatenated actions vs. separate calls, logsumexp over differently laid out sets, a hand-written HMC vs.
tensorflow-probability's), so agreement is to rounding, not bitwise. Each array is compared with
max|ours - theirs| <= RTOL * max|theirs| (RTOL = 1e-4: float32 rounding through a two-layer network, a
logsumexp over 50 samples and 55 HMC iterations measured <= 4e-6 on losses and gradients and <= 1.4e-5 on the
HMC samples, while a wrong term - a different normalisation, HMC step-size adaptation rate or Lagrange gap -
moved them by 2e-4 to 1.5 when applied by hand). After one Adam step
from a fresh optimiser the update is -lr * g / (|g| + 1e-8), about -lr * sign(g), so updated parameters are
compared to an absolute 1e-6 (lr = 1e-4 or 3e-4: a sign error moves an entry by 2e-4 or more).

Known difference, accounted for below: the authors' code normalises the log-partition by log(batch size) where
the bound has log N_set (N_set = N, +1 when the dataset action joins the set); their penalty is ours minus
log(B / N_set), a constant in the losses. With the Lagrange multiplier this constant moves the threshold:
`gap_normalisation="batch"` (configs/misa_antmaze.py) compares the authors' gap in their units, and the
misa_lagrange case checks that it reproduces their step exactly. The authors' CQL mode subtracts log(batch size)
too (their `log_k_norm`); our CQL, as JaxCQL, does not.
"""

from __future__ import annotations

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT

from algorithms import cql, misa
from common import buffer
from common.datasets import Transitions
from configs import cql_mujoco, misa_antmaze, misa_mujoco

FIXTURE = ROOT / "tests" / "fixtures" / "parity.npz"
RTOL = 1e-4  # of an array's largest entry (see the module docstring)
PARAM_ATOL = 1e-6  # updated parameters after one fresh Adam step
ADAM_B1 = 0.9  # optax.adam's default: mu after one step from zero is (1 - b1) * gradient


@pytest.fixture(scope="module")
def fixture():
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


def case_arrays(fixture, name):
    prefix = f"{name}/"
    arrays = {k[len(prefix):]: v for k, v in fixture.items() if k.startswith(prefix)}
    assert arrays, f"no case '{name}' in {FIXTURE}"
    return arrays, json.loads(str(arrays["settings"]))


# ------------------------------------------------------------------------------------------------
# The fixture's canonical names <-> our parameter trees
# ------------------------------------------------------------------------------------------------


def mlp_paths(layer_norm):
    """canonical suffix -> path inside our MLP module (common/networks.py)."""
    paths = {}
    for i in range(3):
        paths[f"w{i}"] = ("MLP_0", f"Linear_{i}", "Dense_0", "kernel")
        paths[f"b{i}"] = ("MLP_0", f"Linear_{i}", "Dense_0", "bias")
    if layer_norm:
        for i in range(2):
            paths[f"ln{i}/scale"] = ("MLP_0", f"LayerNorm_{i}", "scale")
            paths[f"ln{i}/bias"] = ("MLP_0", f"LayerNorm_{i}", "bias")
    return paths


def set_path(tree, path, value):
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = jnp.asarray(value, jnp.float32)


def get_path(tree, path):
    for key in path:
        tree = tree[key]
    return np.asarray(tree)


def policy_tree(arrays, prefix, layer_norm):
    tree = {}
    for suffix, path in mlp_paths(layer_norm).items():
        set_path(tree, ("params",) + path, arrays[f"{prefix}policy/{suffix}"])
    set_path(tree, ("params", "Scalar_0", "value"), arrays[f"{prefix}policy/log_std_multiplier"])
    set_path(tree, ("params", "Scalar_1", "value"), arrays[f"{prefix}policy/log_std_offset"])
    return tree


def critic_tree(arrays, prefix, layer_norm):
    """Both critics stacked on the ensemble axis; prefix "" (critics) or "target_"."""
    tree = {}
    for suffix, path in mlp_paths(layer_norm).items():
        stacked = np.stack([arrays[f"{prefix}qf{c}/{suffix}"] for c in range(2)])
        set_path(tree, ("params", "VmapCritic_0") + path, stacked)
    return tree


def policy_entries(tree, layer_norm):
    out = {f"policy/{s}": get_path(tree, ("params",) + p) for s, p in mlp_paths(layer_norm).items()}
    out["policy/log_std_multiplier"] = get_path(tree, ("params", "Scalar_0", "value"))
    out["policy/log_std_offset"] = get_path(tree, ("params", "Scalar_1", "value"))
    return out


def critic_entries(tree, prefix, layer_norm):
    out = {}
    for suffix, path in mlp_paths(layer_norm).items():
        stacked = get_path(tree, ("params", "VmapCritic_0") + path)
        out.update({f"{prefix}qf{c}/{suffix}": stacked[c] for c in range(2)})
    return out


# ------------------------------------------------------------------------------------------------
# Running our step on the fixture's inputs
# ------------------------------------------------------------------------------------------------


def fixture_batch(arrays):
    b = {k: jnp.asarray(arrays[f"in/batch/{k}"]) for k in ("observations", "actions", "rewards",
                                                            "next_observations", "dones")}
    return Transitions(**b)


def one_step(module, config, arrays, noise, monkeypatch):
    """Our agent's update for one step from the fixture's state, batch and draws; returns (state, metrics)."""
    settings = json.loads(str(arrays["settings"]))
    layer_norm = settings["layer_norm"]
    stats = {"obs_dim": settings["obs_dim"], "act_dim": settings["act_dim"]}
    agent = module.make_agent(config, types.SimpleNamespace(stats=stats))
    state = agent.init(jax.random.PRNGKey(0), agent.hparams)
    params = {k[len("in/params/"):]: v for k, v in arrays.items() if k.startswith("in/params/")}
    state = state._replace(
        policy=state.policy.replace(params=policy_tree(params, "", layer_norm)),
        critic=state.critic.replace(params=critic_tree(params, "", layer_norm)),
        critic_target=critic_tree(params, "target_", layer_norm),
        log_alpha=state.log_alpha.replace(params={"value": jnp.asarray(arrays["in/log_alpha"])}),
        log_alpha_prime=state.log_alpha_prime.replace(params={"value": jnp.asarray(arrays["in/log_alpha_prime"])}),
    )
    batch = fixture_batch(arrays)
    monkeypatch.setattr(module, "draw_step_noise", lambda *args, **kwargs: noise)
    monkeypatch.setattr(buffer, "sample_batch", lambda data, rng, batch_size: data)
    new_state, metrics = jax.jit(lambda s: agent.update(s, batch, 1))(state)
    return new_state, {k: float(v[0]) for k, v in metrics.items()}


def adam_gradient(train_state):
    """The gradient of a one-step-old optax.adam state: mu = (1 - b1) g."""
    return jax.tree.map(lambda mu: np.asarray(mu) / (1.0 - ADAM_B1), train_state.opt_state[0].mu)


class Agreement:
    """Collects max|ours - theirs| / max|theirs| per quantity, then asserts all of them at once."""

    def __init__(self, case):
        self.case, self.rows = case, []

    def close(self, name, ours, theirs, rtol=RTOL):
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        scale = max(np.max(np.abs(theirs)), 1e-12)
        self.rows.append((name, np.max(np.abs(ours - theirs)) / scale, rtol, "rel"))

    def params(self, name, ours, theirs, atol=PARAM_ATOL):
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        self.rows.append((name, np.max(np.abs(ours - theirs)), atol, "abs"))

    def check(self):
        for name, err, tol, kind in self.rows:
            print(f"parity {self.case:26s} {name:34s} {kind} {err:.2e} (tol {tol:.0e})")
        bad = [(name, f"{err:.2e}", tol) for name, err, tol, _ in self.rows if not err <= tol]
        assert not bad, f"{self.case}: disagreement with the authors' code: {bad}"


def compare_params(agree, new_state, arrays, layer_norm, theirs_prefix="out/params/"):
    ours = {**policy_entries(new_state.policy.params, layer_norm),
            **critic_entries(new_state.critic.params, "", layer_norm),
            **critic_entries(new_state.critic_target, "target_", layer_norm)}
    for key, value in ours.items():
        agree.params(f"new {key}", value, arrays[theirs_prefix + key])
    agree.params("new log_alpha", new_state.log_alpha.params["value"], arrays["out/params/log_alpha"])


def compare_grads(agree, new_state, arrays, layer_norm):
    grads = {**policy_entries(adam_gradient(new_state.policy), layer_norm),
             **critic_entries(adam_gradient(new_state.critic), "", layer_norm)}
    for key, value in grads.items():
        agree.close(f"grad {key}", value, arrays[f"out/grad/{key}"])
    agree.close("grad log_alpha", adam_gradient(new_state.log_alpha)["value"], arrays["out/grad/log_alpha"])


# ------------------------------------------------------------------------------------------------
# MISA
# ------------------------------------------------------------------------------------------------

MISA_CASES = ("misa_biased", "misa_unbiased", "misa_unbiased_small_step", "misa_lagrange")


def misa_config(settings):
    config = (misa_antmaze if settings["lagrange"] else misa_mujoco).get_config()
    config.update(dict(batch_size=settings["batch_size"], hidden_dims=(settings["hidden"],) * 2,
                       n_actions=settings["n_actions"], unbiased_grad=settings["unbiased_grad"],
                       hmc_num_samples=settings["n_actions"], hmc_burn_in=settings["mcmc_burnin_steps"],
                       hmc_leapfrog_steps=settings["mcmc_num_leapfrog_steps"],
                       hmc_init_step_size=float(settings["mcmc_step_size"])))
    # The settings our configs must already share with the authors' step (a drift here is a config change).
    expected = dict(policy_lr=settings["policy_lr"], critic_lr=settings["qf_lr"], alpha_lr=settings["policy_lr"],
                    discount=settings["discount"], tau=settings["soft_target_update_rate"],
                    min_q_weight=settings["min_q_weight"], bc_weight=settings["bc_weight_misa"],
                    unbiased_weight=settings["unbiased_weight"], lagrange=settings["lagrange"],
                    add_positive=settings["add_positive"], layer_norm=settings["layer_norm"],
                    critic_activation=settings["activation"], target_action_gap=settings["target_action_gap"],
                    policy_activation="relu", bound="misa", fixed_alpha=False, hmc_persist_step_size=False)
    for key, value in expected.items():
        assert config[key] == pytest.approx(value) if isinstance(value, float) else config[key] == value, key
    misa.validate_config(config)
    return config


def misa_noise(arrays, config):
    b, a = arrays["in/batch/actions"].shape
    iterations = config.hmc_burn_in + config.hmc_num_samples
    if config.unbiased_grad:
        momenta, log_u = arrays["in/noise/hmc_momenta"], arrays["in/noise/hmc_log_uniforms"]
    else:
        momenta, log_u = np.zeros((iterations, b, a), np.float32), np.zeros((iterations, b), np.float32)
    return misa.StepNoise(next_eps=jnp.asarray(arrays["in/noise/next_eps"]),
                          sample_eps=jnp.asarray(arrays["in/noise/current_eps"]),
                          new_eps=jnp.asarray(arrays["in/noise/new_eps"]),
                          hmc_momenta=jnp.asarray(momenta), hmc_log_uniforms=jnp.asarray(log_u))


@pytest.mark.parametrize("name", MISA_CASES)
def test_misa_step_matches_the_authors_code(fixture, name, monkeypatch):
    arrays, settings = case_arrays(fixture, name)
    config = misa_config(settings)
    new_state, metrics = one_step(misa, config, arrays, misa_noise(arrays, config), monkeypatch)
    layer_norm, w = settings["layer_norm"], settings["min_q_weight"]
    n_set = settings["n_actions"] + int(settings["add_positive"])
    log_norm_shift = np.log(settings["batch_size"] / n_set)  # our penalty - theirs
    agree = Agreement(name)

    theirs_penalty = np.array([arrays["out/aux/qf1_diff"], arrays["out/aux/qf2_diff"]])
    agree.close("mi_penalty (+ log B/N_set)", metrics["mi_penalty"], theirs_penalty.mean() + log_norm_shift)
    agree.close("q_target", metrics["q_target"], arrays["out/aux/td_target"].mean())
    agree.close("q_data", metrics["q_data"], np.mean([arrays["out/aux/q1_pred"], arrays["out/aux/q2_pred"]]))
    theirs_td = sum(np.mean((arrays[f"out/aux/q{c}_pred"] - arrays["out/aux/td_target"]) ** 2) for c in (1, 2))
    agree.close("td_loss", metrics["td_loss"], theirs_td)
    theirs_critic = arrays["out/loss/qf1"] + arrays["out/loss/qf2"]
    if settings["lagrange"]:  # the gap in the authors' units absorbs the shift: the losses are the same
        agree.close("critic_loss", metrics["critic_loss"], theirs_critic)
        agree.close("alpha_prime", metrics["alpha_prime"], arrays["out/aux/alpha_prime"])
        agree.close("grad log_alpha_prime", adam_gradient(new_state.log_alpha_prime)["value"],
                    arrays["out/grad/log_alpha_prime"])
        agree.params("new log_alpha_prime", new_state.log_alpha_prime.params["value"],
                     arrays["out/params/log_alpha_prime"])
    else:
        agree.close("critic_loss (- 2 w log B/N_set)", metrics["critic_loss"] - 2 * w * log_norm_shift, theirs_critic)
    agree.close("policy_loss", metrics["policy_loss"], arrays["out/loss/policy"])
    agree.close("bc_loss", metrics["bc_loss"], arrays["out/aux/bc_loss"])
    agree.close("log_pi", metrics["log_pi"], arrays["out/aux/log_pi"].mean())
    agree.close("alpha", metrics["alpha"], arrays["out/aux/alpha"])
    compare_grads(agree, new_state, arrays, layer_norm)
    compare_params(agree, new_state, arrays, layer_norm)
    agree.check()


@pytest.mark.parametrize("name", ("misa_unbiased", "misa_unbiased_small_step", "misa_lagrange"))
def test_hmc_chain_matches_the_authors_kernel(fixture, name):
    """Our HMC, fed the momenta and uniforms the authors' kernel drew, gives their samples of q(a|s)."""
    arrays, settings = case_arrays(fixture, name)
    config = misa_config(settings)
    layer_norm, act_dim = settings["layer_norm"], settings["act_dim"]
    params = {k[len("in/params/"):]: v for k, v in arrays.items() if k.startswith("in/params/")}
    policy_net = misa.TanhGaussianPolicy(act_dim, tuple(config.hidden_dims), "relu", layer_norm)
    critic_net = misa.CriticEnsemble(2, tuple(config.hidden_dims), settings["activation"], layer_norm, "flax", 1e-2)
    obs, data_actions = jnp.asarray(arrays["in/batch/observations"]), jnp.asarray(arrays["in/batch/actions"])
    mean, log_std = policy_net.apply(policy_tree(params, "", layer_norm), obs)
    critic_params = critic_tree(params, "", layer_norm)

    def log_q(a):
        return misa.tanh_gaussian_log_prob(mean, log_std, a) + jnp.min(critic_net.apply(critic_params, obs, a), 0)

    hmc = jax.jit(lambda m, u: misa.hmc_chain(log_q, data_actions, m, u, config.hmc_init_step_size,
                                              num_burn_in=config.hmc_burn_in,
                                              leapfrog_steps=config.hmc_leapfrog_steps))(
        jnp.asarray(arrays["in/noise/hmc_momenta"]), jnp.asarray(arrays["in/noise/hmc_log_uniforms"]))
    theirs = arrays["out/aux/mcmc_action_samples"]  # (B, N, A)
    ours = np.moveaxis(np.asarray(hmc.samples), 0, 1)
    agree = Agreement(name)
    agree.close("hmc samples", ours, theirs)
    agree.check()
    # The same accept/reject decision at every iteration and state (a flipped decision moves a sample by O(0.1)).
    np.testing.assert_array_equal(ours == data_actions[:, None], theirs == np.asarray(data_actions)[:, None])


# ------------------------------------------------------------------------------------------------
# CQL
# ------------------------------------------------------------------------------------------------


def test_cql_step_matches_the_authors_code(fixture, monkeypatch):
    arrays, settings = case_arrays(fixture, "cql")
    config = cql_mujoco.get_config()
    config.update(dict(batch_size=settings["batch_size"], hidden_dims=(settings["hidden"],) * 2,
                       cql_n_actions=settings["n_actions"]))
    expected = dict(policy_lr=settings["policy_lr"], critic_lr=settings["qf_lr"], discount=settings["discount"],
                    tau=settings["soft_target_update_rate"], min_q_weight=settings["min_q_weight"],
                    cql_temp=settings["temp"], backup_entropy=settings["backup_entropy"],
                    max_target_backup=settings["max_target_backup"], lagrange=settings["lagrange"],
                    use_automatic_entropy_tuning=settings["use_automatic_entropy_tuning"],
                    alpha_multiplier=settings["alpha_multiplier"], critic_activation=settings["activation"],
                    layer_norm=settings["layer_norm"], bc_steps=0)
    for key, value in expected.items():
        assert config[key] == value, key
    noise = cql.StepNoise(
        next_eps=jnp.concatenate([arrays["in/noise/next_eps"][:, None], arrays["in/noise/next_n_eps"]], axis=1),
        pi_eps=jnp.concatenate([arrays["in/noise/new_eps"][:, None], arrays["in/noise/current_eps"]], axis=1),
        uniform=jnp.asarray(arrays["in/noise/uniform"]))
    new_state, metrics = one_step(cql, config, arrays, noise, monkeypatch)
    log_b = np.log(settings["batch_size"])  # the authors' CQL mode subtracts log B inside the logsumexp
    w = settings["min_q_weight"]
    agree = Agreement("cql")
    theirs_diff = np.mean([arrays["out/aux/qf1_diff"], arrays["out/aux/qf2_diff"]])
    agree.close("cql_diff (+ log B)", metrics["cql_diff"], theirs_diff + log_b)
    agree.close("critic_loss (- 2 w log B)", metrics["critic_loss"] - 2 * w * log_b,
                arrays["out/loss/qf1"] + arrays["out/loss/qf2"])
    agree.close("q_target", metrics["q_target"], arrays["out/aux/td_target"].mean())
    agree.close("q_data", metrics["q_data"], np.mean([arrays["out/aux/q1_pred"], arrays["out/aux/q2_pred"]]))
    agree.close("policy_loss", metrics["policy_loss"], arrays["out/loss/policy"])
    agree.close("log_pi", metrics["log_pi"], arrays["out/aux/log_pi"].mean())
    agree.close("alpha", metrics["alpha"], arrays["out/aux/alpha"])
    compare_grads(agree, new_state, arrays, settings["layer_norm"])
    compare_params(agree, new_state, arrays, settings["layer_norm"])
    agree.check()


def test_antmaze_gap_equals_the_authors_threshold():
    """The AntMaze config's gap in the authors' units is our 3.0 + log(B / (N + 1)), whatever B and N are."""
    config = misa_antmaze.get_config()
    assert config.target_action_gap == 3.0 and config.gap_normalisation == "batch" and config.add_positive
    for batch_size, n_actions in ((256, 50), (16, 50), (512, 10)):
        config.update(dict(batch_size=batch_size, n_actions=n_actions))
        np.testing.assert_allclose(misa.lagrange_gap_offset(config), np.log(batch_size / (n_actions + 1)))
    assert misa.lagrange_gap_offset(misa_mujoco.get_config()) == 0.0
