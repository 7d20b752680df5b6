# `make test` and `make benchmark` create .venv on first use; nothing but Python 3.10+ is needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Two workers; idle ones steal queued tests (see the README's Tests section).
XDIST := -n 2 --dist worksteal

# The install without TensorFlow (README, "Without TensorFlow"): what the layers, models and
# analysis need beside Keras and a backend, then the package with --no-deps.
BACKEND_NEUTRAL_DEPS := "keras>=3.13,<4" numpy scipy matplotlib pyyaml scikit-learn
TEST_DEPS := pytest pytest-xdist hypothesis
# .venv-jax: JAX and no TensorFlow; .venv-torch: PyTorch and no TensorFlow.
JAX_VENV ?= .venv-jax
TORCH_VENV ?= .venv-torch
# PyPI's Linux `torch` brings several GB of CUDA packages; a CPU build is enough here, e.g.
# TORCH="torch --index-url https://download.pytorch.org/whl/cpu" or a local TORCH="torch==2.13.0".
TORCH ?= torch
# The test files that hold on every backend: layers, models, analysis, the GPU benchmark.
BACKEND_TESTS := tests/test_squeeze_and_remember_2d.py tests/test_contextual_conv_block_2d.py \
	tests/test_attention_and_regularizer_layers.py tests/test_vgg_like.py tests/test_cifar_models.py \
	tests/test_resnet50.py tests/test_segmentation.py tests/test_block_insertion.py \
	tests/test_block_registry.py tests/test_analysis.py tests/test_serialization_registry.py \
	tests/test_backends.py tests/test_gpu_step_time.py

# setuptools prints a boxed note on every editable install ("Editable installation ...
# folders with the same name as your package may take precedence"): informational, and
# this tree has no such folder, so it is kept off a newcomer's console, and nothing else is.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

.PHONY: demo test test-torch test-large benchmark figures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(QUIET_EDITABLE) $(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(JAX_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(JAX_VENV)
	$(JAX_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(JAX_VENV)/bin/python -m pip install --quiet $(BACKEND_NEUTRAL_DEPS) "jax[cpu]" $(TEST_DEPS)
	$(QUIET_EDITABLE) $(JAX_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(TORCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TORCH_VENV)/bin/python -m pip install --quiet $(BACKEND_NEUTRAL_DEPS) $(TORCH) $(TEST_DEPS)
	$(QUIET_EDITABLE) $(TORCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

## The main job: train and compare both blocks on the embedded digits.
demo: $(STAMP)
	$(VENV)/bin/memblocks demo

## The default suite: ruff on the whole tree; everything but the `large` marker, on
## TensorFlow; then the backend files on JAX where TensorFlow is not installed (the property
## tests run on TensorFlow).
test: $(STAMP) $(JAX_VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -m "not large" $(XDIST) $(PYTEST_ARGS)
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(JAX_VENV)/bin/python -m pytest \
		-m "not large and not property" $(XDIST) $(BACKEND_TESTS) $(PYTEST_ARGS)

## The backend files on PyTorch, without TensorFlow (opt-in: the install is large).
test-torch: $(TORCH_VENV)/.installed
	KERAS_BACKEND=torch $(TORCH_VENV)/bin/python -m pytest -m "not large" $(XDIST) $(BACKEND_TESTS) \
		$(PYTEST_ARGS)

## The slow checks, opt-in: `large` tests, and the property tests with 300 examples each.
test-large: $(STAMP)
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -m "large or property" $(XDIST) $(PYTEST_ARGS)

## The benchmarks; each writes its benchmarks/results/*.json.
benchmark: $(STAMP)
	$(PY) benchmarks/block_overhead.py
	$(PY) benchmarks/cc_block_parts.py
	$(PY) benchmarks/cc_block_parts.py --net demo
	$(PY) benchmarks/input_pipeline.py
	$(PY) benchmarks/parameter_table.py
	$(PY) benchmarks/export_latency.py
	$(PY) benchmarks/block_comparison.py --figure notebooks/figures/block_comparison.png

## The README's figures: runs the notebooks, which save their plots to notebooks/figures/.
figures: $(STAMP)
	mkdir -p notebooks/figures
	MEMBLOCKS_FIGURES_DIR=$(CURDIR)/notebooks/figures $(PY) notebooks/run_notebooks.py

clean:
	rm -rf $(VENV) $(JAX_VENV) $(TORCH_VENV) .pytest_cache .hypothesis build *.egg-info
