# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8501
# `make test` runs the suite in this many processes (pytest-xdist; 0: one process). tests/conftest.py shares the
# tests out: every Ray test in one process, one after another; the rest module by module.
TEST_WORKERS ?= 2

.PHONY: install demo test app clean-demo bench

# (Re)install when pyproject.toml changes. The stamp is written only after a successful install.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

# Build the demo store in the background if it is missing, and serve the dashboard at once:
# runs appear (with progress) while they train.
demo: $(STAMP)
	$(BIN)/clusterscope demo --if-missing --detach
	$(BIN)/clusterscope app --server.address localhost --server.port $(PORT)

app: $(STAMP)
	$(BIN)/clusterscope app --server.address localhost --server.port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python benchmarks/snapshot.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/analysis.py
	$(BIN)/python benchmarks/dashboard.py

clean-demo:
	rm -rf data/store/demo-*
