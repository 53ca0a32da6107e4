# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv, installs the
# package (not editable: tests run against what a user installs) and the Debian `prometheus`,
# `prometheus-alertmanager` and `redis-server` packages when promtool, prometheus, alertmanager,
# amtool or redis-server is missing (scripts/ensure-prometheus.sh).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test lint format bench fuzz generate install tools clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

tools:
	@scripts/ensure-prometheus.sh

install: $(PY)
	$(PY) -m pip install -q '.[test]'

demo: $(PY) tools
	$(PY) -m pip install -q '.[demo]'
	$(BIN)/steadystream demo

lint: install
	$(BIN)/ruff check
	$(BIN)/ruff format --check

format: install
	$(BIN)/ruff format
	$(BIN)/ruff check --fix

test: tools install lint
	$(BIN)/pytest

generate: install
	$(BIN)/steadystream generate examples/chat-gateway/slo.yaml --out examples/chat-gateway

bench: $(PY) tools
	$(PY) -m pip install -q '.[bench]'
	$(PY) benchmarks/run.py

# The spec loader under 3,000 seeded mutations (make test runs 300); prints timings.
# FUZZ_SEED picks another set; --save copies failing cases into tests/fuzz/spec/.
FUZZ_SEED ?= 1
fuzz: install
	$(PY) tests/spec_fuzz.py --cases 3000 --seed $(FUZZ_SEED)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
