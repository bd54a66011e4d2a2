# All set-up is in here: a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
STAMP  := $(VENV)/.synced
PYTEST_ARGS ?=
BENCH_ARGS ?=
ARRIVAL_ARGS ?=
DAILY_ARGS ?=
COVERAGE_ARGS ?=

.PHONY: setup demo cluster-demo test lint bench clean help

help:
	@echo "make demo   simulate a world and run the Airflow DAGs on it, day by day (SQLite, local files)"
	@echo "make cluster-demo  the same on Airflow's CeleryExecutor: 2 workers, PostgreSQL, Redis (docs/scaling.md)"
	@echo "make test   run the test suite"
	@echo "make lint   ruff"
	@echo "make bench  benchmarks: worlds of 10k/100k/1M users (BENCH_ARGS='--sizes 10k,100k' for fewer),"
	@echo "            written to bench/out/results.json and docs/benchmarks.md; then a late-delivered"
	@echo "            100k-user world run day by day (bench/arrival.py, ARRIVAL_ARGS='--users 10000' for less);"
	@echo "            then the whole daily run per stage at 10k and 100k users (bench/daily.py, DAILY_ARGS='--sizes 10k')"
	@echo "            then the coverage of the attribution intervals over 500 simulated worlds (bench/coverage.py,"
	@echo "            COVERAGE_ARGS='--replications 60' for fewer)"

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(STAMP): $(UV) pyproject.toml uv.lock
	UV_PYTHON=$(PYTHON) $(UV) sync --frozen --python $(PYTHON)
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/seedfunnel demo

cluster-demo: setup
	$(VENV)/bin/seedfunnel cluster-demo

test: setup
	$(VENV)/bin/python -m pytest -n 2 --dist loadscope $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check pipelines dags tests bench

bench: setup
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)
	$(VENV)/bin/python bench/arrival.py $(ARRIVAL_ARGS)
	$(VENV)/bin/python bench/daily.py $(DAILY_ARGS)
	$(VENV)/bin/python bench/coverage.py $(COVERAGE_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .seedfunnel .pytest_cache
