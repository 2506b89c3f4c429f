# Two commands matter: `make test` and `make book`. Each creates .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# The SQuAD dev set lives beside the checkout (never inside it).
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/squad),)
export PRIORLIB_DATA ?= $(SHARED_DATA)
endif
export TOKENIZERS_PARALLELISM := false
PIP_QUIET = 2>&1 | { grep -v -e 'is ignored: it is neither' -e '^$$' || true; }

.PHONY: test test-fast book book-fast bench clean-venv

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r requirements.txt $(PIP_QUIET)
	$(VENV)/bin/pip install -q --no-deps -r requirements-nodeps.txt $(PIP_QUIET)
	$(VENV)/bin/pip install -q --no-deps -e . $(PIP_QUIET)
	$(VENV)/bin/python -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $@

test: $(STAMP)  ## every test, slow and browser ones included (what CI runs)
	$(VENV)/bin/python -m pytest -q

test-fast: $(STAMP)  ## skip the slow ones while iterating
	$(VENV)/bin/python -m pytest -q -m "not slow and not browser"

book: $(STAMP)  ## execute the notebooks (CPU profile) and build _build/html
	$(VENV)/bin/priorlib book --profile cpu

book-fast: $(STAMP)  ## rebuild the html from the committed executed notebooks
	$(VENV)/bin/priorlib book --no-execute

bench: $(STAMP)
	$(VENV)/bin/priorlib bench

clean-venv:
	rm -rf $(VENV)
