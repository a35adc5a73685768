"""CQL on D4RL AntMaze as the CQL authors ran it: the Lagrange variant, their AntMaze script and README command.

Their script is aviralkumar2907/CQL d4rl/examples/cql_antmaze_new.py; their README (README.md:50-51) runs it with
--policy_lr=1e-4 --lagrange_thresh=5.0 --min_q_wight=5.0 --min_q_version=3. The misspelt --min_q_wight is no flag
of the script's parser (argparse refuses it: no option has that prefix), so the README means w = 5; the script's
own default is w = 1 (variant `script_defaults`). Their Lagrange term is alpha' (w diff - tau)
(d4rl/rlkit/torch/sac/cql.py:263-273), i.e. the constraint diff <= tau / w; this project's is JaxCQL's
alpha' w (diff - target_action_gap), i.e. diff <= target_action_gap, so their tau = 5 with w = 5 is
target_action_gap = tau / w = 1 here: the same alpha' loss, the same critic gradient. Sweeping min_q_weight keeps
the bound on diff fixed; to keep their tau instead, set target_action_gap = tau / w by hand.
Not reproduced: their rlkit policy head (a separate log-std layer, log std in [-20, 2]) and initialisation, and
their evaluation (one rollout of at most 1000 steps per 1000 gradient steps).

Variants: `configs/cql_antmaze.py:<dataset>` for every D4RL AntMaze dataset (-v0, -v1, -v2), and named variants
(alone or after a dataset, `antmaze-umaze-v2,jaxcql`):
  `script_defaults`  their script with no --min_q_weight: w = 1, so diff <= tau / w = 5;
  `jaxcql`           this file's settings before 2026-12-04: JaxCQL's network and alpha' start, max-target backup,
                     no BC warm-up, 1M steps, diff <= 5 with w = 5 (no published source for that combination).
Sources: `src:` in each comment (configs/__init__.py names the repositories).
"""

from common.config_base import apply_variant
from configs import cql_mujoco, d4rl_names

VARIANTS = d4rl_names("antmaze")
# The CQL authors' AntMaze threshold and penalty weight (README.md:51), from which target_action_gap = TAU / W.
TAU, W = 5.0, 5.0


def get_config(variant=None):
    c = cql_mujoco.get_config()
    c.dataset = "antmaze-umaze-v0"  # src: CQL README.md:50 (the -v0 AntMaze datasets)
    c.domain = "antmaze"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 3_000_000  # src: CQL d4rl/examples/cql_antmaze_new.py:122,124 (3000 epochs of 1000 steps)
    c.eval_every = 50_000  # src: not published: this project's choice (100 episodes per evaluation are costly; their
    #   script rolls out at most 1000 steps after each 1000 gradient steps, cql_antmaze_new.py:123,127)
    c.eval_episodes = 100  # the score is a success rate; src: IQL README.md (AntMaze: --eval_episodes=100), SEEM
    #   scripts/launch_job.sh:33 (MISA on AntMaze: --eval_n_trajs=100)
    c.hidden_dims = (256, 256, 256)  # policy and both critics; src: CQL d4rl/examples/cql_antmaze_new.py:35-60
    #   (hidden_sizes [M, M, M], M = layer_size 256, :115)
    c.policy_lr = 1e-4  # src: CQL README.md:50 (--policy_lr=1e-4), d4rl/examples/cql_antmaze_new.py:165
    c.lagrange = True  # alpha' maximises alpha' * w * (diff - target_action_gap); src: CQL
    #   d4rl/examples/cql_antmaze_new.py:167,180-181 (lagrange_thresh 5 >= 0 keeps with_lagrange)
    c.min_q_weight = W  # w; src: CQL README.md:51 (--min_q_wight=5.0, read as --min_q_weight; the script's default
    #   is 1.0, cql_antmaze_new.py:164: variant `script_defaults`)
    c.target_action_gap = TAU / W  # their tau = 5 (README.md:51 --lagrange_thresh=5.0) in their form
    #   alpha' (w diff - tau) is diff <= tau / w; this field bounds diff itself (JaxCQL's form), so tau / w = 1.0;
    #   src: CQL d4rl/rlkit/torch/sac/cql.py:263-273
    c.max_target_backup = False  # src: CQL d4rl/examples/cql_antmaze_new.py:161 (--max_q_backup default "False")
    c.backup_entropy = False  # src: CQL d4rl/examples/cql_antmaze_new.py:162 (--deterministic_backup default "True")
    c.bc_steps = 40_000  # BC warm-up; src: CQL d4rl/examples/cql_antmaze_new.py:163 (policy_eval_start, counted in
    #   gradient steps: d4rl/rlkit/torch/sac/cql.py:150,184)
    c.log_alpha_prime_init = 0.0  # alpha' starts at 1; src: CQL d4rl/rlkit/torch/sac/cql.py:75 (zeros)
    c.reward_scale = 4.0  # (r - 0.5) * 4 = 4 r - 2; src: CQL d4rl/examples/cql_antmaze_new.py:22
    c.reward_bias = -2.0  # src: CQL d4rl/examples/cql_antmaze_new.py:22
    return apply_variant(c, variant, NAMED_VARIANTS)


def script_defaults(c):
    """Named variant `script_defaults`: cql_antmaze_new.py run without --min_q_weight (w = 1, tau = 5: diff <= 5)."""
    c.min_q_weight = 1.0  # src: CQL d4rl/examples/cql_antmaze_new.py:164
    c.target_action_gap = TAU / 1.0  # tau / w with w = 1; src: CQL d4rl/examples/cql_antmaze_new.py:167
    return c


def jaxcql(c):
    """Named variant `jaxcql`: this file's settings before 2026-12-04 (issue 29), JaxCQL's network, alpha' start
    and penalty form with the authors' tau read as a bound on diff: diff <= 5 with w = 5."""
    c.total_steps = 1_000_000  # src: not published: this project's choice (the settings this file had before)
    c.hidden_dims = (256, 256)  # src: JaxCQL JaxCQL/conservative_sac_main.py:36-37
    c.min_q_weight = 5.0  # src: JaxCQL JaxCQL/conservative_sac.py:43
    c.target_action_gap = 5.0  # src: not published: this project's choice (the authors' tau put in JaxCQL's form)
    c.max_target_backup = True  # src: not published: this project's choice (the settings this file had before)
    c.bc_steps = 0  # src: JaxCQL JaxCQL/conservative_sac_main.py:43
    c.log_alpha_prime_init = 1.0  # src: JaxCQL JaxCQL/conservative_sac.py:110
    return c


NAMED_VARIANTS = {"script_defaults": script_defaults, "jaxcql": jaxcql}
