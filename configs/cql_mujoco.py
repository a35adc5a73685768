"""CQL on D4RL-style MuJoCo locomotion: CQL(H), min_q_weight 5, no Lagrange, as JaxCQL implements it (the code the
MISA authors fork; its CQL mode is this algorithm) with the CQL authors' policy learning rate.

Variants: `configs/cql_mujoco.py:<dataset>` for any name in VARIANTS (D4RL locomotion and shipped datasets), and
named variants (alone or after a dataset, `hopper-medium-v2,jaxcql`):
  `jaxcql`       JaxCQL's own defaults where this file differs: policy lr 3e-4, 2M steps, 5 evaluation episodes;
  `cql_authors`  the CQL authors' locomotion command (aviralkumar2907/CQL README and cql_mujoco_new.py): 3x256
                 networks, a 40k-step BC warm-up, 3M steps.
Sources: `src:` in each comment (configs/__init__.py names the repositories).
"""

from common.config_base import D4RL_LOCOMOTION, apply_variant, base_config
from common.datasets import shipped_datasets

VARIANTS = list(D4RL_LOCOMOTION) + shipped_datasets()


def get_config(variant=None):
    c = base_config()
    c.total_steps = 1_000_000  # gradient steps; src: not published: this project's choice (the TD3+BC budget, TD3_BC
    #   main.py:44, for one locomotion budget; JaxCQL runs 2M, conservative_sac_main.py:42; the MISA code 1.2M)
    c.eval_every = 10_000  # src: JaxCQL JaxCQL/conservative_sac_main.py:45 (eval_period 10 epochs of 1000 steps)
    c.eval_episodes = 10  # src: MISA experiments/main.py:63 (JaxCQL evaluates 5, conservative_sac_main.py:46)
    # --- networks ---
    c.hidden_dims = (256, 256)  # hidden layer widths of the policy and both critics; src: JaxCQL
    #   JaxCQL/conservative_sac_main.py:36-37
    c.policy_activation = "relu"  # activation of the tanh-Gaussian policy; src: JaxCQL JaxCQL/model.py:64
    c.critic_activation = "relu"  # activation of the critics (the MISA code's critics: elu); src: JaxCQL
    #   JaxCQL/model.py:64
    c.layer_norm = False  # LayerNorm after each hidden layer of policy and critics; src: JaxCQL JaxCQL/model.py:46-64
    #   (no LayerNorm)
    # --- SAC backbone ---
    c.policy_lr = 1e-4  # Adam learning rate of the policy (and of log alpha); src: CQL README.md:42 (--policy_lr=1e-4;
    #   README.md:46 suggests 1e-4 or 3e-4), CQL d4rl/examples/cql_mujoco_new.py:166, MISA algos/misa.py:45 (its CQL
    #   mode); JaxCQL's own default is 3e-4 (conservative_sac.py:33): variant `jaxcql`
    c.critic_lr = 3e-4  # Adam learning rate of the twin critics (and of log alpha'); src: JaxCQL
    #   JaxCQL/conservative_sac.py:34, CQL d4rl/examples/cql_mujoco_new.py:135
    c.discount = 0.99  # gamma; src: JaxCQL JaxCQL/conservative_sac.py:28
    c.tau = 5e-3  # soft target update rate of the critics; src: JaxCQL JaxCQL/conservative_sac.py:36
    c.use_automatic_entropy_tuning = True  # learn alpha towards the entropy target -|A|; else alpha = alpha_multiplier;
    #   src: JaxCQL JaxCQL/conservative_sac.py:30
    c.alpha_multiplier = 1.0  # alpha = alpha_multiplier * exp(log alpha) (a fixed alpha without tuning); src: JaxCQL
    #   JaxCQL/conservative_sac.py:29
    c.backup_entropy = False  # subtract alpha log pi(a'|s') in the TD target; src: JaxCQL
    #   JaxCQL/conservative_sac.py:31, CQL d4rl/examples/cql_mujoco_new.py:163 (deterministic_backup True)
    c.max_target_backup = False  # target: max over cql_n_actions sampled a' of min_i Q'_i(s', a'); src: JaxCQL
    #   JaxCQL/conservative_sac.py:44
    c.bc_steps = 0  # first steps whose policy loss is alpha log pi(a~|s) - log pi(a_data|s) (BC warm-up); src: JaxCQL
    #   JaxCQL/conservative_sac_main.py:43 (bc_epochs 0; the CQL authors warm up 40k: variant `cql_authors`)
    # --- conservative penalty ---
    c.cql_n_actions = 10  # N: samples per proposal (uniform, pi(.|s), pi(.|s')), 3N in the logsumexp; src: JaxCQL
    #   JaxCQL/conservative_sac.py:38
    c.cql_temp = 1.0  # temperature of the logsumexp; src: JaxCQL JaxCQL/conservative_sac.py:42
    c.min_q_weight = 5.0  # w: weight of the conservative penalty; src: JaxCQL JaxCQL/conservative_sac.py:43, CQL
    #   README.md:43,46 (5.0 or 10.0)
    c.lagrange = False  # tune alpha' so that the penalty gap stays near target_action_gap; src: JaxCQL
    #   JaxCQL/conservative_sac.py:40, CQL README.md:42 (--lagrange_thresh=-1.0: no Lagrange)
    c.target_action_gap = 1.0  # the Lagrange variant's bound on diff, alpha' w (diff - gap) (unused without
    #   lagrange); src: JaxCQL JaxCQL/conservative_sac.py:41, :283
    c.log_alpha_prime_init = 1.0  # initial log alpha'; src: JaxCQL JaxCQL/conservative_sac.py:110, MISA
    #   algos/misa.py:132
    # --- data ---
    c.reward_scale = 1.0  # rewards are r * reward_scale + reward_bias; src: JaxCQL JaxCQL/conservative_sac_main.py:32
    c.reward_bias = 0.0  # src: JaxCQL JaxCQL/conservative_sac_main.py:33
    c.action_clip = 0.999  # dataset actions are clipped to +-action_clip (log pi is infinite at +-1); src: JaxCQL
    #   JaxCQL/conservative_sac_main.py:34
    return apply_variant(c, variant, NAMED_VARIANTS)


