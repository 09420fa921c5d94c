# The two commands of the README. Both set everything up themselves (idempotent).
.PHONY: demo test setup lint
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	@$(PY) -m ruff check .
	@.venv/bin/lint-imports --no-cache
	@$(PY) -m pytest -q -ra --durations=15 $(PYTEST_ARGS)

lint:
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .
