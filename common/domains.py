"""Domains: everything this project knows about a dataset's domain, in one place.

Which file a D4RL dataset name means, which family and domain a name or env id belongs to, the reference
returns of the normalised score, and the one evaluation setup (`EvalSetup`) each dataset gets. This module
reads no file but its own table and imports no other part of the project except `common.errors`; the
loaders (datasets.py, minari_data.py) and the evaluator (evaluation.py) ask it.

d4rl caches a dataset under the basename of its download URL; `d4rl_datasets.json` (next to this
file) lists that file name, the domain and the task of every locomotion v0/v1/v2, AntMaze v0/v1/v2,
Adroit v0/v1 and Kitchen v0 dataset, taken from d4rl's `infos.py` and `locomotion/__init__.py`.

`setup_for_d4rl(name)` gives the evaluation protocol of a D4RL dataset:

  locomotion  Hopper/HalfCheetah/Walker2d/Ant-v4, horizon 1000, observation as the env (ant data
              with 111 dims: 27 + 84 zero contact forces), D4RL reference returns;
  antmaze     AntMazeD4RL_{UMaze,Medium,Large}-v0 (common/d4rl_envs.py), horizon 700 / 1000,
              observation qpos[:15] + qvel[:14], score 100 x success rate;
  adroit      AdroitHand{Pen,Door,Hammer,Relocate}-v1 with D4RL's reward sign, horizon 100 (pen) /
              200, D4RL reference returns;
  kitchen     FrankaKitchen-v1 seen as D4RL's 60-dim observation and task reward, horizon 280,
              score 25 x tasks completed.

A Minari dataset is evaluated in its own eval_env_spec (else env_spec) and scored with its own reference
returns, or "n/a"; a generated dataset in the env its metadata names. A name or file that maps to none of
these gets no setup; evaluation then needs `--config.env`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from common.errors import DatasetError

TABLE_PATH = Path(__file__).with_name("d4rl_datasets.json")
D4RL_DATASETS: dict[str, dict] = json.loads(TABLE_PATH.read_text())["datasets"]
FILE_TO_NAME = {entry["file"]: name for name, entry in D4RL_DATASETS.items()}

LOCOMOTION_ENVS = {"hopper": "Hopper-v4", "halfcheetah": "HalfCheetah-v4", "walker2d": "Walker2d-v4", "ant": "Ant-v4"}
ANTMAZE_ENVS = {"umaze": "AntMazeD4RL_UMaze-v0", "medium": "AntMazeD4RL_Medium-v0", "large": "AntMazeD4RL_Large-v0"}
ANTMAZE_HORIZONS = {"umaze": 700, "medium": 1000, "large": 1000}  # d4rl max_episode_steps
ADROIT_ENVS = {"pen": "AdroitHandPen-v1", "door": "AdroitHandDoor-v1", "hammer": "AdroitHandHammer-v1",
               "relocate": "AdroitHandRelocate-v1"}
ADROIT_HORIZONS = {"pen": 100, "door": 200, "hammer": 200, "relocate": 200}  # d4rl max_episode_steps
KITCHEN_TASKS = {  # d4rl's TASK_ELEMENTS of the env class each dataset registers
    "complete": ("microwave", "kettle", "light switch", "slide cabinet"),
    "partial": ("microwave", "kettle", "light switch", "slide cabinet"),
    "mixed": ("microwave", "kettle", "bottom burner", "light switch"),
}
KITCHEN_HORIZON = 280
D4RL_ANT_OBS_DIM = 111  # D4RL ant locomotion: Ant's 27 + 84 contact forces (all zero in the files)

# D4RL reference returns: normalised score = 100 * (R - min) / (max - min).
REFERENCE_RETURNS = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
    "antmaze": (0.0, 1.0),
    "pen": (96.262799, 3076.8331),
    "hammer": (-274.856578, 12794.134825),
    "door": (-56.512833, 2880.5693087298737),
    "relocate": (-6.425911, 4233.877797),
    "kitchen": (0.0, 4.0),
}


class EvalSetup(NamedTuple):
    """Everything that decides an evaluation score."""

    domain: str | None  # locomotion, antmaze, adroit, kitchen, or None (an env given by id only)
    task: str | None  # hopper, umaze, pen, partial, ... (None when unknown)
    env_id: str
    env_kwargs: dict
    horizon: int | None  # None = the env's registered limit
    adapter: str  # identity | pad_ant_111 | flatten_dict | kitchen_d4rl
    ref: tuple[float, float] | None  # (min, max) return of the normalised score, None = "n/a"
    ref_source: str  # where ref comes from
    score: str  # the formula, in words
    reward_fix: str = ""  # "d4rl_adroit_sign": door/hammer/relocate reward brought back to D4RL's
    minari_id: str = ""  # set when the env comes from a Minari dataset's spec
    env_spec_source: str = ""  # eval_env_spec | env_spec | d4rl | config.env | dataset metadata

    def normalized(self, returns) -> np.ndarray:
        """The normalised score of these returns under this setup's reference (NaN, "n/a", without one)."""
        return normalized_score(returns, self.ref)

    def describe(self) -> dict:
        """What summary.json records about the evaluation."""
        return {
            "domain": self.domain, "task": self.task, "env_id": self.env_id, "env_kwargs": self.env_kwargs,
            "horizon": self.horizon, "observation_adapter": self.adapter,
            "ref_min_score": None if self.ref is None else self.ref[0],
            "ref_max_score": None if self.ref is None else self.ref[1],
            "ref_source": self.ref_source, "score": self.score, "reward_fix": self.reward_fix or None,
            "minari_id": self.minari_id or None, "env_spec_source": self.env_spec_source,
        }


