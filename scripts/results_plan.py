"""What scripts/results.py trains: the methods, each dataset's domain, the config file of each (method, domain), and
the run directory of each (method, dataset).

A dataset's domain is the one the host evaluates it in (`common.domains.setup_for_dataset`: locomotion, antmaze,
adroit or kitchen), found the way the host finds it: a D4RL name by d4rl's table, anything else (a shipped or
generated file, a path, `minari:<id>`) by loading it and reading the env its metadata or Minari spec names. Never
from a name's prefix: `dataset_family` reads "pendulum-noisy" as Adroit's pen. `--set env=ID` decides it as it
decides the host's. The config of method M on domain D is `configs/{M}_{CONFIG_DOMAIN[D]}.py` at the variant of
the dataset when the file lists it in VARIANTS, else at its defaults; a dataset of no known domain (an env named
only by an id this project has no protocol for, or no env at all) takes the mujoco configs, the generic defaults.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import NamedTuple

from common import domains
from common.datasets import load_dataset, shipped_datasets


class SweepError(ValueError):
    """Bad command-line input (one line)."""


class Algorithm(NamedTuple):
    label: str  # column name in the tables
    module: str  # algorithm module: METHOD
    config_method: str  # its config files are configs/{config_method}_{domain}.py: get_config(dataset), VARIANTS
    overrides: dict  # fields set on top of the config file


# Column order of the tables (the MISA paper's).
ALGORITHMS = {
    "bc": Algorithm("BC", "algorithms.td3_bc", "td3_bc", {"bc_only": True}),
    "td3_bc": Algorithm("TD3+BC", "algorithms.td3_bc", "td3_bc", {}),
    "cql": Algorithm("CQL", "algorithms.cql", "cql", {}),
    "misa": Algorithm("MISA", "algorithms.misa", "misa", {}),
}
# The one map from a domain (common/domains.py's EvalSetup.domain) to the suffix of its config files; None (no
# known domain) takes the generic locomotion defaults.
CONFIG_DOMAIN = {"locomotion": "mujoco", "antmaze": "antmaze", "adroit": "adroit", "kitchen": "kitchen", None: "mujoco"}
# Report order of the domains (the MISA paper's); a run of no known domain is grouped as "other".
DOMAIN_ORDER = ("locomotion", "antmaze", "adroit", "kitchen", "other")


# ------------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------------


def dataset_key(dataset: str) -> str:
    """A dataset name as a directory name: paths become their file stem."""
    name = Path(dataset).stem if dataset.endswith((".hdf5", ".h5", ".npz")) else dataset
    return name.replace(":", "_").replace("/", "_")


def run_name(algo: str, dataset: str) -> str:
    return f"{algo}__{dataset_key(dataset)}"


def read_json(path: Path):
    """The JSON object in `path`, None when there is no such file; SweepError when it is unreadable."""
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SweepError(f"{path} is unreadable: {str(e).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise SweepError(f"{path} is unreadable: it holds no JSON object")
    return value


# ------------------------------------------------------------------------------------------------
# Domains and configs
# ------------------------------------------------------------------------------------------------


def d4rl_name(name: str) -> str | None:
    """The D4RL dataset a bare name stands for, as the loader resolves names (common/datasets.py load_dataset);
    None for a Minari id, a path or a shipped dataset, whose env the loader reads from the data itself."""
    if name.startswith("minari:") or name.endswith((".hdf5", ".h5", ".npz")) or os.sep in name or \
            name in shipped_datasets():
        return None
    return domains.d4rl_name_of(name)


def dataset_domain(name: str, env: str = "") -> str | None:
    """The domain the host evaluates dataset `name` in (with --set env=`env`); None when it has none.

    A D4RL name is looked up without reading its file; anything else is loaded (DatasetError when it cannot be).
    """
    known = d4rl_name(name)
    if known and not env:
        return domains.D4RL_DATASETS[known]["domain"]
    setup = domains.setup_for_dataset(load_dataset(name, env_id=env or None), env)
    return setup.domain if setup is not None else None


def run_domain(summary: dict | None, fallback: str | None = None) -> str:
    """The report group of a run: the domain its summary.json says it was evaluated in, else `fallback` (the
    dataset's domain as this sweep found it), else "other"."""
    recorded = ((summary or {}).get("evaluation") or {}).get("domain")
    return recorded or fallback or "other"


def config_name(algo: str, domain: str | None) -> str:
    return f"configs.{ALGORITHMS[algo].config_method}_{CONFIG_DOMAIN.get(domain, 'mujoco')}"


def config_module(algo: str, domain: str | None, dataset: str = ""):
    """The config module of `algo` on `domain`; SweepError (one line) when the project has none."""
    name = config_name(algo, domain)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise
    what = f"'{dataset}' is a {domain} dataset" if dataset else f"{domain} datasets"
    raise SweepError(f"{algo}: no config for {domain} datasets ({what}; configs/{name.split('.')[-1]}.py does not "
                     f"exist): leave {algo} out (--algos) or this dataset out (--datasets)")


def file_config(algo: str, dataset: str, domain: str | None):
    """The config file's settings for `dataset` with the algorithm's overrides (no budget, no --set)."""
    module = config_module(algo, domain, dataset)
    variants = getattr(module, "VARIANTS", None)
    config = module.get_config(dataset if variants is not None and dataset in variants else None)
    config.dataset = dataset
    for field, value in ALGORITHMS[algo].overrides.items():
        config[field] = value
    return config


def known_configs(algo: str) -> list:
    """The default config of every domain `algo` has a config file for (to check a --set field exists)."""
    out = []
    for domain in dict.fromkeys(CONFIG_DOMAIN.values()):
        try:
            out.append(importlib.import_module(f"configs.{ALGORITHMS[algo].config_method}_{domain}").get_config())
        except ModuleNotFoundError:
            continue
    return out
