# The few verbs a newcomer needs. Everything installs into .venv; nothing is needed beforehand but python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test demo lint typecheck install clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .

typecheck: install
	$(PY) -m mypy

test: lint typecheck
	$(PY) -m pytest

demo: install
	$(PY) -m shared demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
