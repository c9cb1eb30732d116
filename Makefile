# rdhpo_hpc: `make demo` runs the quickstart study under mpirun; `make test` runs every test.
# Both create .venv and install into it: CPU torch, Open MPI 5 (ULFM) from the package index.
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

.PHONY: demo test test-fast bench bench-quick install clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
	$(BIN)/pip install -q -e ".[local,test,plot]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(MPIRUN) -n $(NP) $(BIN)/python -m rdhpo_hpc run configs/quickstart.yaml --overwrite
	$(BIN)/rdhpo plot results/quickstart.h5 --out results/quickstart_plots

test: install
	$(BIN)/python -m pytest -q -ra tests

test-fast: install
	$(BIN)/python -m pytest -q -ra tests/unit tests/integration

bench: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) results build *.egg-info
