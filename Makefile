# The few verbs a newcomer needs. Python packages install into .venv and Azurite into node_modules;
# nothing is needed beforehand but python3 (3.11+) and node/npm.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Python 3.13 runs the worker conformance suite (the Functions worker runtime needs it): PYTHON313 if given, else
# pyenv's 3.13, else python3.13 on PATH.
PYTHON313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) $(shell command -v python3.13 2>/dev/null))
PIP_INSTALL := -m pip install --quiet --disable-pip-version-check
# The app's runtime set comes from the lock (requirements.txt: every package with its hashes, for Python 3.11 and
# 3.13 alike), hashes required, before anything else is installed beside it; the test tools are plain pins
# (tests/unit/test_lock.py fails if one of them moved a runtime package).
RUNTIME_INSTALL := $(PIP_INSTALL) --require-hashes -r requirements.txt

.PHONY: test demo serve bytecode lint typecheck security install clean bench unit worker lock

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) $(RUNTIME_INSTALL)
	$(PY) $(PIP_INSTALL) -r requirements-dev.txt
	touch $@

# Regenerate the lock from requirements.in (the top-level pins) with uv: one resolution for every Python from 3.11 on
# and every platform, environment markers where they differ, the hashes of every published file of each release.
# Pins already in the lock are kept; `make lock LOCK_ARGS=--upgrade` moves everything to the newest releases allowed.
lock: $(VENV)/.installed
	$(PY) -m uv pip compile --no-config --quiet --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command "make lock" $(LOCK_ARGS) requirements.in -o requirements.txt

$(VENV)-infra/.installed: requirements-infra.txt
	$(PYTHON) -m venv $(VENV)-infra
	$(VENV)-infra/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed $(VENV)-infra/.installed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy

security: install
	$(PY) -m bandit --quiet --recursive --severity-level medium shared function_app.py
	$(PY) scripts/audit.py

$(VENV)-313/.installed: requirements.txt requirements-worker.txt
	$(PYTHON313) -m venv $(VENV)-313
	$(VENV)-313/bin/python $(RUNTIME_INSTALL)
	$(VENV)-313/bin/python $(PIP_INSTALL) -r requirements-worker.txt
	touch $@

test: lint typecheck security unit worker

unit: install
	$(PY) -m pytest

# The worker conformance suite: the app indexed, loaded and invoked by the real worker runtime (tests/worker).
worker: install
ifeq ($(strip $(PYTHON313)),)
	@if [ "$${CI:-}" = "true" ]; then echo "error: Python 3.13 not found (set PYTHON313): CI must run the worker conformance suite" >&2; exit 1; fi
	@echo "!!! WARNING: Python 3.13 not found (set PYTHON313=/path/to/python3.13): the worker conformance suite" >&2
	@echo "!!! (tests/worker, the app under the real Azure Functions worker runtime) was SKIPPED." >&2
else
	@$(MAKE) --no-print-directory $(VENV)-313/.installed PYTHON313=$(PYTHON313)
	$(VENV)-313/bin/python -m pytest tests/worker tests/unit/test_lock.py
endif

$(VENV)-bench/.installed: requirements.txt requirements-dev.txt bench/requirements.txt
	$(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/python $(RUNTIME_INSTALL)
	$(VENV)-bench/bin/python $(PIP_INSTALL) -r requirements-dev.txt -r bench/requirements.txt
	touch $@

bench: $(VENV)-bench/.installed node_modules/.installed
	$(VENV)-bench/bin/python bench/run.py

demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m standins.demo

# The app's HTTP routes on http://localhost:7071 against the stand-ins and Azurite (no Azure, no Core Tools; `func start`
# is the real host): prints the routes, a function key and a curl line; Ctrl-C stops everything. PORT=... to move it.
PORT ?= 7071
serve: $(VENV)/.installed node_modules/.installed
	$(PY) -m standins.serve --port $(PORT)

# Bytecode for what is deployed: Flex Consumption runs the app from a read-only package, where Python cannot write
# __pycache__, and the remote build compiles only what pip installs, so without this every new process compiles the
# app's modules from source. Compiled by the runtime's Python (3.13: its cache tag is the one the host reads) as
# checked-hash caches, which hold the source's hash: valid after the remote build's copy (which resets the files'
# times), never used for a source that changed. Run it before `azd deploy` / `azd up`.
bytecode:
ifeq ($(strip $(PYTHON313)),)
	@echo "error: Python 3.13 not found (set PYTHON313=/path/to/python3.13): the deployed app runs on 3.13" >&2; exit 1
else
	$(PYTHON313) -m compileall -q -f --invalidation-mode checked-hash function_app.py shared
endif

clean:
	rm -rf $(VENV) $(VENV)-infra $(VENV)-bench $(VENV)-313 node_modules .pytest_cache .mypy_cache .ruff_cache
