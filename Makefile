# Two entry points, both from a fresh clone: `make demo` and `make test`.
# Everything installs into ./.venv (Python 3.11, no conda, no GPU needed).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint clean-demo

install: $(VENV)/.installed

# torch is pinned to the release whose CPU wheel this install targets; an unpinned torch would
# pull a multi-GB CUDA build. On a GPU machine install torch your usual way first.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES) results/demo/metrics.json
	@cat results/demo/metrics.json

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check thne tests benchmarks resources
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf data/demo features/demo results/demo logs/demo benchmarks/out/demo
