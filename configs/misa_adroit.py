"""MISA on D4RL Adroit, with the MISA authors' Adroit launch settings.

Source of the overrides: the authors' launch script for the MISA learner (SEEM scripts/launch_job.sh:47, see
configs/__init__.py; the released sail-sg/MISA has no launch script). Its command on pen/hammer/door/relocate
human and cloned -v0: --n_epochs 1000 --algo_cfg.use_automatic_entropy_tuning=False --algo_cfg.bc_weight_misa=5.0
--use_layer_norm=True (and target_action_gap 3.0, unused without the Lagrange form; detach_pi False, the default),
the rest at the defaults (critic lr 3e-4). The reward transform is the code's (MISA experiments/main.py:141-144).
Variants: `configs/misa_adroit.py:<dataset>` for every D4RL Adroit dataset (-v0, -v1); `:released_code` (or
`:<dataset>,released_code`) runs what sail-sg/MISA's experiments/main.py runs with no flag.
"""

from common.config_base import apply_variant, base_config
from configs import d4rl_names
from configs.misa_mujoco import misa_defaults, released_code

VARIANTS = d4rl_names("adroit")
NAMED_VARIANTS = {"released_code": released_code}


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "pen-human-v0"  # src: SEEM scripts/launch_job.sh:43-47
    c.domain = "adroit"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 1_000_000  # src: SEEM scripts/launch_job.sh:47 (--n_epochs 1000 of 1000 steps)
    c.eval_every = 10_000  # src: MISA experiments/main.py:62 (eval_period 10 epochs; the launch keeps it)
    c.eval_episodes = 10  # src: MISA experiments/main.py:63 (the launch keeps it)
    # --- Adroit overrides ---
    c.bc_weight = 5.0  # gamma2: stronger likelihood term; src: SEEM scripts/launch_job.sh:47
    #   (--algo_cfg.bc_weight_misa=5.0)
    c.fixed_alpha = True  # entropy temperature fixed at 1; src: SEEM scripts/launch_job.sh:47
    #   (--algo_cfg.use_automatic_entropy_tuning=False; alpha = alpha_multiplier = 1, MISA algos/misa.py:41,186)
    c.layer_norm = True  # LayerNorm in policy and critics; src: SEEM scripts/launch_job.sh:47 (--use_layer_norm=True)
    c.reward_transform = "minmax"  # rewards scaled linearly onto [-1, 1]; src: MISA experiments/main.py:141-144
    return apply_variant(c, variant, NAMED_VARIANTS)
