# make install | test | demo | bench | results | datasets | lint   (everything runs inside .venv, created on first use)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo bench results datasets lint clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

demo: $(STAMP)
	$(PY) scripts/demo.py

bench: $(STAMP)
	$(PY) scripts/bench.py

results: $(STAMP)
	$(PY) scripts/results.py --doc docs/RESULTS.md

# Regenerates the shipped datasets' recipe into runs/datasets/ (about an hour per env on this CPU; data/ is untouched)
datasets: $(STAMP)
	for env in hopper halfcheetah walker2d; do \
	  $(PY) algorithms/make_datasets.py --env $$env --levels random,medium,medium-replay --seed 0 \
	    --out runs/datasets --max-transitions 100000 || exit 1; \
	done

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
