"""MISA on D4RL FrankaKitchen (-v0), with the authors' Kitchen settings.

Variants: `configs/misa_kitchen.py:<dataset>` for kitchen-complete/partial/mixed-v0.
"""

from common.config_base import apply_variant, base_config
from configs.misa_mujoco import misa_defaults

VARIANTS = ["kitchen-complete-v0", "kitchen-partial-v0", "kitchen-mixed-v0"]


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "kitchen-partial-v0"
    c.domain = "kitchen"  # datasets of another domain are refused (each domain has its own evaluation protocol)
    c.total_steps = 1_000_000
    c.eval_every = 10_000
    c.eval_episodes = 10
    # --- Kitchen overrides (authors' launch settings) ---
    c.bc_weight = 3.0  # gamma2: stronger likelihood term
    c.layer_norm = True  # LayerNorm in policy and critics
    c.critic_lr = 1e-4  # critics learn more slowly
    c.reward_transform = "minmax"  # rewards scaled linearly onto [-1, 1]
    return apply_variant(c, variant, {})
