# The two commands of the README: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export SECRET_KEY ?= insecure-local-key-for-development-and-tests-only

.PHONY: run test install lint typecheck pytest messages e2e ops-drill bench clean lock

# Installs exactly what requirements-dev.lock pins, each file checked against its hash (pyproject.toml says what the
# project needs; `make lock` turns that into the lock files, and tests/deploy/test_lockfile.py checks they agree).
$(VENV)/.installed: requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed

messages: install
	$(PY) manage.py compilemessages --locale zh_Hans --ignore '.venv' -v 0

# The service with demo data on SQLite and a broker kept in files: no external service needed.
run: install messages
	DEBUG=1 bin/run-dev

test: install messages lint typecheck pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy .

pytest: install
	$(PY) -m pytest

# End-to-end run of gunicorn, a worker and beat against DATABASE_URL and REDIS_URL (see .ci/run), then the
# operations drill: metrics scraped around an approval, and a backup restored and proved consistent.
e2e: install messages
	bin/e2e
	$(PY) bin/ops_drill.py

# Metrics scraped around an approval through gunicorn, then pg_dump, pg_restore and the restored copy proved
# consistent (bin/ops_drill.py); against DATABASE_URL, and REDIS_URL if set.
ops-drill: install
	$(PY) bin/ops_drill.py

# Benchmarks against this machine's PostgreSQL and Redis; prints ratios and writes bench/results/latest.json.
bench: install
	$(PY) bench/run.py

# Re-resolve the lock files from pyproject.toml: after changing a dependency, or to take newer releases.
LOCK_FLAGS := --quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-find-links --no-emit-index-url
lock: install
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --output-file requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile $(LOCK_FLAGS) --extra dev --output-file requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) db.sqlite3 .celery media staticfiles
