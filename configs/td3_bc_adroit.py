"""TD3+BC on D4RL Adroit.

The TD3+BC authors ran locomotion only (sfujim/TD3_BC has no Adroit setting) and no published TD3+BC Adroit
setting was found here, so this file keeps the authors' locomotion settings (configs/td3_bc_mujoco.py, rewards
unchanged) with the budget of MISA's Adroit runs.
Variants: `configs/td3_bc_adroit.py:<dataset>` for every D4RL Adroit dataset (-v0, -v1).
"""

from common.config_base import apply_variant
from configs import d4rl_names, td3_bc_mujoco

VARIANTS = d4rl_names("adroit")
NAMED_VARIANTS = {}


def get_config(variant=None):
    c = td3_bc_mujoco.get_config()
    c.dataset = "pen-human-v0"  # src: SEEM scripts/launch_job.sh:43-47 (the -v0 datasets MISA's comparison ran)
    c.domain = "adroit"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 1_000_000  # src: TD3_BC main.py:44; SEEM scripts/launch_job.sh:47 (MISA's Adroit: 1000 epochs)
    return apply_variant(c, variant, NAMED_VARIANTS)
