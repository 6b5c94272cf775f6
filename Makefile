# drawtune: `make demo` runs the whole workflow on synthetic drawings and a tiny model;
# `make test` runs the checks and the test suite. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
PROFILE ?= profiles/local

.PHONY: install demo report test lint unit slurm slurm-deps browser-deps clean vertex-image

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

# The Vertex AI training image (envs/vertex/Dockerfile), built and pushed to the registry the
# vertex profile names (`image:` in profiles/vertex/vertex.yaml), or VERTEX_IMAGE=... . Push
# access: `gcloud auth configure-docker <region>-docker.pkg.dev` once. FLASH_ATTN_WHEEL: URL of a
# flash-attn wheel for the image's torch, CUDA and Python (empty: PyTorch SDPA attention).
VERTEX_IMAGE ?= $(shell sed -n 's/^image: *//p' profiles/vertex/vertex.yaml)
FLASH_ATTN_WHEEL ?=
DOCKER ?= docker

vertex-image:
	test -n "$(VERTEX_IMAGE)"
	$(DOCKER) build --platform linux/amd64 -f envs/vertex/Dockerfile \
		--build-arg FLASH_ATTN_WHEEL="$(FLASH_ATTN_WHEEL)" -t "$(VERTEX_IMAGE)" .
	$(DOCKER) push "$(VERTEX_IMAGE)"

# The SLURM tests alone (a private two-node cluster on localhost; root, slurm-wlm and munge).
slurm: $(STAMP)
	$(BIN)/pytest -q -m slurm

# slurm-wlm and munge from the distribution, for the SLURM tests (Debian/Ubuntu, as root; no
# daemon is started or enabled: the tests start their own). Does nothing when slurmctld exists.
slurm-deps:
	@if command -v slurmctld >/dev/null 2>&1 || test -x /usr/sbin/slurmctld; then \
		echo "slurm-deps: slurmctld already installed"; \
	else \
		apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			slurm-wlm munge; \
	fi

# Debian's chromium (and a font), for the report's browser test (tests/workflow/
# test_report_browser.py: headless, driven over its DevTools pipe; nothing is downloaded at
# test time). As root; does nothing when a chromium is installed.
browser-deps:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then \
		echo "browser-deps: chromium already installed"; \
	else \
		apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			chromium fonts-dejavu-core; \
	fi

# Trained adapters are write-protected (protected() in rules/train.smk): made writable first.
clean:
	if [ -d results ]; then chmod -R u+w results; fi
	rm -rf results resources logs benchmarks .snakemake
