# drawtune: `make demo` runs the whole workflow on synthetic drawings and a tiny model;
# `make test` runs the checks and the test suite. Both create .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
PROFILE ?= profiles/local

.PHONY: install demo report test lint unit slurm slurm-deps clean vertex-image

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

# The SLURM tests alone (a private two-node cluster with accounting on localhost; root, and
# the packages of slurm-deps).
slurm: $(STAMP)
	$(BIN)/pytest -q -m slurm

# slurm-wlm, slurmdbd, munge and mariadb-server from the distribution, for the SLURM tests (a
# private cluster with job accounting; Debian/Ubuntu, as root). No daemon is started or enabled
# (policy-rc.d refuses it during the install): the tests start their own. Installs only what is
# missing.
SLURM_DEPS := slurmctld:slurm-wlm slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server

slurm-deps:
	@missing=""; for dep in $(SLURM_DEPS); do \
		bin=$${dep%%:*}; pkg=$${dep#*:}; \
		command -v $$bin >/dev/null 2>&1 || test -x /usr/sbin/$$bin || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "slurm-deps: all installed"; exit 0; fi; \
	echo "slurm-deps: installing$$missing"; \
	guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && guard=1; \
	fi; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $$missing; rc=$$?; \
	if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; exit $$rc

# Trained adapters are write-protected (protected() in rules/train.smk): made writable first.
clean:
	if [ -d results ]; then chmod -R u+w results; fi
	rm -rf results resources logs benchmarks .snakemake
