"""MISA on D4RL AntMaze, with the MISA authors' AntMaze launch settings.

Source of the overrides: the authors' launch script for the MISA learner (SEEM scripts/launch_job.sh:33, see
configs/__init__.py; the released sail-sg/MISA has no launch script). Its command on every AntMaze -v0 dataset:
--algo_cfg.lagrange=True --algo_cfg.target_action_gap=3.0 --algo_cfg.add_positive=True --use_layer_norm=True
--algo_cfg.qf_lr=0.0001 --n_epochs=2000 --eval_period=50 --eval_n_trajs=100, the rest (bc weight 0.5, HMC term,
entropy tuning, no observation normalisation) at the defaults. The reward transform is the code's
(MISA experiments/main.py:139-140).
Variants: `configs/misa_antmaze.py:<dataset>` for every D4RL AntMaze dataset (-v0, -v1, -v2);
`:released_code` (or `:<dataset>,released_code`) runs what sail-sg/MISA's experiments/main.py runs with no flag
(its defaults and this reward transform: no Lagrange, no LayerNorm, 1.2M steps, 10 episodes every 10k).
"""

from common.config_base import apply_variant, base_config
from configs import d4rl_names
from configs.misa_mujoco import misa_defaults, released_code

VARIANTS = d4rl_names("antmaze")
NAMED_VARIANTS = {"released_code": released_code}


def get_config(variant=None):
    c = misa_defaults(base_config())
    c.dataset = "antmaze-umaze-v0"  # src: SEEM scripts/launch_job.sh:31 (the -v0 datasets)
    c.domain = "antmaze"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 2_000_000  # src: SEEM scripts/launch_job.sh:33 (--n_epochs=2000 of 1000 steps)
    c.eval_every = 50_000  # src: SEEM scripts/launch_job.sh:33 (--eval_period=50 epochs)
    c.eval_episodes = 100  # src: SEEM scripts/launch_job.sh:33 (--eval_n_trajs=100)
    # --- AntMaze overrides ---
    c.lagrange = True  # penalty scaled by a learned alpha' towards target_action_gap; src: SEEM
    #   scripts/launch_job.sh:33 (--algo_cfg.lagrange=True)
    c.target_action_gap = 3.0  # the Lagrange threshold, in the authors' units (next line); src: SEEM
    #   scripts/launch_job.sh:33 (--algo_cfg.target_action_gap=3.0)
    c.gap_normalisation = "batch"  # as the authors' code: = our gap 3.0 + log(batch_size / (n_actions + 1));
    #   src: MISA algos/misa.py:379-381 (log_k_norm subtracts log(batch size))
    c.add_positive = True  # the dataset action joins the log-partition sample set; src: SEEM
    #   scripts/launch_job.sh:33 (--algo_cfg.add_positive=True)
    c.layer_norm = True  # LayerNorm in policy and critics; src: SEEM scripts/launch_job.sh:33 (--use_layer_norm=True)
    c.critic_lr = 1e-4  # critics (and alpha') learn more slowly; src: SEEM scripts/launch_job.sh:33
    #   (--algo_cfg.qf_lr=0.0001)
    c.reward_transform = "antmaze"  # r -> (r - 0.5) * 4; src: MISA experiments/main.py:139-140
    return apply_variant(c, variant, NAMED_VARIANTS)
