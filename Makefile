# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export RUNNER_CLOCK ?= virtual
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install chromium run serve lint test translations bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) chromium

# The browser tests drive Debian's chromium (/usr/bin/chromium); install it when missing.
# Without root or sudo this only warns: the browser tests then skip (and fail when CI=true).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium ) \
	    || echo "warning: could not install chromium; browser tests will not run"; }

# The demo company on the virtual clock: scheduler/worker in the background, the web app
# (gunicorn) on http://$(HOST):$(PORT); Ctrl-C stops both. The worker and gunicorn's processes
# count their metrics in METRICS_DIR (prometheus-client's multiprocess mode), emptied first, so
# that /metrics shows them all; each request is logged by the app (no gunicorn access log).
METRICS_DIR ?= $(CURDIR)/var/metrics
# The customers' quiet hours (README, "Quiet hours"): on for the demo; the runner's own default is off.
run: export RUNNER_SENDING_WINDOW ?= 08:00-20:00
run: install
	$(BIN)/runner db upgrade
	$(BIN)/runner deploy processes
	$(BIN)/runner demo
	@echo "web app on http://$(HOST):$(PORT) (sign in with a login printed above, kept in var/demo_passwords.json); Ctrl-C stops"
	@rm -rf '$(METRICS_DIR)' && mkdir -p '$(METRICS_DIR)'
	@export PROMETHEUS_MULTIPROC_DIR='$(METRICS_DIR)'; \
	$(BIN)/runner worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gunicorn -c python:web.gunicorn_conf --bind $(HOST):$(PORT) --workers 2 --threads 4 'web:create_app()'

# The static checks alone: lint rules, formatting, types (mypy's settings: pyproject.toml),
# the import contracts (import-linter's: pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# Extract the web app's texts and merge them into the English catalog (then fill in msgstr).
translations: install
	$(BIN)/pybabel extract -F web/translations/babel.cfg -k _l -o web/translations/messages.pot \
	  --no-location --sort-output --omit-header .
	$(BIN)/pybabel update -i web/translations/messages.pot -d web/translations -l en --no-fuzzy-matching \
	  --omit-header --width 100
	@rm -f web/translations/messages.pot
	@$(BIN)/python -c "from babel.messages.pofile import read_po; \
	  c = read_po(open('web/translations/en/LC_MESSAGES/messages.po', 'rb')); \
	  todo = [m.id for m in c if m.id and not m.string]; \
	  print('untranslated:', *todo, sep='\n  ') if todo else print('all texts translated')"

bench: install
	$(BIN)/python -m bench.long_lived
	$(BIN)/python -m bench.expressions
	$(BIN)/python -m bench.instrumentation

clean:
	rm -rf $(VENV) var .pytest_cache
