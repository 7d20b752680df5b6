# `make test` and `make benchmark` create .venv on first use; nothing but Python 3.10+ is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-large benchmark figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## The main job: train and compare both blocks on the embedded digits.
demo: $(STAMP)
	$(VENV)/bin/memblocks demo

## The default suite: everything but the `large` marker.
test: $(STAMP)
	$(PY) -m pytest -m "not large" -n 2 $(PYTEST_ARGS)

## The slow checks, opt-in: `large` tests, and the property tests with 300 examples each.
test-large: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -m "large or property" -n 2 $(PYTEST_ARGS)

## The benchmarks; each writes its benchmarks/results/*.json.
benchmark: $(STAMP)
	$(PY) benchmarks/block_overhead.py
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/parameter_table.py
	$(PY) benchmarks/export_latency.py

## The README's figures: runs the notebooks, which save their plots to notebooks/figures/.
figures: $(STAMP)
	mkdir -p notebooks/figures
	MEMBLOCKS_FIGURES_DIR=$(CURDIR)/notebooks/figures $(PY) notebooks/run_notebooks.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
