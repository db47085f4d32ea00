# Two commands do everything: `make demo` (the main job, on embedded SQLite) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test soak lint install clean peers

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/workclaim demo

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy --strict src

test: $(STAMP)
	$(BIN)/python -m pytest

# The peer benchmark (issue 8): its own virtualenv, then the full default run (PEERS_ARGS to narrow).
peers:
	bash benchmarks/peers/setup.sh
	benchmarks/peers/.venv/bin/python benchmarks/peers/run.py $(PEERS_ARGS)

# The full fault matrix (bounded in time); prints the fault table, writes bench-results/soak.json.
soak: $(STAMP)
	$(BIN)/python -m pytest tests/faults --soak -m faults -p no:cacheprovider -q

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
