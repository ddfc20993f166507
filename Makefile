# The two commands of the quick start: `make run` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint typecheck check-compose clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall when pyproject.toml changes; the stamps tell the plain install from the one with test tools.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[local]"
	rm -rf build *.egg-info
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet ".[local,test]"
	rm -rf build *.egg-info
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --no-input
	bin/run

test: $(VENV)/.installed-test
	$(BIN)/pytest $(PYTEST_ARGS)

# Every benchmark in bench/ on PostgreSQL and Redis (and wrk), about 40 minutes; writes bench/RESULTS.md.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run.py $(BENCH_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) var build *.egg-info
