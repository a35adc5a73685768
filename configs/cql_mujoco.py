"""CQL on D4RL-style MuJoCo locomotion (JaxCQL's settings: CQL(H), min_q_weight 5, no Lagrange).

Variants: `configs/cql_mujoco.py:<dataset>` for any name in VARIANTS (D4RL locomotion and shipped datasets).
"""

from common.config_base import D4RL_LOCOMOTION, apply_variant, base_config
from common.datasets import shipped_datasets

VARIANTS = list(D4RL_LOCOMOTION) + shipped_datasets()


def get_config(variant=None):
    c = base_config()
    c.total_steps = 1_000_000  # gradient steps: 1000 epochs x 1000 (JaxCQL defaults to 2000 epochs, the MISA code 1200)
    c.eval_every = 10_000  # JaxCQL evaluates every 10 epochs
    c.eval_episodes = 10
    # --- networks ---
    c.hidden_dims = (256, 256)  # hidden layer widths of the policy and both critics
    c.policy_activation = "relu"  # activation of the tanh-Gaussian policy
    c.critic_activation = "relu"  # activation of the critics (JaxCQL: relu; the MISA code's critics: elu)
    c.layer_norm = False  # LayerNorm after each hidden layer of policy and critics
    # --- SAC backbone ---
    c.policy_lr = 1e-4  # Adam learning rate of the policy (and of log alpha)
    c.critic_lr = 3e-4  # Adam learning rate of the twin critics (and of log alpha')
    c.discount = 0.99  # gamma
    c.tau = 5e-3  # soft target update rate of the critics
    c.use_automatic_entropy_tuning = True  # learn alpha towards the entropy target -|A|; else alpha = alpha_multiplier
    c.alpha_multiplier = 1.0  # alpha = alpha_multiplier * exp(log alpha) (a fixed alpha without tuning)
    c.backup_entropy = False  # subtract alpha log pi(a'|s') in the TD target
    c.max_target_backup = False  # target: max over cql_n_actions sampled a' of min_i Q'_i(s', a')
    c.bc_steps = 0  # first steps whose policy loss is alpha log pi(a~|s) - log pi(a_data|s) (BC warm-up)
    # --- conservative penalty ---
    c.cql_n_actions = 10  # N: samples per proposal (uniform, pi(.|s), pi(.|s')), 3N in the logsumexp
    c.cql_temp = 1.0  # temperature of the logsumexp
    c.min_q_weight = 5.0  # w: weight of the conservative penalty
    c.lagrange = False  # tune alpha' so that the penalty gap stays near target_action_gap
    c.target_action_gap = 1.0  # the Lagrange variant's target for diff (JaxCQL's default; unused without lagrange)
    c.log_alpha_prime_init = 1.0  # initial log alpha' (JaxCQL and the MISA code start at 1.0)
    # --- data ---
    c.reward_scale = 1.0  # rewards are r * reward_scale + reward_bias
    c.reward_bias = 0.0
    c.action_clip = 0.999  # dataset actions are clipped to +-action_clip (log pi is infinite at +-1)
    return apply_variant(c, variant, {})
