# Two entry points, both from a fresh clone: `make demo` and `make test`.
# Everything installs into ./.venv (Python 3.11, no conda, no GPU needed).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo test lint clean-demo

install: $(VENV)/.installed

# torch is installed first and pinned, so the package install does not pick a torch of its own.
# Where pip's default index serves the CUDA build, ask for the CPU one with
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
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
