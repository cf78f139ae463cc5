# Two entry points, both from a fresh clone: `make demo` and `make test`.
# Everything installs into ./.venv (Python 3.11, no conda, no GPU needed).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
export PATH := $(abspath $(BIN)):$(PATH)
# librosa's compiled code (thne/features/numba_cache.py) in the venv: `make install` compiles it
# there once, and the demo's and the tests' audio jobs all start from that copy. A venv's copy
# goes with it when the venv is removed.
export THNE_CACHE_DIR := $(abspath $(VENV))/thne-cache

.PHONY: install system demo test test-fast lint clean-demo docs docs-serve

install: $(VENV)/.installed

# torch is installed first and pinned, so the package install does not pick a torch of its own.
# Where pip's default index serves the CUDA build, ask for the CPU one with
#   make demo TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=

# The last step compiles librosa's numba code once (25 CPU-s), so a first run's audio jobs start
# side by side instead of each compiling it (thne/features/numba_cache.py).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	$(BIN)/python -m thne.features.numba_cache
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES) results/demo/metrics.json
	@cat results/demo/metrics.json

# System packages the tests use: Chromium (screenshots of the HTML report) and slurm-wlm with
# munge (the one-node SLURM cluster of .ci/slurm-up, for the profiles/slurm test). apt-get
# installs what is missing, as root or through sudo.
SYSTEM_PACKAGES := chromium slurm-wlm munge
system:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing$$missing with apt-get"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The whole suite on every core (pytest-xdist; -n auto is a worker a core and, with the slow
# tests, one more for while they wait: tests/conftest.py); tests that must not overlap share an
# xdist_group, which --dist loadgroup runs on one worker. --durations=15 names the
# slowest tests in every run. `make test PYTEST_WORKERS=0` runs it serially.
PYTEST_WORKERS ?= auto
PYTEST_ARGS := -q -n $(PYTEST_WORKERS) --dist loadgroup
test: install system
	$(BIN)/python -m pytest $(PYTEST_ARGS) --durations=15

# The edit-test loop: every test but the end-to-end ones (marked slow), in under 2 minutes.
test-fast: install
	$(BIN)/python -m pytest $(PYTEST_ARGS) -m "not slow" --durations=10

lint: install
	$(BIN)/ruff check thne tests benchmarks resources
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf data/demo features/demo results/demo logs/demo benchmarks/out/demo

# The documentation site (docs/, mkdocs.yml), built offline: --strict makes every broken link or
# anchor an error. docs-serve rebuilds it on every edit, at http://127.0.0.1:8000.
docs docs-serve: export NO_MKDOCS_2_WARNING := 1
docs: install
	$(BIN)/mkdocs build --strict

docs-serve: install
	$(BIN)/mkdocs serve
