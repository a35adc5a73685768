"""Config fields every algorithm shares (names fixed so that tools and users can rely on them)."""

from __future__ import annotations

import ml_collections

# The D4RL gym-locomotion datasets; every locomotion config has a variant per name.
D4RL_LOCOMOTION = [
    f"{env}-{level}-v2"
    for env in ("halfcheetah", "hopper", "walker2d")
    for level in ("random", "medium", "medium-replay", "medium-expert", "expert")
]
# Joins a dataset name and named variants in `configs/x.py:<variant>` (D4RL and Minari names have no comma).
VARIANT_SEPARATOR = ","


def base_config() -> ml_collections.ConfigDict:
    """The shared fields. Sources (configs/__init__.py lists the repositories): the authors' code for what changes
    learning (batch size), this project's choice for plumbing that changes no number (logging, devices)."""
    c = ml_collections.ConfigDict()
    # --- experiment ---
    c.dataset = "hopper-medium-v2"  # D4RL name, minari:<id>, path to .hdf5/.npz, or a shipped dataset name; src: MISA
    #   experiments/main.py:44 (each config file names its own domain's default)
    c.env = ""  # gymnasium id used for evaluation; "" = inferred from the dataset; src: not published: this
    #   project's choice (the D4RL env each dataset names, common/domains.py)
    c.seed = 0  # first seed; runs use seed, seed + 1, ..., seed + num_seeds - 1; src: TD3_BC main.py:42
    c.num_seeds = 1  # runs batched with jax.vmap in one process; src: not published: this project's choice (one run,
    #   as every reference script)
    c.total_steps = 1_000_000  # gradient steps per run; src: TD3_BC main.py:44 (each config file sets its own)
    c.eval_every = 5_000  # gradient steps per fused lax.scan, between evaluations; src: TD3_BC main.py:43
    c.eval_episodes = 10  # evaluation episodes per run and evaluation; src: TD3_BC main.py:14
    c.batch_size = 256  # transitions per gradient step; src: MISA experiments/main.py:48, TD3_BC main.py:49
    c.matmul_precision = "highest"  # float32 matmuls: "highest" = true float32 on every backend (the math the parity
    #   tests check); "default" = XLA's choice, TF32 on NVIDIA Ampere and newer GPUs (faster, ~1e-3 relative error);
    #   src: not published: this project's choice (the authors' float32 math on every backend)
    # --- logging and checkpoints ---
    c.log_dir = "runs"  # a run writes to log_dir/run_name/; src: not published: this project's choice (plumbing)
    c.run_name = ""  # "" = <algorithm>_<dataset>_s<seed>; src: not published: this project's choice (plumbing)
    c.overwrite = False  # replace an existing run directory (otherwise refused); src: not published: this project's
    #   choice (plumbing: nothing written is lost by default)
    c.checkpoint_every = 50_000  # gradient steps between checkpoints (at the first interval end past each
    #   multiple); 0 = only at the end. SIGTERM / SIGINT always checkpoint the interval they stop.
    #   src: not published: this project's choice (plumbing; no effect on learning)
    c.resume = False  # continue the run in log_dir/run_name from its latest checkpoint; src: not published: this
    #   project's choice (plumbing)
    c.resume_changes = ""  # comma-separated config fields a resume may change (e.g. "critic_lr" after a divergence);
    #   src: not published: this project's choice (plumbing)
    c.progress = True  # tqdm progress bar; src: not published: this project's choice (plumbing)
    c.overlap_evaluation = "auto"  # "on": dispatch the next interval's training before evaluating the last one, the
    #   policy run on the host CPU (a GPU trains meanwhile; the same files); "off": evaluate first; "auto": "on" when
    #   training has devices other than the host CPU (on a CPU-only machine the two would only take turns);
    #   src: not published: this project's choice (scheduling only; the same numbers)
    c.tensorboard = False  # also write TensorBoard events (needs tensorboardX); src: not published: this project's
    #   choice (plumbing)
    c.wandb = False  # also log to Weights & Biases (needs wandb; offline unless configured); src: not published: this
    #   project's choice (plumbing)
    # --- several processes / machines (jax.distributed) ---
    c.distributed = False  # join a multi-process job; members are sharded over every process's devices; src: not
    #   published: this project's choice (plumbing)
    c.coordinator_address = ""  # host:port of process 0; "" = from the environment (e.g. SLURM); src: not published:
    #   this project's choice (plumbing)
    c.num_processes = 0  # 0 = from the environment; src: not published: this project's choice (plumbing)
    c.process_id = -1  # -1 = from the environment; src: not published: this project's choice (plumbing)
    return c


def apply_variant(config: ml_collections.ConfigDict, variant: str | None, named: dict) -> ml_collections.ConfigDict:
    """Applies `configs/x.py:<variant>` and adds the sweep fields.

    A variant is a dataset name, a named variant (a key of `named`: a dict of overrides or a function that
    changes the config), or several joined by commas (`antmaze-umaze-v2,released_code`): the named ones apply
    in the order given, then the dataset, so a dataset named explicitly always wins.
    `config.sweep.<field>` exists for every float field: "1,5,10" trains every value (times every seed)
    in one batched program; the algorithm refuses fields that would change the compiled program.
    """
    if variant:
        parts = variant.split(VARIANT_SEPARATOR)
        datasets = [part for part in parts if part not in named]
        if "" in parts or len(datasets) > 1:
            raise ValueError(f"config variant '{variant}': give at most one dataset name and any of {sorted(named)}, "
                             f"joined by '{VARIANT_SEPARATOR}'")
        for part in parts:
            overrides = named.get(part)
            if callable(overrides):
                overrides(config)
            elif overrides is not None:
                for key, value in overrides.items():
                    config[key] = value
        if datasets:
            config.dataset = datasets[0]
    config.sweep = ml_collections.ConfigDict(
        {key: "" for key, value in config.items() if isinstance(value, float) and not isinstance(value, bool)}
    )
    return config