# ----------------------------------------------------------------------------------------------
# Families and scores
# ----------------------------------------------------------------------------------------------


def dataset_family(name_or_env: str) -> str | None:
    """'hopper-medium-v2', 'Hopper-v4' or 'hopper-medium-v4-small' -> 'hopper' (key of REFERENCE_RETURNS)."""
    lowered = name_or_env.lower().replace("_", "-")
    if lowered.startswith("minari:"):
        lowered = lowered.split(":", 1)[1].split("/")[-2] if lowered.count("/") >= 1 else lowered.split(":", 1)[1]
    for family in sorted(REFERENCE_RETURNS, key=len, reverse=True):
        if lowered.startswith(family) or lowered.startswith("adroithand" + family):
            return family
    if lowered.startswith("frankakitchen"):
        return "kitchen"
    return None


def normalized_score(returns, ref: tuple[float, float] | None) -> np.ndarray:
    """100 * (R - min) / (max - min) with ref = (min, max); NaN ("n/a") when there is no reference."""
    returns = np.asarray(returns, np.float64)
    if ref is None:
        return np.full_like(returns, np.nan)
    low, high = ref
    return 100.0 * (returns - low) / (high - low)


def locomotion_reference(env_id: str) -> tuple[float, float] | None:
    """D4RL's reference returns of a locomotion env's family (Hopper-v5 -> hopper's), None for other envs."""
    if domain_of_env(env_id) == "locomotion":
        return REFERENCE_RETURNS.get(dataset_family(env_id))
    return None


# ----------------------------------------------------------------------------------------------
# Names and files
# ----------------------------------------------------------------------------------------------


def derived_filename(name: str) -> str:
    """The project's older short name: 'antmaze-umaze-v2' -> 'antmaze_umaze-v2.hdf5' (a fallback only)."""
    stem, version = name.rsplit("-v", 1)
    return f"{stem.replace('-', '_')}-v{version}.hdf5"


def d4rl_files(name: str) -> list[str]:
    """File names to look for, d4rl's own first, then the derived one."""
    files = [D4RL_DATASETS[name]["file"]] if name in D4RL_DATASETS else []
    if "-v" in name and derived_filename(name) not in files:
        files.append(derived_filename(name))
    return files


