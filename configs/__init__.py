"""Config files (ml_collections), one per method and domain: `--config configs/<file>.py[:variant]` on the command
line, or `configs.<file>.get_config(variant)` from the scripts.

Every file has `VARIANTS` (the dataset names of its domain) and `get_config(variant)`; a variant is a dataset name,
a named variant of the file (`NAMED_VARIANTS`), or both joined by a comma (`antmaze-umaze-v2,released_code`).

Every `c.<field> = ...` line says where its value comes from after `src:` in its comment: a file (and line) of one
of the repositories below, a paper, or "not published: this project's choice" with the reason.
docs/SETTINGS.md tabulates them (scripts/settings_table.py); tests/test_configs.py checks that none is missing.
"""

# The repositories a `src:` names, by their short name (read 2026-12-04 at these commits).
SOURCES = {
    "MISA": "github.com/sail-sg/MISA @ bd350e5 (2022-10-19): the MISA authors' released code",
    "SEEM": "github.com/yueyang130/SEEM @ e92ed8b (2022-10-19, commit 'Trainer'): a Sea AI Lab research codebase in "
            "which MISA's authors Xiao Ma and Bingyi Kang commit; it adds the MISA learner (algos/misa.py, the same "
            "defaults as MISA's) and scripts/launch_job.sh, its launch command per domain",
    "CQL": "github.com/aviralkumar2907/CQL @ d67dbe9 (2020-09-14): the CQL authors' code (rlkit, D4RL part)",
    "JaxCQL": "github.com/young-geng/JaxCQL @ bac4299 (2023-02-07): the JAX CQL that the MISA code forks",
    "TD3_BC": "github.com/sfujim/TD3_BC @ 8791ad7 (2021-12-17): the TD3+BC authors' code",
    "IQL": "github.com/ikostrikov/implicit_q_learning README: the IQL authors' launch commands",
}


def d4rl_names(domain: str) -> list[str]:
    """Every D4RL dataset of a domain that common/domains.py knows (e.g. AntMaze -v0, -v1, -v2), in its order."""
    from common.domains import D4RL_DATASETS

    return [name for name, entry in D4RL_DATASETS.items() if entry["domain"] == domain]
