# Two commands do everything on a fresh machine (see README.md):
#   make book   — set up, execute every chapter at PROFILE (default cpu), build _build/html
#   make test   — set up, run the test suite
PYTHON   ?= python3.11
VENV     ?= .venv
PROFILE  ?= cpu
MAML_DATA ?= $(CURDIR)/data
export MAML_DATA
BIN := $(VENV)/bin

.PHONY: book html test goldens execute setup clean-html

book: execute html        ## set up, execute all chapters at $(PROFILE), build the HTML

execute: setup            ## execute all chapters in place at $(PROFILE) (cached runs are reused)
	$(BIN)/python -m mamlscope.rerun --profile $(PROFILE)

html: setup               ## render the committed notebooks only (no execution)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: setup               ## run the test suite
	$(BIN)/python -m pytest

goldens: setup            ## re-execute the chapters at the smoke profile into tests/goldens/ (nbval's expected outputs)
	$(BIN)/python tools/make_goldens.py $(CHAPTERS)

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test]'
	touch $@

clean-html:
	rm -rf _build
