"""TD3+BC on D4RL-style MuJoCo locomotion (Fujimoto & Gu 2021 settings).

Variants: `configs/td3_bc_mujoco.py:<dataset>` for any D4RL locomotion name or shipped dataset.
"""

from common.config_base import apply_variant, base_config


def get_config(variant=None):
    c = base_config()
    c.total_steps = 1_000_000
    c.eval_every = 5_000
    c.eval_episodes = 10
    # --- algorithm ---
    c.actor_lr = 3e-4  # Adam learning rate of the actor
    c.critic_lr = 3e-4  # Adam learning rate of the twin critics
    c.hidden_dims = (256, 256)  # hidden layer widths of actor and critics (ReLU)
    c.init_style = "torch"  # "torch" = PyTorch Linear default init as in the reference; "flax" = LeCun normal
    c.discount = 0.99  # gamma
    c.tau = 5e-3  # soft target update rate
    c.policy_noise = 0.2  # std of the target policy smoothing noise
    c.noise_clip = 0.5  # the smoothing noise is clipped to +-noise_clip
    c.policy_freq = 2  # critic updates per actor (and target) update
    c.alpha = 2.5  # lambda = alpha / mean|Q|: weight of the RL term against behaviour cloning
    c.normalize_states = True  # normalise states by the dataset's mean and std
    c.normalization_eps = 1e-3  # added to the std
    c.bc_only = False  # drop the Q term: plain behaviour cloning with the same actor (the BC baseline)
    return apply_variant(c, variant, {})