def d4rl_name_of(name_or_path: str) -> str | None:
    """The D4RL dataset a name, a file name or a path stands for; None if it is none of them.

    Accepts the D4RL name ('antmaze-umaze-v2'), d4rl's cached file name
    ('Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5') and the derived
    short file name ('antmaze_umaze-v2.hdf5'). No prefix guessing: anything else is None.
    """
    base = Path(str(name_or_path)).name
    if base in D4RL_DATASETS:
        return base
    if base in FILE_TO_NAME:
        return FILE_TO_NAME[base]
    stem = base[: -len(".hdf5")] if base.endswith(".hdf5") else base
    if stem + ".hdf5" in FILE_TO_NAME:
        return FILE_TO_NAME[stem + ".hdf5"]
    candidate = stem.replace("_", "-")
    return candidate if candidate in D4RL_DATASETS else None


def infer_env_id(name: str) -> str | None:
    """The evaluation env of a D4RL dataset name or file name; None for anything else (never a guess)."""
    d4rl_name = d4rl_name_of(name)
    return setup_for_d4rl(d4rl_name).env_id if d4rl_name else None


# ----------------------------------------------------------------------------------------------
# Evaluation setups
# ----------------------------------------------------------------------------------------------


def d4rl_reference(name: str) -> tuple[float, float]:
    entry = D4RL_DATASETS[name]
    family = "antmaze" if entry["domain"] == "antmaze" else "kitchen" if entry["domain"] == "kitchen" else entry["task"]
    return REFERENCE_RETURNS[family]


def setup_for_d4rl(name: str, data_obs_dim: int | None = None) -> EvalSetup:
    """The D4RL evaluation protocol of dataset `name` (a key of D4RL_DATASETS)."""
    entry = D4RL_DATASETS[name]
    domain, task = entry["domain"], entry["task"]
    ref, source = d4rl_reference(name), f"d4rl infos.py ({name})"
    if domain == "locomotion":
        adapter = "pad_ant_111" if task == "ant" and data_obs_dim == D4RL_ANT_OBS_DIM else "identity"
        return EvalSetup(domain, task, LOCOMOTION_ENVS[task], {}, 1000, adapter, ref, source,
                         "100 * (return - min) / (max - min)", env_spec_source="d4rl")
    if domain == "antmaze":
        return EvalSetup(domain, task, ANTMAZE_ENVS[task], {}, ANTMAZE_HORIZONS[task], "identity", ref, source,
                         "100 * success rate (return 1 at the goal, episode ends there)", env_spec_source="d4rl")
    if domain == "adroit":
        fix = "" if task == "pen" else "d4rl_adroit_sign"
        return EvalSetup(domain, task, ADROIT_ENVS[task], {}, ADROIT_HORIZONS[task], "identity", ref, source,
                         "100 * (return - min) / (max - min)", reward_fix=fix, env_spec_source="d4rl")
    if domain == "kitchen":
        kwargs = {"tasks_to_complete": list(KITCHEN_TASKS[task])}
        return EvalSetup(domain, task, "FrankaKitchen-v1", kwargs, KITCHEN_HORIZON, "kitchen_d4rl", ref, source,
                         "25 * tasks completed (of 4)", env_spec_source="d4rl")
    raise KeyError(name)


def domain_of_env(env_id: str | None) -> str | None:
    """locomotion / antmaze / adroit / kitchen for a gymnasium id, None when unknown."""
    if not env_id:
        return None
    base = env_id.split("/")[-1].split("-v")[0].lower()
    if base.startswith("antmaze"):
        return "antmaze"
    if base.startswith("adroithand"):
        return "adroit"
    if base.startswith("frankakitchen"):
        return "kitchen"
    if base in {"hopper", "halfcheetah", "walker2d", "ant", "swimmer", "humanoid", "reacher", "pusher",
                "invertedpendulum", "inverteddoublependulum", "humanoidstandup"}:
        return "locomotion"
    return None


