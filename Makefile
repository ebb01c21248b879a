# One command each, on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint stubs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/airctl demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Everything, the slow chaos matrices included (what CI runs), in two processes: each has its
# own Temporal dev server and its own slice of the port range (tests/conftest.py). worksteal:
# an idle process takes tests queued for the busy one, so a long test does not end the run
# alone.
test: lint
	$(BIN)/pytest -q -ra -n 2 --dist worksteal --durations=15

# A developer's quick loop: everything but the tests marked slow.
test-quick: lint
	$(BIN)/pytest -q -ra -m "not slow"

stubs: $(STAMP)
	$(BIN)/python -m protos.generate

bench: $(STAMP)
	$(BIN)/python bench/transfer.py

clean:
	rm -rf $(VENV) .air build *.egg-info
