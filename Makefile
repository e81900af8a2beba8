# The two commands of the README: `make demo` and `make test`. Each creates .venv and
# installs the pinned dependencies first (again only when pyproject.toml or the lock changes).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint mutation alone bench-help clean

demo: $(STAMP)
	$(VENV)/bin/hub demo

# Two workers (pytest-xdist), each a test session of its own: the tests wait on servers,
# dbt and Prefect as much as they compute. TEST_WORKERS=0 runs one session.
test: $(STAMP)
	$(VENV)/bin/python -m pytest -n $${TEST_WORKERS:-2} --dist worksteal

# The policy expectations are checked on the tests' fixed day (REFERENCE_DAY in
# tests/conftest.py), not today: a grant whose window ends must not fail CI on that date.
# `hub policies test` alone checks today, as an operator wants.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	HUB_CLOCK=$${HUB_CLOCK:-2026-11-23} $(VENV)/bin/hub policies test

# Mutation check of the access decision, the masks and ledger verification (docs/mutation.md):
# a few minutes; by hand, not part of `make test`. Set HUB_TEST_DATABASE_URL to use a running
# PostgreSQL (else one is started). mutants/ is mutmut's scratch copy: removed for a clean run.
mutation: $(STAMP)
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children $${MUTATION_JOBS:-2}
	$(VENV)/bin/mutmut results

# Each test in a pytest session of its own (tests/alone.py), so that none leans on another's
# leftovers: hours for the whole suite, resumable (passed tests are logged in
# tests/alone_runs.jsonl and not run again); by hand. E.g. make alone ARGS="tests/test_api.py"
alone: $(STAMP)
	$(VENV)/bin/python -m tests.alone --jobs $${ALONE_JOBS:-2} $(ARGS)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run: make PYTHON=python3.11 ...")'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .hub dbt_project/target