def jaxcql(c):
    """Named variant `jaxcql`: JaxCQL's own defaults where this file differs from them."""
    c.policy_lr = 3e-4  # src: JaxCQL JaxCQL/conservative_sac.py:33
    c.total_steps = 2_000_000  # src: JaxCQL JaxCQL/conservative_sac_main.py:42,44 (2000 epochs of 1000 steps)
    c.eval_episodes = 5  # src: JaxCQL JaxCQL/conservative_sac_main.py:46
    return c


def cql_authors(c):
    """Named variant `cql_authors`: the CQL authors' locomotion command (README.md:41-43 with
    d4rl/examples/cql_mujoco_new.py) where this file differs. Left as they are: their rlkit policy head (a separate
    log-std layer) and initialisation, and their evaluation (one 1000-step rollout per 1000 steps)."""
    c.hidden_dims = (256, 256, 256)  # src: CQL d4rl/examples/cql_mujoco_new.py:36-60 (hidden_sizes [M, M, M], M 256)
    c.bc_steps = 40_000  # src: CQL d4rl/examples/cql_mujoco_new.py:164 (policy_eval_start, counted in gradient
    #   steps: d4rl/rlkit/torch/sac/cql.py:150,184)
    c.total_steps = 3_000_000  # src: CQL d4rl/examples/cql_mujoco_new.py:123,125 (3000 epochs of 1000 steps)
    c.log_alpha_prime_init = 0.0  # unused without lagrange; src: CQL d4rl/rlkit/torch/sac/cql.py:75
    return c


NAMED_VARIANTS = {"jaxcql": jaxcql, "cql_authors": cql_authors}
