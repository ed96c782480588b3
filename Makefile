# Both entry points create .venv and install everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo crash-demo test lint typecheck unit integration bench system-deps constraints clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

# The headline game day on a throwaway embedded stack; reports land in reports/.
demo: $(STAMP)
	$(BIN)/datadrill run scenarios/metadata_loss.py

# SIGKILL the sink and the relay mid-flight and check exactly-once.
crash-demo: $(STAMP)
	$(BIN)/python scripts/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts examples scenarios

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP) system-deps
	$(BIN)/pytest tests/integration

test: $(STAMP) system-deps lint typecheck
	$(BIN)/pytest --durations=30

bench: $(STAMP)
	$(BIN)/python bench/stack_up.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/canary_latency.py
	$(BIN)/python bench/headline.py
	$(BIN)/python bench/reconcile.py
	$(BIN)/python bench/relay_drain.py
	$(BIN)/python bench/replay.py
	$(BIN)/python bench/decode.py
	$(BIN)/python bench/all_scenarios.py

# Regenerate the pinned set after changing dependency ranges in pyproject.toml.
constraints:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^datadrill' > constraints.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .datadrill .mypy_cache .ruff_cache .pytest_cache
