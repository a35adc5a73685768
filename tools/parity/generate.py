"""Records one training step of the MISA authors' code (sail-sg/MISA) on fixed inputs, for tests/test_parity.py.

Runs in a separate environment that can import the authors' code (jax 0.4.30, flax 0.8.5, optax 0.2.3,
tensorflow-probability 0.24.0, distrax 0.1.5, chex 0.1.86, numpy < 2, ml_collections); see tools/parity/README.md.
Nothing of this project is imported: the fixture holds plain arrays under canonical names, and the test maps
them onto this project's parameter trees.

    python tools/parity/generate.py --authors-src /tmp/authors-misa --out tests/fixtures/parity.npz

For every case the fixture holds, under "<case>/":
  in/...    the inputs: parameters of the policy and both critics (and the critics' targets), log alpha,
            log alpha', the batch, and every random draw of the step: the standard-normal draws behind the
            policy samples, the uniform actions (CQL) and the HMC momenta and log-uniforms (the draws the
            authors' tensorflow-probability kernel made, read off while it ran);
  out/...   what the authors' step computed: each loss as differentiated, its gradient, the TD target, Q at the
            dataset actions, the penalty gaps, the HMC samples, and the parameters after the Adam step and
            the soft target update.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import numpy as np

OBS_DIM, ACT_DIM, HIDDEN, BATCH = 5, 3, 32, 16
ARCH = f"{HIDDEN}-{HIDDEN}"
# The cases; "authors" are updates to the authors' MISA.get_default_config.
CASES = {
    # MISA, paper loss code, N = 50, biased gradient (no HMC term).
    "misa_biased": dict(authors=dict(misa=True, unbiased_grad=False), activation="elu", layer_norm=False),
    # MISA with the unbiased gradient and the authors' HMC settings (step size 1.0, 5 burn-in, 2 leapfrog).
    "misa_unbiased": dict(authors=dict(misa=True, unbiased_grad=True), activation="elu", layer_norm=False),
    # The same with a small HMC step size, so that most proposals are accepted and the chains move.
    "misa_unbiased_small_step": dict(authors=dict(misa=True, unbiased_grad=True), mcmc_step_size=0.05,
                                     activation="elu", layer_norm=False),
    # The authors' AntMaze settings: Lagrange multiplier, gap 3.0, dataset action in the logsumexp set,
    # LayerNorm, critic lr 1e-4, unbiased gradient on.
    "misa_lagrange": dict(authors=dict(misa=True, unbiased_grad=True, lagrange=True, target_action_gap=3.0,
                                       add_positive=True, qf_lr=1e-4), activation="elu", layer_norm=True),
    # The code's CQL mode (importance-sampled CQL(H), N = 10 per proposal), ReLU critics as JaxCQL.
    "cql": dict(authors=dict(misa=False, use_cql=True, importance_sample=True, n_actions=10),
                activation="relu", layer_norm=False),
}


def import_authors(src: Path):
    """Imports the authors' learner from their source tree, with the two shims their code needs today."""
    import jax

    jax.tree_multimap = jax.tree_util.tree_map  # removed from jax long ago; their target update calls it
    utils = types.ModuleType("utilities.utils")  # the real module imports wandb, which the learner never uses
    utils.prefix_metrics = lambda metrics, prefix: {f"{prefix}/{k}": v for k, v in metrics.items()}
    sys.modules["utilities.utils"] = utils
    sys.path.insert(0, str(src))
    import algos.misa as authors_misa
    import algos.model as authors_model
    from utilities import jax_utils

    return authors_misa, authors_model, jax_utils


# ------------------------------------------------------------------------------------------------
# Canonical parameters <-> the authors' trees
# ------------------------------------------------------------------------------------------------


def random_mlp(rng, prefix, sizes, layer_norm, output_scale):
    """Weights large enough that Q, log-std and the penalties are far from their near-zero initial values."""
    out = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        scale = output_scale if i == len(sizes) - 2 else 1.5
        out[f"{prefix}/w{i}"] = rng.normal(0, scale / np.sqrt(fan_in), (fan_in, fan_out))
        out[f"{prefix}/b{i}"] = rng.normal(0, 0.3, fan_out)
        if layer_norm and i < len(sizes) - 2:
            out[f"{prefix}/ln{i}/scale"] = 1.0 + rng.normal(0, 0.2, fan_out)
            out[f"{prefix}/ln{i}/bias"] = rng.normal(0, 0.2, fan_out)
    return out