def setup_for_env(env_id: str, source: str, ref: tuple[float, float] | None, ref_source: str,
                  data_obs_dim: int | None = None) -> EvalSetup:
    """An env named by id (config.env, a generated dataset's metadata): no D4RL protocol beyond the id itself."""
    domain = domain_of_env(env_id)
    task = dataset_family(env_id)
    adapter = "pad_ant_111" if task == "ant" and data_obs_dim == D4RL_ANT_OBS_DIM else "identity"
    if domain in ("antmaze", "kitchen") and not env_id.startswith("AntMazeD4RL"):
        adapter = "flatten_dict"
    score = "100 * (return - min) / (max - min)" if ref is not None else "n/a (no reference returns)"
    return EvalSetup(domain, task, env_id, {}, None, adapter, ref, ref_source, score, env_spec_source=source)


def setup_for_dataset(dataset, env_override: str = "") -> EvalSetup | None:
    """The evaluation setup of a loaded dataset (common.datasets.Dataset: its metadata, env id and observation size),
    or None when nothing says which env evaluates it; `env_override` is --config.env."""
    meta, obs_dim = dataset.metadata, dataset.stats["obs_dim"]
    if meta.get("minari_id"):
        return _minari_setup(dataset, env_override)
    name = meta.get("d4rl_name")
    if name:
        setup = setup_for_d4rl(name, obs_dim)
        if not env_override or env_override == setup.env_id:
            return setup
        same_task = domain_of_env(env_override) == setup.domain == "locomotion" and \
            dataset_family(env_override) == setup.task
        ref = setup.ref if same_task else None
        return setup_for_env(env_override, "config.env", ref, setup.ref_source if ref else "none", obs_dim)
    env_id = env_override or dataset.env_id
    if not env_id:
        return None
    ref = locomotion_reference(env_id)
    source = "config.env" if env_override else "dataset metadata"
    return setup_for_env(env_id, source, ref, "d4rl reference returns of the env family" if ref else "none",
                                 obs_dim)


def _minari_setup(dataset, env_override: str) -> EvalSetup:
    """Minari: the dataset's eval_env_spec (else env_spec), its kwargs and horizon; its own refs or n/a."""
    meta = dataset.metadata
    low, high = meta.get("ref_min_score"), meta.get("ref_max_score")
    ref = (float(low), float(high)) if low is not None and high is not None else None
    ref_source = f"minari metadata ({meta['minari_id']})" if ref else "none (the dataset has no ref scores)"
    score = "100 * (return - min) / (max - min)" if ref else "n/a (no reference returns)"
    adapter = "flatten_dict" if meta.get("observation_keys") else "identity"
    if env_override and env_override != meta.get("env_spec_id"):  # the dataset's refs belong to its own env
        setup = setup_for_env(env_override, "config.env", None, "none (env set by config.env)")
        return setup._replace(adapter=adapter)
    spec_source = meta.get("env_spec_source") or ""
    if not spec_source:
        raise DatasetError(f"minari:{meta['minari_id']}: the dataset has no env spec; set --config.env")
    env_id = meta["env_spec_id"]
    return EvalSetup(domain_of_env(env_id), dataset_family(env_id), env_id, meta.get("env_spec_kwargs", {}),
                     meta.get("env_spec_max_episode_steps"), adapter, ref, ref_source, score,
                     minari_id=meta["minari_id"], env_spec_source=spec_source)


def check_config_domain(config_domain: str | None, setup: EvalSetup, dataset: str) -> str | None:
    """A config made for one domain given a dataset of another: raises ValueError if the config names
    its domain; returns a warning line if the config names none and the dataset is not locomotion."""
    if setup.domain is None:
        return None
    if config_domain:
        if config_domain != setup.domain:
            raise ValueError(f"this config is for {config_domain} datasets but '{dataset}' is a {setup.domain} "
                             f"dataset; use a {setup.domain} config (configs/*_{_config_suffix(setup.domain)}.py)")
        return None
    if setup.domain != "locomotion":
        return (f"warning: '{dataset}' is a {setup.domain} dataset but this config has no domain; the "
                f"{setup.domain} settings (configs/*_{_config_suffix(setup.domain)}.py) are not applied")
    return None


def _config_suffix(domain: str) -> str:
    return {"locomotion": "mujoco"}.get(domain, domain)
