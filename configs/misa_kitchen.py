"""MISA on D4RL FrankaKitchen, with the MISA authors' Kitchen launch settings.

Source of the overrides: the authors' launch script for the MISA learner (SEEM scripts/launch_job.sh:39, see
configs/__init__.py; the released sail-sg/MISA has no launch script). Its command on kitchen-complete/partial/mixed-v0:
--n_epochs 1000 --algo_cfg.bc_weight_misa=3.0 --use_layer_norm=True --algo_cfg.qf_lr=0.0001
--algo_cfg.detach_pi=True, the rest (entropy tuning, HMC term, no observation normalisation) at the defaults.
`detach_pi` changes nothing MISA computes (MISA algos/misa.py:167-176: it stops the gradient of log pi in the
alpha loss, whose gradient reaches only log alpha; :336 is in the CQL branch), so this project has no such field.
The reward transform is the code's (MISA experiments/main.py:141-144).
Variants: `configs/misa_kitchen.py:<dataset>` for kitchen-complete/partial/mixed-v0; `:released_code` (or
`:<dataset>,released_code`) runs what sail-sg/MISA's experiments/main.py runs with no flag.
"""

from common.config_base import apply_variant, base_config
from configs import d4rl_names
from configs.misa_mujoco import misa_defaults, released_code

VARIANTS = d4rl_names("kitchen")
NAMED_VARIANTS = {"released_code": released_code}


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "kitchen-partial-v0"  # src: SEEM scripts/launch_job.sh:37
    c.domain = "kitchen"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 1_000_000  # src: SEEM scripts/launch_job.sh:39 (--n_epochs 1000 of 1000 steps)
    c.eval_every = 10_000  # src: MISA experiments/main.py:62 (eval_period 10 epochs; the launch keeps it)
    c.eval_episodes = 10  # src: MISA experiments/main.py:63 (the launch keeps it)
    # --- Kitchen overrides ---
    c.bc_weight = 3.0  # gamma2: stronger likelihood term; src: SEEM scripts/launch_job.sh:39
    #   (--algo_cfg.bc_weight_misa=3.0)
    c.layer_norm = True  # LayerNorm in policy and critics; src: SEEM scripts/launch_job.sh:39 (--use_layer_norm=True)
    c.critic_lr = 1e-4  # critics learn more slowly; src: SEEM scripts/launch_job.sh:39 (--algo_cfg.qf_lr=0.0001)
    c.reward_transform = "minmax"  # rewards scaled linearly onto [-1, 1]; src: MISA experiments/main.py:141-144
    return apply_variant(c, variant, NAMED_VARIANTS)
