# drawtune: `make demo` runs the whole workflow on synthetic drawings and a tiny model;
# `make test` runs the checks and the test suite. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
PROFILE ?= profiles/local

.PHONY: install demo report test lint unit clean

install: $(STAMP)

# Reinstall whenever the pins change. torch/torchvision resolve to the local wheels through
# the machine's pip configuration; everything else comes from PyPI.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --profile $(PROFILE)
	$(BIN)/snakemake --profile $(PROFILE) --report results/report.html
	@echo "report: results/report.html"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint

unit: $(STAMP)
	$(BIN)/pytest -q -m "not workflow"

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf results resources logs benchmarks .snakemake
