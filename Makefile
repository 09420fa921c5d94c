# The two commands of the README. Both set everything up themselves (idempotent).
.PHONY: demo test setup setup-harbor lint
PY := .venv/bin/python

setup:
	@bash scripts/setup.sh

# harbor (Python 3.12) in .venv-harbor, for `full_bench_parallel.sh --engine harbor` and its tests
setup-harbor:
	@bash scripts/setup_harbor.sh

demo: setup
	@bash scripts/demo.sh

test: setup setup-harbor
	@$(PY) -m ruff check .
	@.venv/bin/lint-imports --no-cache
	@$(PY) -m pytest -q -ra --durations=15 $(PYTEST_ARGS)

lint:
	@$(PY) -m ruff check . && $(PY) -m ruff format --check .
