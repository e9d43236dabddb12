# The few verbs a newcomer needs. Python packages install into .venv and Azurite into node_modules;
# nothing is needed beforehand but python3 (3.11+) and node/npm.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo lint typecheck security install clean bench

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

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

test: lint typecheck security
	$(PY) -m pytest

$(VENV)-bench/.installed: requirements.txt requirements-dev.txt bench/requirements.txt
	$(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	touch $@

bench: $(VENV)-bench/.installed node_modules/.installed
	$(VENV)-bench/bin/python bench/run.py

demo: $(VENV)/.installed node_modules/.installed
	$(PY) -m shared demo

clean:
	rm -rf $(VENV) $(VENV)-infra $(VENV)-bench node_modules .pytest_cache .mypy_cache .ruff_cache
