"""TD3+BC on D4RL-style MuJoCo locomotion: the TD3+BC authors' settings (sfujim/TD3_BC, Fujimoto & Gu 2021).

Variants: `configs/td3_bc_mujoco.py:<dataset>` for any D4RL locomotion name or shipped dataset.
Sources: `src:` in each comment (configs/__init__.py names the repositories).
"""

from common.config_base import D4RL_LOCOMOTION, apply_variant, base_config
from common.datasets import shipped_datasets

VARIANTS = list(D4RL_LOCOMOTION) + shipped_datasets()
NAMED_VARIANTS = {}


def get_config(variant=None):
    c = base_config()
    c.total_steps = 1_000_000  # src: TD3_BC main.py:44 (max_timesteps 1e6)
    c.eval_every = 5_000  # src: TD3_BC main.py:43 (eval_freq 5e3)
    c.eval_episodes = 10  # src: TD3_BC main.py:14 (eval_episodes=10)
    # --- algorithm ---
    c.actor_lr = 3e-4  # Adam learning rate of the actor; src: TD3_BC TD3_BC.py:81
    c.critic_lr = 3e-4  # Adam learning rate of the twin critics; src: TD3_BC TD3_BC.py:85
    c.hidden_dims = (256, 256)  # hidden layer widths of actor and critics (ReLU); src: TD3_BC TD3_BC.py:15-17,33-35
    c.init_style = "torch"  # "torch" = PyTorch Linear default init as in the reference; "flax" = LeCun normal;
    #   src: TD3_BC TD3_BC.py:15 (nn.Linear with its default init)
    c.discount = 0.99  # gamma; src: TD3_BC main.py:50
    c.tau = 5e-3  # soft target update rate; src: TD3_BC main.py:51
    c.policy_noise = 0.2  # std of the target policy smoothing noise; src: TD3_BC main.py:52
    c.noise_clip = 0.5  # the smoothing noise is clipped to +-noise_clip; src: TD3_BC main.py:53
    c.policy_freq = 2  # critic updates per actor (and target) update; src: TD3_BC main.py:54
    c.alpha = 2.5  # lambda = alpha / mean|Q|: weight of the RL term against behaviour cloning; src: TD3_BC main.py:56
    c.normalize_states = True  # normalise states by the dataset's mean and std; src: TD3_BC main.py:57
    c.normalization_eps = 1e-3  # added to the std; src: TD3_BC utils.py:52
    c.bc_only = False  # drop the Q term: plain behaviour cloning with the same actor (the BC baseline); src: not
    #   published: this project's choice (TD3+BC by default; True gives the BC baseline of the same network)
    return apply_variant(c, variant, NAMED_VARIANTS)