def canonical_params(rng, layer_norm):
    params = random_mlp(rng, "policy", [OBS_DIM, HIDDEN, HIDDEN, 2 * ACT_DIM], layer_norm, 0.4)
    params["policy/log_std_multiplier"] = np.array(0.8)
    params["policy/log_std_offset"] = np.array(-0.7)
    for c in range(2):
        params.update(random_mlp(rng, f"qf{c}", [OBS_DIM + ACT_DIM, HIDDEN, HIDDEN, 1], layer_norm, 1.5))
    for c in range(2):  # targets: the critics moved a little (so that the soft update shows)
        for key in [k for k in params if k.startswith(f"qf{c}/")]:
            params[f"target_{key}"] = params[key] + rng.normal(0, 0.05, params[key].shape)
    return {k: np.asarray(v, np.float32) for k, v in params.items()}


def authors_mlp(params, prefix, layer_norm):
    """The authors' FullyConnectedNetwork: Dense_i, LayerNorm_i; their network also creates an unused
    LayerNorm after the output layer, filled here with its initial values (it gets no gradient)."""
    import jax.numpy as jnp

    tree = {}
    for i in range(3):
        tree[f"Dense_{i}"] = {"kernel": jnp.asarray(params[f"{prefix}/w{i}"]),
                              "bias": jnp.asarray(params[f"{prefix}/b{i}"])}
    if layer_norm:
        for i in range(2):
            tree[f"LayerNorm_{i}"] = {"scale": jnp.asarray(params[f"{prefix}/ln{i}/scale"]),
                                      "bias": jnp.asarray(params[f"{prefix}/ln{i}/bias"])}
        tree["LayerNorm_2"] = {"scale": jnp.ones(HIDDEN), "bias": jnp.zeros(HIDDEN)}
    return tree


def to_authors(params, layer_norm):
    import jax.numpy as jnp

    policy = {"params": {"base_network": authors_mlp(params, "policy", layer_norm),
                         "log_std_multiplier_module": {"value": jnp.asarray(params["policy/log_std_multiplier"])},
                         "log_std_offset_module": {"value": jnp.asarray(params["policy/log_std_offset"])}}}
    qf = [{"params": {"FullyConnectedNetwork_0": authors_mlp(params, f"{p}qf{c}", layer_norm)}}
          for p in ("", "target_") for c in range(2)]
    return policy, qf[:2], qf[2:]


def from_authors_mlp(tree, prefix, layer_norm):
    out = {}
    for i in range(3):
        out[f"{prefix}/w{i}"] = tree[f"Dense_{i}"]["kernel"]
        out[f"{prefix}/b{i}"] = tree[f"Dense_{i}"]["bias"]
    if layer_norm:
        for i in range(2):
            out[f"{prefix}/ln{i}/scale"] = tree[f"LayerNorm_{i}"]["scale"]
            out[f"{prefix}/ln{i}/bias"] = tree[f"LayerNorm_{i}"]["bias"]
    return out


def from_authors(policy, qf1, qf2, layer_norm, prefix=""):
    p = policy["params"]
    out = from_authors_mlp(p["base_network"], prefix + "policy", layer_norm)
    out[prefix + "policy/log_std_multiplier"] = p["log_std_multiplier_module"]["value"]
    out[prefix + "policy/log_std_offset"] = p["log_std_offset_module"]["value"]
    for c, qf in enumerate((qf1, qf2)):
        out.update(from_authors_mlp(qf["params"]["FullyConnectedNetwork_0"], f"{prefix}qf{c}", layer_norm))
    return out


# ------------------------------------------------------------------------------------------------
# Recording what the authors' step computes
# ------------------------------------------------------------------------------------------------

# Locals of the authors' loss function recorded for the test (those that exist in a case).
AUX_NAMES = ("td_target", "q1_pred", "q2_pred", "qf1_diff", "qf2_diff", "log_pi", "bc_loss", "alpha",
             "alpha_prime", "new_actions", "mcmc_action_samples", "target_q_values")


