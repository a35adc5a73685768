"""TD3+BC on D4RL AntMaze.

The TD3+BC authors ran locomotion only (sfujim/TD3_BC has no AntMaze setting); TD3+BC numbers on AntMaze in the
literature come from others' runs (e.g. the IQL paper's table). No published TD3+BC AntMaze setting was found here,
so this file keeps the authors' locomotion settings (configs/td3_bc_mujoco.py, rewards unchanged) and gives AntMaze
the evaluation protocol of this project's other AntMaze configs.
Variants: `configs/td3_bc_antmaze.py:<dataset>` for every D4RL AntMaze dataset (-v0, -v1, -v2).
"""

from common.config_base import apply_variant
from configs import d4rl_names, td3_bc_mujoco

VARIANTS = d4rl_names("antmaze")
NAMED_VARIANTS = {}


def get_config(variant=None):
    c = td3_bc_mujoco.get_config()
    c.dataset = "antmaze-umaze-v0"  # src: SEEM scripts/launch_job.sh:31 (the -v0 datasets MISA's comparison ran)
    c.domain = "antmaze"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 1_000_000  # src: TD3_BC main.py:44 (the authors' budget; no AntMaze budget published)
    c.eval_every = 50_000  # src: not published: this project's choice (100 episodes per evaluation are costly; the
    #   same interval as configs/misa_antmaze.py and configs/cql_antmaze.py)
    c.eval_episodes = 100  # the score is a success rate; src: IQL README.md (AntMaze: --eval_episodes=100), SEEM
    #   scripts/launch_job.sh:33 (MISA on AntMaze: --eval_n_trajs=100)
    return apply_variant(c, variant, NAMED_VARIANTS)
