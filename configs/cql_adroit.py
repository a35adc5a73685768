"""CQL on D4RL Adroit.

The CQL authors' repository (aviralkumar2907/CQL) has scripts for locomotion and AntMaze only, and no published CQL
Adroit setting was found here (the CQL paper's appendix was not readable here), so this file keeps the
locomotion settings (configs/cql_mujoco.py: CQL(H), w = 5, no Lagrange, rewards unchanged) with the budget and
evaluation of MISA's Adroit runs (configs/misa_adroit.py), for a comparison at one budget.
Variants: `configs/cql_adroit.py:<dataset>` for every D4RL Adroit dataset (-v0, -v1); the named variants of
configs/cql_mujoco.py (`jaxcql`, `cql_authors`) apply here too.
Sources: `src:` in each comment (configs/__init__.py names the repositories).
"""

from common.config_base import apply_variant
from configs import cql_mujoco, d4rl_names

VARIANTS = d4rl_names("adroit")
NAMED_VARIANTS = cql_mujoco.NAMED_VARIANTS


def get_config(variant=None):
    c = cql_mujoco.get_config()
    c.dataset = "pen-human-v0"  # src: SEEM scripts/launch_job.sh:43-47 (the datasets MISA's comparison ran)
    c.domain = "adroit"  # datasets of another domain are refused (each domain has its own evaluation protocol);
    #   src: not published: this project's choice (common/domains.py's protocol per domain)
    c.total_steps = 1_000_000  # src: not published: this project's choice (no CQL Adroit budget published; MISA's
    #   Adroit budget, SEEM scripts/launch_job.sh:47)
    c.eval_every = 10_000  # src: not published: this project's choice (as configs/misa_adroit.py)
    c.eval_episodes = 10  # src: not published: this project's choice (as configs/misa_adroit.py)
    return apply_variant(c, variant, NAMED_VARIANTS)
