# storyhash — the newcomer's path is `make study` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PARAMS ?= params/default.yaml
LAB_ARGS ?=
RUN    ?= outputs/real
STAMP  := $(VENV)/.installed
SAM2   := sam2==1.1.0  # an sdist that builds against the installed torch

.PHONY: help setup study lab test check-reproducible bench bench-cpus bench-index data-davis clean-cache

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	SAM2_BUILD_CUDA=0 $(BIN)/pip install --quiet --disable-pip-version-check --no-build-isolation $(SAM2)
	touch $@

setup: $(STAMP)  ## create .venv and install the pinned dependencies

study: $(STAMP)  ## run the study (PARAMS=params/default.yaml; also params/real.yaml)
	$(BIN)/storyhash study --params $(PARAMS)

lab: $(STAMP)  ## JupyterLab on the project's venv, its kernel registered as "storyhash" (LAB_ARGS=...; as root in a container: --allow-root added)
	$(BIN)/python -m ipykernel install --sys-prefix --name storyhash --display-name "storyhash (.venv)"
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: $(STAMP)  ## lint and format check (ruff), then the test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n 2

check-reproducible: $(STAMP)  ## rerun RUN (default outputs/real) from PARAMS and compare every table
	$(BIN)/storyhash check-reproducible --params $(if $(filter command line,$(origin PARAMS)),$(PARAMS),params/real.yaml) --run $(RUN)

bench: $(STAMP)  ## run the benchmarks in bench/ (needs ../shared or STORYHASH_SHARED; about 1 h, 30 min of it the whole study cold and twice warm)
	$(BIN)/python bench/transforms.py
	$(BIN)/python bench/throughput.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/study_time.py

bench-cpus: $(STAMP)  ## the CPU-dependent steps on qemu-emulated Haswell and Nehalem CPUs (needs qemu-user; ~15 min)
	$(BIN)/python bench/cpus.py

bench-index: $(STAMP)  ## HNSW and IVF-PQ vs flat at 10k/100k/1M vectors (needs outputs/real; ~30 min)
	$(BIN)/python bench/index_scale.py

data-davis: $(STAMP)  ## download and unpack DAVIS-2017 trainval 480p into data/davis
	$(BIN)/storyhash data davis --root data/davis

clean-cache:  ## delete the artifact cache (.cache/storyhash)
	rm -rf .cache/storyhash
