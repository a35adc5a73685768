"""Loss terms that more than one method file uses, each a small pure function with its formula.

    critic_td_loss            L_TD = sum_i mean_B (Q_i(s, a) - y)^2, y held fixed        (TD3+BC, CQL, MISA)
    alpha_prime_value         alpha' = clip(exp(log alpha'), 0, ALPHA_PRIME_MAX)          (CQL, MISA)
    lagrange_multiplier_loss  L_alpha' = -mean_i alpha' w (penalty_i - gap)               (CQL, MISA)

Shapes: C critics (2 in every method here), B states. A loss that only one method uses stays in its file.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Upper clip of the Lagrange multiplier alpha' (JaxCQL's and the MISA authors' code).
ALPHA_PRIME_MAX = 1e6
# Where log alpha' may start: above log(1e6) alpha' is clipped and never moves (its gradient is 0; above ~88 NaN).
LOG_ALPHA_PRIME_INIT_RANGE = f"(-inf, {math.log(ALPHA_PRIME_MAX)}]"


def critic_td_loss(q_data, target):
    """L_TD = sum_i mean_B (Q_i(s, a) - y)^2, y held fixed; q_data (C, B), target (B,) -> ()."""
    return jnp.sum(jnp.mean((q_data - jax.lax.stop_gradient(target)) ** 2, axis=-1))


def alpha_prime_value(log_alpha_prime):
    """alpha' = clip(exp(log alpha'), 0, 1e6)."""
    return jnp.clip(jnp.exp(log_alpha_prime), 0.0, ALPHA_PRIME_MAX)


def lagrange_multiplier_loss(log_alpha_prime, penalty, min_q_weight, target_action_gap):
    """L_alpha' = -mean_i alpha' * w * (penalty_i - gap), penalty (C,) held fixed: alpha' grows while it exceeds gap.

    With two critics this is the MISA authors' -0.5 * sum_i.
    """
    return -jnp.mean(alpha_prime_value(log_alpha_prime) * min_q_weight
                     * (jax.lax.stop_gradient(penalty) - target_action_gap))
