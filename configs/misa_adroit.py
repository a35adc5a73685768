"""MISA on D4RL Adroit (-v0), with the authors' Adroit settings.

Variants: `configs/misa_adroit.py:<dataset>` for pen/hammer/door/relocate, human and cloned.
"""

from common.config_base import apply_variant, base_config
from configs.misa_mujoco import misa_defaults

VARIANTS = [f"{task}-{kind}-v0" for task in ("pen", "hammer", "door", "relocate") for kind in ("human", "cloned")]


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "pen-human-v0"
    c.domain = "adroit"  # datasets of another domain are refused (each domain has its own evaluation protocol)
    c.total_steps = 1_000_000
    c.eval_every = 10_000
    c.eval_episodes = 10
    # --- Adroit overrides (authors' launch settings) ---
    c.bc_weight = 5.0  # gamma2: stronger likelihood term
    c.fixed_alpha = True  # entropy temperature fixed at 1
    c.layer_norm = True  # LayerNorm in policy and critics
    c.reward_transform = "minmax"  # rewards scaled linearly onto [-1, 1]
    return apply_variant(c, variant, {})
