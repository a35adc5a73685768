# make install | install-export | test | demo | bench | results | settings | datasets | mutants | lint | gpu-wheels
# (everything runs inside .venv, created on first use, except gpu-wheels)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install install-export test demo bench results settings datasets mutants lint gpu-wheels clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .  # common/, algorithms/, datagen/, configs/ importable from any entry file
	touch $(STAMP)

install: $(STAMP)

# ONNX export of a trained policy (scripts/export.py --out FILE.onnx): onnx and onnxruntime, pinned. CI installs them
# so that tests/test_export.py checks the ONNX files too (they are skipped, with this target named, without them).
EXPORT_STAMP := $(VENV)/.installed-export
$(EXPORT_STAMP): $(STAMP) requirements-export.txt
	$(PY) -m pip install --quiet -r requirements-export.txt
	touch $(EXPORT_STAMP)

install-export: $(EXPORT_STAMP)

# Test files in parallel, one worker per core (at most 4); a file's tests stay on one worker, sharing its fixtures.
test: $(STAMP)
	$(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile tests

demo: $(STAMP)
	$(PY) scripts/demo.py

# With the authors' code in its own environment (tools/parity/README.md) it is timed in the same run, e.g.
# make bench AUTHORS_PYTHON=/tmp/authors-venv/bin/python AUTHORS_SRC=/tmp/authors-misa
BENCH_ARGS ?=
bench: $(STAMP)
	AUTHORS_PYTHON="$(AUTHORS_PYTHON)" AUTHORS_SRC="$(AUTHORS_SRC)" $(PY) scripts/bench.py $(BENCH_ARGS)

# The budget of the published table (README "Results"); override, e.g. make results RESULTS_ARGS="--steps 1000000"
RESULTS_ARGS ?= --datasets hopper-medium-replay-v4 --seeds 2 --steps 50000 --eval-every 5000 --eval-episodes 10 \
	--set misa.n_actions=10 --set misa.unbiased_samples=dataset
results: $(STAMP)
	$(PY) scripts/results.py $(RESULTS_ARGS) --doc docs/RESULTS.md

# docs/SETTINGS.md from the config files' values and `src:` comments (tests/test_configs.py checks it is current)
settings: $(STAMP)
	$(PY) scripts/settings_table.py

# Regenerates the shipped datasets' recipe into runs/datasets/ (about an hour per env on this CPU; data/ is untouched)
datasets: $(STAMP)
	for env in hopper halfcheetah walker2d; do \
	  $(PY) datagen/make_datasets.py --env $$env --levels random,medium,medium-replay --seed 0 \
	    --out runs/datasets --max-transitions 100000 || exit 1; \
	done

# Each plausible bug in scripts/mutations.toml must fail the tests named for it (MUTANTS_ARGS="--only a,b" for some)
MUTANTS_ARGS ?=
mutants: $(STAMP)
	$(PY) scripts/mutants.py $(MUTANTS_ARGS)

# Wheels for an offline GPU machine that has its own CUDA JAX (README "On a GPU"): requirements-gpu.txt, each pinned and
# fetched without its dependencies (the list names them), for CPython $(GPU_PYTHON_VERSION) on x86-64 Linux, into
# $(GPU_WHEELS)/ (replaced whole: one version of each). Then: scripts/gpu_check.sh --wheels $(GPU_WHEELS)
GPU_PYTHON_VERSION ?= 3.12
GPU_WHEELS ?= .gpu-wheels
GPU_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
	manylinux_2_5_x86_64 manylinux1_x86_64
gpu-wheels:
	rm -rf $(GPU_WHEELS).part && mkdir -p $(GPU_WHEELS).part
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
	  --python-version $(GPU_PYTHON_VERSION) $(addprefix --platform ,$(GPU_PLATFORMS)) \
	  -r requirements-gpu.txt -d $(GPU_WHEELS).part
	rm -rf $(GPU_WHEELS) && mv $(GPU_WHEELS).part $(GPU_WHEELS)
	@du -cb $(GPU_WHEELS)/*.whl | tail -1 | awk '{printf "$(GPU_WHEELS): %d wheels, %.1f MB\n", '"$$(ls $(GPU_WHEELS)/*.whl | wc -l)"', $$1 / 1e6}'

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
