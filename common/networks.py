"""Networks shared by the algorithms: MLP, deterministic tanh actor, tanh-Gaussian policy, critic ensemble
(and its first layer split into state and action halves).

Initialisation styles:
  * "torch": PyTorch's nn.Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    (what the TD3+BC reference code gets);
  * "flax": LeCun normal weights, zero biases, and the output layer scaled as the CQL/MISA reference
    code does (variance scaling `output_scale`, fan in, uniform; zero bias).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "elu": nn.elu, "tanh": nn.tanh, "gelu": nn.gelu}


def _torch_bias_init(fan_in: int):
    bound = 1.0 / jnp.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Linear(nn.Module):
    """A dense layer with the chosen initialisation style (see module docstring)."""

    features: int
    init_style: str = "flax"
    output_scale: float | None = None  # variance-scaling scale for an output layer ("flax" style)

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        if self.init_style == "torch":
            kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
            bias_init = _torch_bias_init(fan_in)
        elif self.output_scale is not None:
            kernel_init = nn.initializers.variance_scaling(self.output_scale, "fan_in", "uniform")
            bias_init = nn.initializers.zeros
        else:
            kernel_init, bias_init = nn.initializers.lecun_normal(), nn.initializers.zeros
        return nn.Dense(self.features, kernel_init=kernel_init, bias_init=bias_init)(x)


class MLP(nn.Module):
    """Hidden layers with an activation (optionally LayerNorm after each), then a linear output layer."""

    hidden_dims: Sequence[int]
    output_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    init_style: str = "flax"
    output_scale: float | None = None

    @nn.compact
    def __call__(self, x):
        act: Callable = ACTIVATIONS[self.activation]
        for width in self.hidden_dims:
            x = Linear(width, self.init_style)(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        return Linear(self.output_dim, self.init_style, self.output_scale)(x)


class DeterministicActor(nn.Module):
    """a = tanh(MLP(s)): the TD3 actor."""

    act_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "relu"
    init_style: str = "torch"

    @nn.compact
    def __call__(self, obs):
        return jnp.tanh(MLP(self.hidden_dims, self.act_dim, self.activation, init_style=self.init_style)(obs))


class Critic(nn.Module):
    """Q(s, a) = MLP(concat(s, a)); any leading batch shape."""

    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    init_style: str = "flax"
    output_scale: float | None = None

    @nn.compact
    def __call__(self, obs, actions):
        x = jnp.concatenate([obs, actions], axis=-1)
        q = MLP(self.hidden_dims, 1, self.activation, self.layer_norm, self.init_style, self.output_scale)(x)
        return q[..., 0]


class CriticEnsemble(nn.Module):
    """`num_critics` independent critics evaluated in one call (nn.vmap): output (num_critics, *batch)."""

    num_critics: int = 2
    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    init_style: str = "flax"
    output_scale: float | None = None

    @nn.compact
    def __call__(self, obs, actions):
        ensemble = nn.vmap(
            Critic,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        return ensemble(self.hidden_dims, self.activation, self.layer_norm, self.init_style, self.output_scale)(
            obs, actions
        )


# The critics' first layer on concat(s, a) is s·W_s + a·W_a + b (W = [W_s; W_a], the one kernel the module holds):
# a step that evaluates Q at many actions of the same state computes the state half once (same math, fewer FLOPs).


def _critic_layers(params):
    return params["params"]["VmapCritic_0"]["MLP_0"]


def critic_state_half(params, obs):
    """s·W_s + b of every critic's first layer (W_s: the kernel's first obs_dim rows): obs (..., S) -> (C, ..., H)."""
    first = _critic_layers(params)["Linear_0"]["Dense_0"]
    w_s = first["kernel"][:, : obs.shape[-1]]
    return jax.vmap(lambda w, b: jnp.dot(obs, w) + b)(w_s, first["bias"])


def critic_from_state_half(net: CriticEnsemble, params, state_half, actions):
    """Q_i(s, a) of a CriticEnsemble from its first layer's state half: state_half (C, ..., H) broadcasts against
    actions (..., A); returns (C, ...), what net.apply(params, s, a) returns up to float rounding."""
    activation, num_hidden = ACTIVATIONS[net.activation], len(net.hidden_dims)

    def dense(layer, x):
        return nn.Dense(layer["kernel"].shape[-1]).apply({"params": layer}, x)

    def one_critic(layers, half):
        kernel = layers["Linear_0"]["Dense_0"]["kernel"]
        x = half + jnp.dot(actions, kernel[kernel.shape[0] - actions.shape[-1]:])
        for i in range(num_hidden):
            if i:
                x = dense(layers[f"Linear_{i}"]["Dense_0"], x)
            if net.layer_norm:
                x = nn.LayerNorm().apply({"params": layers[f"LayerNorm_{i}"]}, x)
            x = activation(x)
        return dense(layers[f"Linear_{num_hidden}"]["Dense_0"], x)[..., 0]

    return jax.vmap(one_critic)(_critic_layers(params), state_half)


def first_critic(params):
    """The parameters of critic 1 alone, as a one-critic CriticEnsemble's (for a loss that reads Q1 only)."""
    return jax.tree.map(lambda x: x[:1], params)


