"""The config files: every method on every domain loads with every dataset and named variant, every setting names
its source, each domain's config refuses another domain's data, and docs/SETTINGS.md is what the files give."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from conftest import ROOT

from common import domains
from common.experiment import configuration
from configs import SOURCES
from scripts import settings_table

CONFIG_DIR = Path(ROOT) / "configs"
CONFIG_FILES = sorted(p.stem for p in CONFIG_DIR.glob("*.py") if p.stem != "__init__")
GRID = [f"{m}_{d}" for m in settings_table.METHODS for d in settings_table.DOMAINS]
DOMAIN_OF_FILE = {"mujoco": "locomotion", "antmaze": "antmaze", "adroit": "adroit", "kitchen": "kitchen"}
# One dataset per domain, to offer each config the others' data.
DATASET_OF_DOMAIN = {"locomotion": "hopper-medium-v2", "antmaze": "antmaze-umaze-v2", "adroit": "pen-human-v1",
                     "kitchen": "kitchen-mixed-v0"}


def algorithm_of(name: str):
    return importlib.import_module(f"algorithms.{name.rsplit('_', 1)[0]}")


def test_every_method_has_a_config_for_every_domain():
    """Bug: a (method, domain) pair of the paper's comparison that cannot be run (issue 29: five were missing)."""
    assert sorted(GRID) == CONFIG_FILES


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_dataset_and_named_variant_builds_and_validates(name):
    """Bug: a variant that fails to build or that its method refuses (a typo in a field, a value out of range)."""
    module = importlib.import_module(f"configs.{name}")
    algorithm, named = algorithm_of(name), module.NAMED_VARIANTS
    dataset = [v for v in module.VARIANTS if v not in named][-1]
    for variant in [None, *module.VARIANTS, *named, *(f"{dataset},{n}" for n in named)]:
        config = module.get_config(variant)
        configuration.validate_shared(config)
        algorithm.validate_config(config)
        assert config.total_steps % config.eval_every == 0, variant
        if variant in module.VARIANTS and variant != "demo":
            assert config.dataset == variant
        if variant and "," in variant:  # a dataset joined with a named variant: both apply
            alone = module.get_config(variant.split(",")[1])
            assert config.dataset == dataset
            assert {k: v for k, v in config.items() if k != "dataset"} == \
                {k: v for k, v in alone.items() if k != "dataset"}
    with pytest.raises(ValueError, match="at most one dataset"):
        module.get_config("hopper-medium-v2,walker2d-medium-v2")


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_dataset_variants_are_the_datasets_of_the_domain(name):
    """Bug: a config offering (or missing) datasets of its domain, e.g. AntMaze -v2 or Adroit -v1."""
    module = importlib.import_module(f"configs.{name}")
    domain = DOMAIN_OF_FILE[name.rsplit("_", 1)[1]]
    d4rl = [v for v in module.VARIANTS if v in domains.D4RL_DATASETS]
    assert {domains.D4RL_DATASETS[v]["domain"] for v in d4rl} == {domain}
    if domain != "locomotion":
        assert set(d4rl) == set(module.VARIANTS) == {n for n, e in domains.D4RL_DATASETS.items()
                                                     if e["domain"] == domain}


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_each_domain_config_refuses_the_other_domains(name):
    """Bug: a config trained on another domain's data with the wrong evaluation protocol and settings."""
    config = importlib.import_module(f"configs.{name}").get_config()
    domain = DOMAIN_OF_FILE[name.rsplit("_", 1)[1]]
    if domain == "locomotion":  # as before: no domain, so any locomotion or generated dataset is accepted
        assert config.get("domain") is None
        return
    assert config.domain == domain
    for other, dataset in DATASET_OF_DOMAIN.items():
        setup = domains.setup_for_d4rl(dataset)
        if other == domain:
            assert domains.check_config_domain(config.domain, setup, dataset) is None
        else:
            with pytest.raises(ValueError, match=f"this config is for {domain} datasets"):
                domains.check_config_domain(config.domain, setup, dataset)


SETTING_FILES = [CONFIG_DIR / f"{n}.py" for n in CONFIG_FILES] + [Path(ROOT) / "common" / "config_base.py"]


@pytest.mark.parametrize("path", SETTING_FILES, ids=lambda p: p.name)
def test_every_setting_line_names_its_source(path):
    """Bug: a value whose origin nobody can check (issue 29). Every `c.<field> = ...` line, in the config files and
    in the default functions they use (misa_defaults, base_config), says after `src:` which repository file,
    paper, or project choice (with its reason) it comes from."""
    assignments = settings_table.config_assignments(path)
    assert assignments
    missing = [f"{path.name}:{line} c.{field}" for _, field, line, comment in assignments
               if not settings_table.source_is_valid(settings_table.source_of(comment))]
    assert not missing, f"settings without a source: {missing}"


def test_source_check_refuses_what_is_no_source():
    """The check above must fail on a bare description, an unknown repository and a choice without its reason."""
    valid = settings_table.source_is_valid
    assert valid("MISA experiments/main.py:59") and valid("not published: this project's choice (plumbing)")
    assert all(key in SOURCES for key in ("MISA", "SEEM", "CQL", "JaxCQL", "TD3_BC"))
    for bad in (None, "", "gamma", "the authors' launch settings", "Foo bar/baz.py:1",
                "not published: this project's choice", "not published: this project's choice ()"):
        assert not valid(bad), bad
    text = "def get_config():\n    c.a = 1  # a field; src: MISA algos/misa.py:45\n    c.b = 2  # a field\n"
    found = {field: settings_table.source_of(comment) for _, field, _, comment in
             settings_table.config_assignments_of_text(text)}
    assert found == {"a": "MISA algos/misa.py:45", "b": None}


def test_settings_table_is_what_the_configs_give():
    """Bug: docs/SETTINGS.md out of date with the config files (run python scripts/settings_table.py)."""
    assert settings_table.DOC.read_text() == settings_table.render()
