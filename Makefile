# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export RUNNER_CLOCK ?= virtual

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/runner db upgrade
	$(BIN)/runner deploy processes
	$(BIN)/runner demo
	$(BIN)/runner worker

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.long_lived

clean:
	rm -rf $(VENV) var .pytest_cache
