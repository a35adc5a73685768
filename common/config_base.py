"""Config fields every algorithm shares (names fixed so that tools and users can rely on them)."""

from __future__ import annotations

import ml_collections

# The D4RL gym-locomotion datasets; every locomotion config has a variant per name.
D4RL_LOCOMOTION = [
    f"{env}-{level}-v2"
    for env in ("halfcheetah", "hopper", "walker2d")
    for level in ("random", "medium", "medium-replay", "medium-expert", "expert")
]


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # --- experiment ---
    c.dataset = "hopper-medium-v2"  # D4RL name, minari:<id>, path to .hdf5/.npz, or a shipped dataset name
    c.env = ""  # gymnasium id used for evaluation; "" = inferred from the dataset
    c.seed = 0  # first seed; runs use seed, seed + 1, ..., seed + num_seeds - 1
    c.num_seeds = 1  # runs batched with jax.vmap in one process
    c.total_steps = 1_000_000  # gradient steps per run
    c.eval_every = 5_000  # gradient steps per fused lax.scan, between evaluations
    c.eval_episodes = 10  # evaluation episodes per run and evaluation
    c.batch_size = 256  # transitions per gradient step
    c.matmul_precision = "highest"  # float32 matmuls: "highest" = true float32 on every backend (the math the parity
    #   tests check); "default" = XLA's choice, TF32 on NVIDIA Ampere and newer GPUs (faster, ~1e-3 relative error)
    # --- logging and checkpoints ---
    c.log_dir = "runs"  # a run writes to log_dir/run_name/
    c.run_name = ""  # "" = <algorithm>_<dataset>_s<seed>
    c.overwrite = False  # replace an existing run directory (otherwise refused)
    c.checkpoint_every = 50_000  # gradient steps between checkpoints (at the first interval end past each
    #   multiple); 0 = only at the end. SIGTERM / SIGINT always checkpoint the interval they stop.
    c.resume = False  # continue the run in log_dir/run_name from its latest checkpoint
    c.resume_changes = ""  # comma-separated config fields a resume may change (e.g. "critic_lr" after a divergence)
    c.progress = True  # tqdm progress bar
    c.overlap_evaluation = "auto"  # "on": dispatch the next interval's training before evaluating the last one, the
    #   policy run on the host CPU (a GPU trains meanwhile; the same files); "off": evaluate first; "auto": "on" when
    #   training has devices other than the host CPU (on a CPU-only machine the two would only take turns)
    c.tensorboard = False  # also write TensorBoard events (needs tensorboardX)
    c.wandb = False  # also log to Weights & Biases (needs wandb; offline unless configured)
    # --- several processes / machines (jax.distributed) ---
    c.distributed = False  # join a multi-process job; members are sharded over every process's devices
    c.coordinator_address = ""  # host:port of process 0; "" = from the environment (e.g. SLURM)
    c.num_processes = 0  # 0 = from the environment
    c.process_id = -1  # -1 = from the environment
    return c


def apply_variant(config: ml_collections.ConfigDict, variant: str | None, overrides: dict) -> ml_collections.ConfigDict:
    """Applies `configs/x.py:variant` (a dataset name plus its overrides) and adds the sweep fields.

    `config.sweep.<field>` exists for every float field: "1,5,10" trains every value (times every seed)
    in one batched program; the algorithm refuses fields that would change the compiled program.
    """
    if variant:
        config.dataset = variant
        for key, value in overrides.get(variant, {}).items():
            config[key] = value
    config.sweep = ml_collections.ConfigDict(
        {key: "" for key, value in config.items() if isinstance(value, float) and not isinstance(value, bool)}
    )
    return config