class Scalar(nn.Module):
    """A single learnable scalar (log-std multiplier and offset of the tanh-Gaussian policy)."""

    init_value: float

    @nn.compact
    def __call__(self):
        return self.param("value", lambda _: jnp.asarray(self.init_value, jnp.float32))


class TanhGaussianPolicy(nn.Module):
    """pi(a|s) = tanh(N(mean(s), std(s))), as in the CQL/MISA reference code.

    Returns (mean, log_std): mean clipped to [-9, 9]; log_std = m * raw + o with learnable scalars
    m (init 1) and o (init -1), clipped to [-5, 2]. Sampling and log-densities are the functions
    below, so one network call serves any number of samples.
    """

    act_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "relu"
    layer_norm: bool = False
    output_scale: float = 1e-2
    log_std_multiplier: float = 1.0
    log_std_offset: float = -1.0

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_dims, 2 * self.act_dim, self.activation, self.layer_norm, "flax", self.output_scale)(obs)
        mean, raw_log_std = jnp.split(out, 2, axis=-1)
        log_std = Scalar(self.log_std_multiplier)() * raw_log_std + Scalar(self.log_std_offset)()
        return jnp.clip(mean, -9.0, 9.0), jnp.clip(log_std, -5.0, 2.0)


def _log_one_minus_tanh_sq(pre_tanh):
    """log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|."""
    return 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))


def _gaussian_log_prob(pre_tanh, mean, log_std):
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi), axis=-1)


def tanh_gaussian_sample(mean, log_std, rng, num_samples: int | None = None):
    """Reparameterised samples and their log-densities.

    mean, log_std: (..., A). Returns actions (..., A) and log_probs (...), or with `num_samples`
    actions (..., num_samples, A) and log_probs (..., num_samples).
    """
    if num_samples is not None:
        mean, log_std = mean[..., None, :], log_std[..., None, :]
        shape = mean.shape[:-2] + (num_samples, mean.shape[-1])
    else:
        shape = mean.shape
    return tanh_gaussian_from_normal(mean, log_std, jax.random.normal(rng, shape))


def tanh_gaussian_from_normal(mean, log_std, eps):
    """a = tanh(mean + std * eps) and log pi(a|s), for given standard-normal draws eps (broadcast against mean)."""
    pre_tanh = mean + jnp.exp(log_std) * eps
    log_prob = _gaussian_log_prob(pre_tanh, mean, log_std) - jnp.sum(_log_one_minus_tanh_sq(pre_tanh), axis=-1)
    return jnp.tanh(pre_tanh), log_prob


def tanh_gaussian_log_prob(mean, log_std, actions):
    """log pi(a|s) of given actions in (-1, 1) (clip dataset actions first, e.g. to +-0.999)."""
    pre_tanh = jnp.arctanh(actions)
    return _gaussian_log_prob(pre_tanh, mean, log_std) - jnp.sum(_log_one_minus_tanh_sq(pre_tanh), axis=-1)
