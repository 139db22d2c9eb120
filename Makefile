# Two commands do everything on a fresh machine (see README.md):
#   make book   — set up, train the missing runs, execute every chapter at PROFILE (default cpu), build _build/html
#   make test   — set up, run the test suite
PYTHON   ?= python3.11
VENV     ?= .venv
PROFILE  ?= cpu
WORKERS  ?= auto
THREADS  ?= 1
DASHBOARD ?=
MAML_DATA ?= $(CURDIR)/data
export MAML_DATA
BIN := $(VENV)/bin

.PHONY: book html test test-quick goldens execute train plan sync setup lock clean-html dry-run

# Only the cpu profile (the book's numbers) writes into book/; another profile writes its
# notebooks, records and HTML under _build/$(PROFILE)/ (python -m mamlscope rerun --help).
# One graph (mamlscope.publish.graph): each chapter executes as soon as its runs are trained, on the same
# $(WORKERS) workers of $(THREADS) thread(s) that train them; the scorecard last, then the HTML.
book: setup               ## set up, train what is missing, execute every chapter at $(PROFILE), build the HTML
	$(BIN)/python -m mamlscope rerun --profile $(PROFILE) --html --train --workers $(WORKERS) --threads $(THREADS) $(if $(DASHBOARD),--dashboard $(DASHBOARD))

execute: setup            ## train what is missing and execute every chapter at $(PROFILE) (no HTML)
	$(BIN)/python -m mamlscope rerun --profile $(PROFILE) --train --workers $(WORKERS) --threads $(THREADS) $(if $(DASHBOARD),--dashboard $(DASHBOARD))

dry-run:                  ## the paper profile with every count cut: every chapter at the papers' shapes, minutes on a CPU
	$(MAKE) book PROFILE=paper-dry

# Every run the chapters need, trained concurrently on a Dask LocalCluster: $(WORKERS) workers
# (auto: cores ÷ $(THREADS)) of $(THREADS) torch threads each. Results depend on the thread count,
# not on the number of workers; the cpu profile's numbers were computed with 1 thread per run.
train: setup              ## train the runs the chapters need at $(PROFILE) that are not cached yet
	$(BIN)/python -m mamlscope runs train --profile $(PROFILE) --workers $(WORKERS) --threads-per-worker $(THREADS) $(if $(DASHBOARD),--dashboard $(DASHBOARD))

plan: setup               ## list the runs the chapters need at $(PROFILE), cached or not, with estimated minutes
	$(BIN)/python -m mamlscope runs plan --profile $(PROFILE) --estimate

html: setup               ## render the committed notebooks only (no execution)
	$(BIN)/jupyter-book build . --warningiserror --keep-going

test: setup               ## run the test suite (everything: CI and the README's command)
	$(BIN)/python -m pytest

test-quick: setup         ## every test but those that execute chapters or build the HTML (marker "book")
	$(BIN)/python -m pytest -m "not book"

sync: setup               ## after editing book/<chapter>.md: copy its cells into the paired .ipynb (outputs of unchanged cells kept)
	$(BIN)/python -m mamlscope notebooks sync $(CHAPTERS)

goldens: setup            ## re-execute the chapters at the smoke profile into tests/goldens/ (nbval's expected outputs)
	$(BIN)/python tools/make_goldens.py $(CHAPTERS)

setup: $(VENV)/.installed

# Installs exactly the lock (requirements.txt), then the project itself without dependencies.
# pip is left at the version the venv was created with (the lock pins no pip).
$(VENV)/.installed: pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# The lock: requirements.txt pins every package (transitive ones included) resolved by pip-tools
# from pyproject.toml (dependencies + extras book and test), for Linux x86_64 / CPython 3.11;
# environment.yml (Binder) is regenerated from it. Existing pins are kept unless pyproject.toml
# needs otherwise; `make lock LOCKFLAGS=--upgrade` moves everything to the newest allowed versions
# (or LOCKFLAGS='--upgrade-package NAME'). pip-tools lives in its own venv, $(LOCKVENV).
LOCKVENV ?= $(VENV)/lock-tools
PIP_TOOLS ?= pip-tools==7.6.2
LOCKFLAGS ?=
lock:                     ## re-resolve requirements.txt from pyproject.toml with pip-compile, regenerate environment.yml
	test -x $(LOCKVENV)/bin/python || $(PYTHON) -m venv $(LOCKVENV)
	$(LOCKVENV)/bin/python -m pip install --quiet '$(PIP_TOOLS)'
	$(LOCKVENV)/bin/pip-compile --quiet $(LOCKFLAGS) --extra book --extra test --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file requirements.txt pyproject.toml
	$(LOCKVENV)/bin/python tools/lock.py

clean-html:
	rm -rf _build
