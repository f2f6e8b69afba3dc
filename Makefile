# The two commands of the README, and a few for development.
#   make quickstart   create .venv if missing, install, run the quickstart sweep
#   make test         create .venv if missing, install, run the whole test suite
# Installation is keyed on the pyproject.toml files: a second run does not reinstall. The
# worked example plugin (examples/sunspots) is installed beside rnnprune, so its short names
# work and its tests run.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Offline machines of this project keep real data beside the checkout; users with internet
# leave RNNPRUNE_DATA_DIR unset and torchvision downloads into the user cache.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(origin RNNPRUNE_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_MNIST)/MNIST/raw),)
export RNNPRUNE_DATA_DIR := $(SHARED_MNIST)
endif
endif

.PHONY: install quickstart test test-fast lint docs bench

install: $(INSTALLED)

EXAMPLE := examples/sunspots

$(INSTALLED): pyproject.toml $(EXAMPLE)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' -e $(EXAMPLE)
	touch $@

# A second run continues (or re-reports) the same sweep instead of refusing to overwrite it.
QUICKSTART_STATE := runs/sweeps/quickstart/rnnprune_sweep.json

# The sweep ends with its Pareto front and dashboard on the MLflow parent run; the pick then
# registers the sparsest front model with at least 95% validation accuracy (validation, so
# the test set stays out of the choice).
quickstart: $(INSTALLED)
	$(BIN)/rnnprune sweep sweeps/quickstart.yaml $(if $(wildcard $(QUICKSTART_STATE)),--resume)
	$(BIN)/rnnprune pick rnnprune-quickstart --min-quality 0.95 --quality-metric val_accuracy

test: $(INSTALLED)
	$(BIN)/python -m pytest tests

test-fast: $(INSTALLED)
	$(BIN)/python -m pytest tests -m "not slow"

lint: $(INSTALLED)
	$(BIN)/ruff check rnnprune tests benchmarks dashboards examples

# The user guide as a site (mkdocs.yml), strict: a broken link or anchor fails the build.
# NO_MKDOCS_2_WARNING silences the theme's end-of-life banner, printed on every build otherwise.
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site
