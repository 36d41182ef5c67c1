# The two set-up commands of the README: `make serve` and `make test`.
# Both create .venv when needed; serve installs the package alone (building the Cython
# extensions), test the package with its test extra. A stamp per install says it is done.
# `make test` also runs tests/setup.sh first: the programs, PostgreSQL and npm packages the
# tests need (it installs what is missing when run as root; see the README).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SOURCES := pyproject.toml setup.py $(wildcard ext/*.pyx)

.PHONY: serve test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-base: $(SOURCES) | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# The test extra installs the package too, so it stamps both.
$(VENV)/.installed-test: $(SOURCES) | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-base

serve: $(VENV)/.installed-base
	$(BIN)/nve serve $(ARGS)

test: $(VENV)/.installed-test
	env=$$(tests/setup.sh $(BIN)/python) && eval "$$env" && $(BIN)/python -m pytest $(ARGS)

clean:
	-tests/setup.sh stop
	rm -rf $(VENV) build *.egg-info ext/*.c ext/*.so
