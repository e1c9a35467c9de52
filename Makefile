# The verbs a newcomer needs. Every target installs what it needs first (scripts/setup
# is idempotent and quick when nothing is missing).
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup test lint typecheck unit generate check-generated bench chaos run clean

setup:
	./scripts/setup

lint: setup
	$(BIN)/ruff check src tests bench chaos
	$(BIN)/ruff format --check src tests bench chaos

typecheck: setup
	$(BIN)/mypy src

unit: setup
	$(PY) -m pytest

# Generated files are rendered from Python and committed; CI fails on any difference.
# One command renders all of k8s/: monitoring/, single/, scaled/.
generate: setup
	$(BIN)/nova-monitoring render --manifests --output k8s

check-generated: setup
	./scripts/check-generated

test: setup lint typecheck check-generated unit

bench: setup
	$(PY) -m bench

# The fault suite (real processes on loopback, about 6 minutes): docs/reliability.md.
chaos: setup
	$(PY) -m chaos

run: setup
	$(BIN)/nova-streaming stack up

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
