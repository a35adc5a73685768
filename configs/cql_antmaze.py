"""CQL on D4RL AntMaze: the Lagrange variant with the CQL authors' AntMaze recipe.

Rewards (r - 0.5) * 4, alpha' tuned to a penalty gap of 5, max-target backup, 100 evaluation episodes.
Variants: `configs/cql_antmaze.py:<dataset>` for any name in VARIANTS.
"""

from common.config_base import apply_variant
from configs import cql_mujoco

VARIANTS = [
    f"antmaze-{maze}-v0"
    for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")
]


def get_config(variant=None):
    c = cql_mujoco.get_config()
    c.dataset = "antmaze-umaze-v0"
    c.domain = "antmaze"  # datasets of another domain are refused (each domain has its own evaluation protocol)
    c.total_steps = 1_000_000
    c.eval_every = 50_000  # 100 AntMaze episodes per evaluation are costly; 20 evaluations per run
    c.eval_episodes = 100
    c.policy_lr = 1e-4  # the CQL authors' AntMaze setting
    c.lagrange = True  # alpha' maximises alpha' * w * (diff - target_action_gap)
    c.target_action_gap = 5.0  # the CQL authors' AntMaze threshold (lagrange_thresh)
    c.min_q_weight = 5.0
    c.max_target_backup = True
    c.reward_scale = 4.0  # (r - 0.5) * 4 = 4 r - 2, as the CQL and MISA code centre AntMaze rewards
    c.reward_bias = -2.0
    return apply_variant(c, variant, {})