class Recorder:
    """Reads values off the authors' jitted step with jax.debug.callback (the step itself is unchanged)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.calls, self.draws = [], {"normal": [], "uniform": []}

    def patch(self, authors_misa):
        import jax
        from tensorflow_probability.substrates.jax.internal import samplers

        original_vmg = authors_misa.value_and_multi_grad

        def recording_value_and_multi_grad(fun, n_outputs, argnums=0, has_aux=False):
            inner = original_vmg(fun, n_outputs, argnums=argnums, has_aux=has_aux)

            def wrapped(*args, **kwargs):
                (values, aux), grads = inner(*args, **kwargs)
                picked = {name: aux[name] for name in AUX_NAMES if name in aux}
                jax.debug.callback(lambda v, g, a: self.calls.append((v, g, a)), values, grads, picked)
                return (values, aux), grads

            return wrapped

        authors_misa.value_and_multi_grad = recording_value_and_multi_grad
        for kind in ("normal", "uniform"):
            original = getattr(samplers, kind)

            def recording(*args, _original=original, _kind=kind, **kwargs):
                out = _original(*args, **kwargs)
                jax.debug.callback(lambda x, k=_kind: self.draws[k].append(np.asarray(x)), out)
                return out

            setattr(samplers, kind, recording)


def hmc_draws(recorder, iterations):
    """The HMC kernel's draws in order: one momentum (B, A) and one uniform (B,) per iteration; the authors'
    step runs its loss (and so the chain) once per parameter group, so the same run repeats."""
    out = []
    for kind, shape in (("normal", (BATCH, ACT_DIM)), ("uniform", (BATCH,))):
        draws = recorder.draws[kind]
        if not draws or len(draws) % iterations:
            raise SystemExit(f"error: expected HMC {kind} draws in runs of {iterations}, got {len(draws)}")
        runs = np.stack(draws).reshape((-1, iterations) + shape)
        if not all(np.array_equal(runs[0], run) for run in runs):
            raise SystemExit(f"error: the HMC {kind} draws differ between the loss evaluations")
        out.append(runs[0])
    return out[0].astype(np.float32), np.log(out[1]).astype(np.float32)


def run_case(name, spec, authors_misa, authors_model, jax_utils, recorder, seed):
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    layer_norm = spec["layer_norm"]
    config = dict(target_entropy=-float(ACT_DIM), n_actions=50)
    config.update(spec["authors"])
    n = config["n_actions"]
    params = canonical_params(rng, layer_norm)

    policy = authors_model.TanhGaussianPolicy(OBS_DIM, ACT_DIM, ARCH, use_layer_norm=layer_norm)
    qf = authors_model.FullyConnectedQFunction(OBS_DIM, ACT_DIM, ARCH, use_layer_norm=layer_norm,
                                               activation=spec["activation"])
    jax_utils.init_rng(seed)
    agent = authors_misa.MISA(config, policy, qf)
    if "mcmc_step_size" in spec:  # their default is the int 1, which their type-safe config cannot turn into a float
        agent.config = type(agent.config)(agent.config.to_dict(), type_safe=False)
        agent.config.mcmc_step_size = spec["mcmc_step_size"]
    cfg = agent.config

    policy_params, qf_params, target_params = to_authors(params, layer_norm)
    log_alpha = np.float32(-0.4)
    log_alpha_prime = np.float32(0.3)
    states = dict(agent._train_states)
    for key, value in (("policy", policy_params), ("qf1", qf_params[0]), ("qf2", qf_params[1])):
        assert jax.tree_util.tree_structure(states[key].params) == jax.tree_util.tree_structure(value), key
        states[key] = states[key].replace(params=value)
    states["log_alpha"] = states["log_alpha"].replace(params={"params": {"value": jnp.asarray(log_alpha)}})
    if cfg.lagrange:
        states["log_alpha_prime"] = states["log_alpha_prime"].replace(
            params={"params": {"value": jnp.asarray(log_alpha_prime)}})
    targets = {"qf1": target_params[0], "qf2": target_params[1]}

    # A batch with terminals and non-terminals, both reward signs, actions up to the clip +-0.999.
    batch = dict(observations=rng.normal(size=(BATCH, OBS_DIM)), next_observations=rng.normal(size=(BATCH, OBS_DIM)),
                 actions=np.clip(rng.uniform(-1.2, 1.2, (BATCH, ACT_DIM)), -0.999, 0.999),
                 rewards=rng.normal(size=BATCH), dones=(np.arange(BATCH) % 4 == 0).astype(np.float64))
    batch = {k: np.asarray(v, np.float32) for k, v in batch.items()}

    # The keys the authors' loss splits off its rng, in order, and the draws they give (as distrax draws).
    step_rng = jax.random.PRNGKey(1000 + seed)
    keys, r = [], step_rng
    for _ in range(6):
        r, k = jax.random.split(r)
        keys.append(k)
    draws = {
        "new_eps": jax.random.normal(keys[0], (1, BATCH, ACT_DIM))[0],
        "next_eps": jax.random.normal(keys[1], (1, BATCH, ACT_DIM))[0],
        "uniform": jax.random.uniform(keys[2], (BATCH, n, ACT_DIM), minval=-1.0, maxval=1.0),
        "current_eps": jax.random.normal(keys[3], (1, BATCH, n, ACT_DIM))[0],
        "next_n_eps": jax.random.normal(keys[4], (1, BATCH, n, ACT_DIM))[0],
    }

    recorder.reset()
    new_states, new_targets, _ = agent._train_step(states, targets, step_rng, {k: jnp.asarray(v) for k, v in
                                                                                     batch.items()}, False)
    jax.block_until_ready(new_states)
    jax.effects_barrier()
    if not recorder.calls:
        raise SystemExit("error: nothing was recorded from the authors' step")
    values, grads, aux = recorder.calls[0]
    model_keys = agent.model_keys

    # The key chain is theirs: the policy sample it gives is the one their loss used.
    check, _ = policy.apply(policy_params, keys[0], jnp.asarray(batch["observations"]))
    np.testing.assert_allclose(np.asarray(check), np.asarray(aux["new_actions"]), rtol=1e-5, atol=1e-6)

    out = {}
    for k, v in batch.items():
        out[f"in/batch/{k}"] = v
    for k, v in params.items():
        out[f"in/params/{k}"] = v
    out["in/log_alpha"] = log_alpha
    out["in/log_alpha_prime"] = log_alpha_prime
    used = ("new_eps", "next_eps", "current_eps") + (() if cfg.misa else ("uniform", "next_n_eps"))
    for k in used:
        out[f"in/noise/{k}"] = np.asarray(draws[k], np.float32)
    if cfg.misa and cfg.unbiased_grad:
        iterations = cfg.mcmc_burnin_steps + n
        out["in/noise/hmc_momenta"], out["in/noise/hmc_log_uniforms"] = hmc_draws(recorder, iterations)

    for i, key in enumerate(model_keys):
        out[f"out/loss/{key}"] = np.asarray(values[i])
        grad = grads[i][key]
        if key == "policy":
            tree = from_authors(grad, grads[i]["qf1"], grads[i]["qf2"], layer_norm)
            out.update({f"out/grad/{k}": v for k, v in tree.items() if k.startswith("policy/")})
        elif key in ("qf1", "qf2"):
            c = int(key[-1]) - 1
            mlp = from_authors_mlp(grad["params"]["FullyConnectedNetwork_0"], f"qf{c}", layer_norm)
            out.update({f"out/grad/{k}": v for k, v in mlp.items()})
        else:
            out[f"out/grad/{key}"] = np.asarray(grad["params"]["value"])
    for k, v in aux.items():
        if k != "new_actions":  # checked above
            out[f"out/aux/{k}"] = np.asarray(v)
    updated = from_authors(new_states["policy"].params, new_states["qf1"].params, new_states["qf2"].params,
                           layer_norm)
    out.update({f"out/params/{k}": v for k, v in updated.items()})
    for c, key in enumerate(("qf1", "qf2")):
        mlp = from_authors_mlp(new_targets[key]["params"]["FullyConnectedNetwork_0"], f"target_qf{c}", layer_norm)
        out.update({f"out/params/{k}": v for k, v in mlp.items()})
    out["out/params/log_alpha"] = np.asarray(new_states["log_alpha"].params["params"]["value"])
    if cfg.lagrange:
        out["out/params/log_alpha_prime"] = np.asarray(new_states["log_alpha_prime"].params["params"]["value"])
    settings = dict(cfg.to_dict(), activation=spec["activation"], layer_norm=layer_norm, batch_size=BATCH,
                    obs_dim=OBS_DIM, act_dim=ACT_DIM, hidden=HIDDEN, model_keys=list(model_keys))
    settings = {k: (v if isinstance(v, (bool, int, float, str, list)) else str(v)) for k, v in settings.items()}
    out["settings"] = np.asarray(json.dumps(settings, sort_keys=True))
    if "mcmc_action_samples" in aux:
        moved = np.any(np.asarray(aux["mcmc_action_samples"]) != batch["actions"][:, None], axis=-1).mean()
        print(f"{name}: fraction of HMC samples away from the dataset action {moved:.3f}")
    return {f"{name}/{k}": v for k, v in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-src", required=True, type=Path,
                        help="a source tree of sail-sg/MISA (the folder holding algos/ and utilities/)")
    parser.add_argument("--out", required=True, type=Path, help="the .npz fixture to write")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    args = parser.parse_args(argv)
    if not (args.authors_src / "algos" / "misa.py").is_file():
        print(f"error: {args.authors_src} holds no algos/misa.py (give the authors' source tree)", file=sys.stderr)
        return 2
    names = args.cases.split(",")
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown case(s) {unknown}; known: {list(CASES)}", file=sys.stderr)
        return 2
    authors_misa, authors_model, jax_utils = import_authors(args.authors_src.resolve())
    import jax

    recorder = Recorder()
    recorder.patch(authors_misa)
    fixture = {"versions": np.asarray(json.dumps({"jax": jax.__version__}))}
    for name in names:
        seed = list(CASES).index(name)
        fixture.update(run_case(name, CASES[name], authors_misa, authors_model, jax_utils, recorder, seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **fixture)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB, {len(names)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
