# Runboard: `make run` starts the board with live demo runs; `make test` runs the whole suite.
# Both bootstrap .venv on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/runboard
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
export TEST_POSTGRES_URL TEST_REDIS_URL

.PHONY: run test test-sqlite test-postgres lint venv clean

# Create .venv if missing; install only when pyproject.toml asks for something it lacks (so a
# ready environment, even a shared one, is never reinstalled and needs no network).
venv:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) .ci/requirements_met.py >/dev/null 2>&1 || { \
		echo "== installing dependencies into $(VENV) =="; \
		$(PY) .ci/requirements_met.py; \
		$(PY) -m pip install --quiet --upgrade pip && \
		$(PY) -m pip install --quiet -e '.[dev]'; }

# The live demo: daphne + clock on 127.0.0.1:8000, a submitter, simulated executors and an
# operator, all through the HTTP API. DEMO_RATE (runs/s) and DEMO_EXECUTORS tune it.
# `exec`: make's own SIGTERM (make forwards it to its recipe's shell) must reach the demo,
# which then stops its actors and its server cleanly; without it the shell died alone and the
# demo and its server ran on, orphaned, until something killed them.
run: venv
	DEBUG=1 exec $(PY) manage.py demo

# The whole suite twice: on the embedded default (SQLite + in-memory channel layer), then on
# the scale-out path (PostgreSQL + Redis). Outside CI the second pass is skipped, with a
# message, when either service is unreachable; under CI=true it always runs.
test: test-sqlite test-postgres

test-sqlite: venv
	$(PY) -m pytest -m "not postgres and not redis"

test-postgres: venv
	@if [ "$${CI:-}" = true ] || [ "$${CI:-}" = 1 ] || $(PY) -m tests.backends postgres redis; then \
		echo "== PostgreSQL + Redis pass =="; \
		DATABASE_URL=$(TEST_POSTGRES_URL) REDIS_URL=$(TEST_REDIS_URL) \
			$(PY) -m pytest -m "not sqlite_only and not browser"; \
	else \
		echo "Skipping the PostgreSQL + Redis pass (see above for what is missing)."; \
	fi

lint: venv
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) var
