# `make test` and `make benchmark` create .venv on first use; nothing but Python 3.11+ is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Two workers; idle ones steal queued tests (see CONTRIBUTING.md, "What make test runs").
XDIST := -n 2 --dist worksteal

# .venv: the package with every extra and the test tools (what `make demo` and the
# TensorFlow pass use). .venv-jax: the core install (Keras + NumPy) + JAX + the test tools,
# nothing else: what `pip install keras-memblocks "jax[cpu]"` gives a user.
# .venv-torch: the core install + PyTorch. .venv-compat: the oldest TensorFlow of the range.
JAX_VENV ?= .venv-jax
TORCH_VENV ?= .venv-torch
COMPAT_VENV ?= .venv-compat
# PyPI's Linux `torch` brings several GB of CUDA packages; a CPU build is enough here, e.g.
# TORCH="torch --index-url https://download.pytorch.org/whl/cpu" or a local TORCH="torch==2.13.0".
TORCH ?= torch
# The oldest TensorFlow that pyproject.toml's [tensorflow] extra allows.
TF_COMPAT ?= tensorflow==2.20.*
# Test files are chosen by their module-level marks (pyproject.toml lists them), so a new
# file joins a pass by its `pytestmark`, not by an edit here. Files, not `-m`: the other
# virtual environments lack TensorFlow, which the other files import when collected.
# every_backend: layers, models, analysis, the GPU benchmark; the core install's JAX pass
# leaves out the files whose whole module needs an extra (the analyses').
BACKEND_TESTS := $(shell grep -l "^pytestmark.*every_backend" tests/test_*.py)
CORE_BACKEND_TESTS := $(shell grep -L "^pytestmark.*needs_extras" $(BACKEND_TESTS))
# oldest_tensorflow: the trainer, the data, the export, the private APIs of
# keras_memblocks.utils.compat, run by `make test-compat` on the oldest TensorFlow.
COMPAT_TESTS := $(shell grep -l "^pytestmark.*oldest_tensorflow" tests/test_*.py)

# setuptools prints a boxed note on every editable install ("Editable installation ...
# folders with the same name as your package may take precedence"): informational, and
# this tree has no such folder, so it is kept off a newcomer's console, and nothing else is.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: demo test data lint docs package-check test-torch test-compat test-large test-edge benchmark figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(PY) -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

$(JAX_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(JAX_VENV)/bin/python -m pip install --quiet -e ".[test-tools]" "jax[cpu]"
	touch $@

$(TORCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(TORCH_VENV)/bin/python -m pip install --quiet -e ".[test-tools]" $(TORCH)
	touch $@

$(COMPAT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(COMPAT_VENV)/bin/python -m pip install --quiet -e ".[train,export,test]" \
		"$(TF_COMPAT)"
	touch $@

## The main job: train and compare both blocks on the embedded digits.
demo: $(STAMP)
	$(VENV)/bin/memblocks demo

## Fashion-MNIST for the tests and the studies: Debian's dataset-fashion-mnist, installed
## where apt-get runs as root (elsewhere its tests skip, saying so; under CI=true they fail).
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] \
		&& command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

## The default suite: the lint checks and the docs site; everything but the `large` marker,
## on TensorFlow; the backend files on JAX in the core install, then their tests that need an
## extra on JAX with every extra (the property tests run on TensorFlow); then the built package.
test: data lint docs $(STAMP) $(JAX_VENV)/.installed
	$(PY) -m pytest -m "not large and not web" $(XDIST) $(PYTEST_ARGS)
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(JAX_VENV)/bin/python -m pytest \
		-m "not large and not property" $(XDIST) $(CORE_BACKEND_TESTS) $(PYTEST_ARGS)
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(PY) -m pytest \
		-m "needs_extras and not large and not property" $(XDIST) $(BACKEND_TESTS) $(PYTEST_ARGS)
	$(PY) tools/check_package.py

## ruff on the whole tree, and the import contract (pyproject.toml: each part imports only
## the parts below it, so the core never needs an extra).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

## The documentation site, in site/ (open site/index.html): strict, so a broken link, a
## symbol the API reference cannot find or any other warning fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

## The sdist and wheel built, checked by twine, and the wheel installed with JAX in a fresh
## environment away from the source tree, where the README's example must run.
package-check: $(STAMP)
	$(PY) tools/check_package.py

## The backend files on PyTorch, in the core install (opt-in: the install is large).
test-torch: $(TORCH_VENV)/.installed
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -m pytest -m "not large" $(XDIST) \
		$(CORE_BACKEND_TESTS) $(PYTEST_ARGS)

## The trainer, data and export tests on the oldest TensorFlow of the supported range (opt-in).
test-compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/python -m pytest -m "not large" $(XDIST) $(COMPAT_TESTS) $(PYTEST_ARGS)

## The exported files in a browser, opt-in: ONNX Runtime Web (npm, into tests/web) in
## headless Chromium (Debian's, installed where apt-get runs as root), then the runtime matrix.
test-edge: $(STAMP) tests/web/node_modules/.installed
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS) tests/test_web_runtime.py tests/test_edge_runtimes.py

tests/web/node_modules/.installed: tests/web/package.json
	@if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; \
	fi
	cd tests/web && npm install --no-audit --no-fund --silent
	touch $@

## The slow checks, opt-in: `large` tests, and the property tests with 300 examples each.
test-large: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -m "large or property" $(XDIST) $(PYTEST_ARGS)

## The benchmarks; each writes its benchmarks/results/*.json. runtime_overhead.py times
## JAX and PyTorch in .venv-jax and .venv-torch (make test and make test-torch create them).
benchmark: $(STAMP) $(JAX_VENV)/.installed
	$(PY) -m benchmarks.runtime_overhead
	$(PY) -m benchmarks.block_overhead
	$(PY) -m benchmarks.cc_block_parts
	$(PY) -m benchmarks.cc_block_parts --net demo
	$(PY) -m benchmarks.cc_formulations
	KERAS_BACKEND=jax $(JAX_VENV)/bin/python -m benchmarks.cc_formulations \
		--output benchmarks/results/cc_formulations_jax.json
	$(PY) -m benchmarks.input_pipeline
	$(PY) -m benchmarks.parameter_table
	$(PY) -m benchmarks.export_latency
	$(PY) -m benchmarks.block_comparison --figure notebooks/figures/block_comparison.png

## The notebooks, run and stored executed (what the docs show), and their figures saved
## to notebooks/figures/.
figures: $(STAMP)
	$(PY) notebooks/run_notebooks.py --store --figures notebooks/figures

clean:
	rm -rf $(VENV) $(JAX_VENV) $(TORCH_VENV) $(COMPAT_VENV) .pytest_cache .hypothesis build *.egg-info \
		tests/web/node_modules \
		site .cache .import_linter_cache
