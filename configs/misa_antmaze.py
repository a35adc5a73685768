"""MISA on D4RL AntMaze (-v0), with the authors' AntMaze settings.

Variants: `configs/misa_antmaze.py:<dataset>` for the six D4RL AntMaze datasets.
"""

from common.config_base import apply_variant, base_config
from configs.misa_mujoco import misa_defaults

VARIANTS = [
    "antmaze-umaze-v0",
    "antmaze-umaze-diverse-v0",
    "antmaze-medium-play-v0",
    "antmaze-medium-diverse-v0",
    "antmaze-large-play-v0",
    "antmaze-large-diverse-v0",
]


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "antmaze-umaze-v0"
    c.domain = "antmaze"  # datasets of another domain are refused (each domain has its own evaluation protocol)
    c.total_steps = 2_000_000
    c.eval_every = 50_000
    c.eval_episodes = 100
    # --- AntMaze overrides (authors' launch settings) ---
    c.lagrange = True  # penalty scaled by a learned alpha' towards target_action_gap
    c.target_action_gap = 3.0  # the Lagrange threshold, in the authors' units (next line)
    c.gap_normalisation = "batch"  # as the authors' code: = our gap 3.0 + log(batch_size / (n_actions + 1))
    c.add_positive = True  # the dataset action joins the log-partition sample set
    c.layer_norm = True  # LayerNorm in policy and critics
    c.critic_lr = 1e-4  # critics (and alpha') learn more slowly
    c.reward_transform = "antmaze"  # r -> (r - 0.5) * 4
    return apply_variant(c, variant, {})
