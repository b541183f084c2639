# Two commands do everything on a fresh Debian-like machine (as root or with sudo):
#   make run   - set up, start the embedded PostGIS, load the demo city, serve on :8000
#   make test  - set up, run the whole test suite against a throwaway PostGIS
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: setup run test lint bench clean system-deps

setup: system-deps $(STAMP) $(NODE_STAMP)

system-deps:
	@bash .ci/system-deps.sh

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

run: setup
	$(BIN)/cim db start
	$(BIN)/cim db upgrade
	$(BIN)/cim mqtt start
	$(BIN)/cim demo load
	# the demo city's sensors keep reporting over MQTT while the service runs (Ctrl-C stops both)
	$(BIN)/cim demo sensors --quiet &
	# the demo round is a draft of invented values: shown to all, as a transparent process would
	CIM_API_GRADING_PUBLIC_DRAFTS=true $(BIN)/cim serve

test: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check cim ingest tiles grading twin analysis demo api cli tests bench
	$(BIN)/mypy cim ingest tiles grading twin analysis demo api cli

bench: setup
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
