# Two entry points for a fresh machine: `make run` (train the default config) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/default
ARGS ?=
# The shared LFW copy beside the checkout, when there is one and LFW_DIR is unset.
export LFW_DIR ?= $(if $(wildcard ../shared/lfw),$(abspath ../shared/lfw),)

.PHONY: run test test-fast setup setup-test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

run: setup
	$(PY) -m lfw_siamese.main --workdir $(WORKDIR) $(ARGS)

test: setup-test
	$(PY) -m pytest -q tests

# The edit loop: every test but those marked slow.
test-fast: setup-test
	$(PY) -m pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) build *.egg-info
