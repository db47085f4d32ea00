# Two commands do everything: `make demo` (the main job, on embedded SQLite) and `make test`.
# Every install comes from the lock: uv.lock for the project, benchmarks/peers/requirements.txt
# for the peer benchmark. pyproject.toml keeps the lower bounds users install against.
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LATEST := .venv-latest
# Django 6 needs Python 3.12: a second environment from the same lock, for tests/django_project
# (tests/django_project/test_django6.py runs them there). Found on PATH or in pyenv, never
# downloaded; without one the Django 6 tests are missing (a failure under CI=true).
VENV312 := .venv312
PYTHON312 ?= $(shell for p in $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 \
	$$(command -v python3.12); do "$$p" -c "" 2>/dev/null && { echo "$$p"; break; }; done)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test soak lint install venv312 clean peers long-horizon deps-upgrade test-latest model model-mutants

# uv itself, pinned, in a virtualenv of its own (it is not part of the project's environment).
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --frozen --extra dev --python $(PYTHON)
	touch $(STAMP)

install: $(STAMP)

venv312: | $(UV)
	@if [ -n "$(PYTHON312)" ]; then \
		UV_PROJECT_ENVIRONMENT=$(VENV312) $(UV) sync --quiet --frozen --extra dev --python $(PYTHON312); \
	else echo "no python3.12 on PATH or in pyenv: the Django 6 tests will be missing"; fi

demo: $(STAMP)
	$(BIN)/workclaim demo

LINT_PATHS := src tests benchmarks

# mypy checks the tests too, under the same strict settings (pyproject.toml [tool.mypy]).
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy --strict src
	$(BIN)/mypy tests
	$(BIN)/lint-imports --no-cache

test: $(STAMP) venv312
	$(BIN)/python -m pytest

# Refresh both locks to the newest releases the ranges allow (then run `make test` and commit).
deps-upgrade: | $(UV)
	$(UV) lock --upgrade
	$(UV) pip compile --quiet --upgrade --universal --python-version 3.11 --generate-hashes \
		benchmarks/peers/requirements.in pyproject.toml --extra postgres --extra redis --extra mariadb --extra bench \
		-o benchmarks/peers/requirements.txt

# Lint and test against the newest releases the ranges allow, in a separate virtualenv (not in CI:
# it tells you what the next `make deps-upgrade` breaks).
test-latest: | $(UV)
	rm -rf $(LATEST)
	$(UV) venv --quiet --python $(PYTHON) $(LATEST)
	$(UV) pip install --quiet --python $(LATEST)/bin/python --upgrade -e '.[dev]'
	$(LATEST)/bin/ruff check $(LINT_PATHS)
	$(LATEST)/bin/ruff format --check $(LINT_PATHS)
	$(LATEST)/bin/mypy --strict src
	$(LATEST)/bin/mypy tests
	$(LATEST)/bin/python -m pytest

# The peer benchmark (issue 8): its own virtualenv, then the full default run (PEERS_ARGS to narrow).
peers: | $(UV)
	UV=$(UV) bash benchmarks/peers/setup.sh
	benchmarks/peers/.venv/bin/python benchmarks/peers/run.py $(PEERS_ARGS)

# PostgreSQL under sustained load (issue 18, docs/postgres.md): a fixed offered rate through warm-up,
# clean, held-snapshot and recovery phases (26 minutes by default). SYSTEM=pgqueuer or
# procrastinate runs a peer from the peers' virtualenv; LH_ARGS for the rest (--autovacuum on|off,
# --rate, --phases).
SYSTEM ?= workclaim
long-horizon: $(STAMP) | $(UV)
	@if [ "$(SYSTEM)" = workclaim ]; then \
		$(BIN)/python -m benchmarks.long_horizon --system workclaim $(LH_ARGS); \
	else \
		UV=$(UV) bash benchmarks/peers/setup.sh && \
		benchmarks/peers/.venv/bin/python -m benchmarks.long_horizon --system $(SYSTEM) $(LH_ARGS); \
	fi

# The full fault matrix (bounded in time); prints the fault table, writes bench-results/soak.json.
soak: $(STAMP)
	$(BIN)/python -m pytest tests/faults --soak -m faults -p no:cacheprovider -q

# The protocol model checked by SPIN (docs/model.md): every property, then every mutant.
model: $(STAMP)
	$(BIN)/python -m pytest tests/model/test_spin.py -k "not mutant" -s -p no:cacheprovider -q

model-mutants: $(STAMP)
	$(BIN)/python -m pytest tests/model/test_spin.py -k mutant -s -p no:cacheprovider -q

clean:
	rm -rf $(VENV) $(VENV312) $(LATEST) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
