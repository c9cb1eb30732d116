# rdhpo_hpc: `make demo` runs the quickstart study under mpirun; `make test` runs every test;
# `make lint`: ruff (lint + format check), mypy, shellcheck.
# Each creates .venv and installs into it: CPU torch, Open MPI 5 (ULFM) from the package index.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
NP     ?= 4
# CPU build of torch: 2.13.0 is served as a CPU wheel here; elsewhere set TORCH_INDEX to a CPU index.
TORCH  ?= torch==2.13.0
TORCH_INDEX ?=
# Open MPI from the wheel, as root and with more ranks than cores (tests, laptops, CI).
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1
export PRTE_MCA_rmaps_default_mapping_policy := :oversubscribe
export OMPI_MCA_btl := self,sm,tcp
MPIRUN := $(BIN)/mpirun --with-ft ulfm

.PHONY: demo test test-fast lint bench bench-quick install clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install -q -e ".[local,test,plot,lint,data,tensorboard,optuna,mlflow,fast]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(MPIRUN) -n $(NP) $(BIN)/python -m rdhpo_hpc run configs/quickstart.yaml --overwrite
	$(BIN)/rdhpo plot results/quickstart.h5 --out results/quickstart_plots

test: install
	$(BIN)/python -m pytest -q -ra tests

test-fast: install
	$(BIN)/python -m pytest -q -ra tests/unit tests/integration

# Every check runs (one report of all problems); lint fails if any failed.  shellcheck is not a
# Python package: installed with apt-get where missing (CI: a fresh Debian machine, as root).
SHELL_SCRIPTS := slurm/*.sbatch slurm/*.sh .ci/run tests/system/slurm/*.sh tests/system/vcluster/*.sh

lint: install
	@command -v shellcheck >/dev/null 2>&1 || { \
	  echo "lint: shellcheck is missing; installing it with apt-get"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; } \
	    && command -v shellcheck >/dev/null 2>&1 \
	    || { echo "lint: ERROR: shellcheck is not installed and apt-get could not install it" \
	              "(needs root and a Debian/Ubuntu package index): install shellcheck, then run make lint again" >&2; \
	         exit 1; }; }
	@rc=0; \
	echo "== ruff check";          $(BIN)/ruff check --output-format concise . || rc=1; \
	echo "== ruff format --check"; $(BIN)/ruff format --check --output-format concise . || rc=1; \
	echo "== mypy";                $(BIN)/mypy || rc=1; \
	echo "== shellcheck";          shellcheck -x $(SHELL_SCRIPTS) || rc=1; \
	if [ $$rc -ne 0 ]; then echo "lint: FAILED (see above; \`$(BIN)/ruff format FILE\` formats a file," \
	  "\`$(BIN)/ruff check --fix FILE\` fixes what can be fixed safely)" >&2; fi; \
	exit $$rc

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) results build *.egg-info
