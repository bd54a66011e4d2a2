# All set-up is in here: a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv
VENV   := .venv
STAMP  := $(VENV)/.synced
PYTEST_ARGS ?=

.PHONY: setup demo test lint bench clean help

help:
	@echo "make demo   simulate a world and run every stage on it (SQLite, local files)"
	@echo "make test   run the test suite"
	@echo "make lint   ruff"
	@echo "make bench  benchmarks (written to bench/out/results.json)"

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

test: setup
	$(VENV)/bin/python -m pytest -n 2 $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check pipelines dags tests bench

bench: setup
	$(VENV)/bin/python bench/run.py

clean:
	rm -rf $(VENV) $(TOOLS) .seedfunnel .pytest_cache
