# whisper-bench: `make compare` runs the whole comparison, `make test` the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?= tiny.en
# The comparison's settings reach `python -m harness` through the environment (see README).
# The run settings are one table (harness/run/settings.py); `make help` lists them.
export $(shell $(PYTHON) -m harness.run.settings --env-names)
export BASE_IMAGE
# `make serve` (docs/serving.md): MLPerf LoadGen's offline and server scenarios.
export SCENARIOS LATENCY_BOUND_MS SERVE_DURATION_MS SERVE_MIN_QUERIES MLPERF_DURATIONS SEARCH_STEPS BATCH_WAIT_MS
export AUDIT_PROBABILITY SERVE_LAYOUTS TDP_W_PER_CPU
export DOCKER_BUILDKIT := 0

.PHONY: help venv system-deps docker images models audio compare serve calibrate discover fleet report compose test clean

# The extras (model preparation, every engine's group, the tests) and the torch pin come from the engine
# specs and pyproject.toml: nothing here names an engine. torch comes first, from PyTorch's CPU wheel index
# beside PyPI (TORCH_INDEX_URL, default in pyproject.toml; the images get the same as a build argument),
# without its dependencies, which the next line resolves from PyPI.
EXTRAS = $(shell $(PYTHON) -m engines.registry --extras)
TORCH_REQUIREMENT = $(shell TORCH_INDEX_URL='$(TORCH_INDEX_URL)' $(PYTHON) docker/requirements.py --torch prepare)
export TORCH_INDEX_URL

$(VENV)/.installed: pyproject.toml Makefile engines/registry.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $(TORCH_REQUIREMENT)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[$(EXTRAS)]"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps $$($(PY) docker/requirements.py --no-deps engine-openai-whisper)
	touch $@

venv: $(VENV)/.installed

help:
	@echo "make compare | calibrate | discover | serve | fleet | report | test; settings (environment or VAR=value):"
	@$(PYTHON) -m harness.run.settings --help-lines

# Speech synthesis for the corpus and the tests; libsndfile for soundfile.
system-deps:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || { \
	  echo "installing espeak-ng and sox"; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox libsndfile1 >/dev/null; }

docker:
	scripts/ensure-docker.sh

images: venv docker
	$(PY) -m harness images

models: venv
	$(PY) -m harness models prepare --model $(MODEL)

audio: venv system-deps
	$(PY) -m harness audio synth

# The main job: Docker, base and engine images, models, corpus, one pinned container per engine and
# core count, then scores, tables, plots and RESULTS.md.
compare: venv system-deps docker
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness run

# Serving capacity through MLPerf LoadGen: per engine, core count and worker layout the highest Server QPS
# under the p99 bound, Offline throughput, accuracy, audit and energy per audio hour (results/<SUT>/serving/).
serve: venv system-deps docker
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness serve

# An A/A run (ort int8 as two identical cells): this machine's noise, the answer's false-difference rate
# and the smallest difference it resolves.
calibrate: venv system-deps docker
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness calibrate

# Every ort build of MODEL ranked at each core count (results/<SUT>/discovery.md); VARIANTS=DIR adds yours.
discover: venv system-deps docker
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness discover $(if $(VARIANTS),--variants $(VARIANTS))

# Every SUT of FLEET (default fleet.toml; see fleet.example.toml) in parallel, through Docker's remote API.
FLEET ?= fleet.toml
fleet: venv system-deps
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness fleet run --file $(FLEET)

report: venv
	$(PY) -m harness report

# One engine through compose.yaml, without the harness (docs/containers.md): its results folder is made
# for the container's user alone, never world-writable. CPUSET, MEMORY_GB, MODEL, PRECISION, AUDIO_DIR too.
ENGINE ?= ort
compose:
	scripts/compose-run.sh $(ENGINE)

# The container tests build only the small ort image; the heavy ones are built by `make compare`.
# ensure-sshd.sh: the binary for the fleet's SSH test, which starts its own sshd on the loopback.
test: venv system-deps docker
	scripts/ensure-sshd.sh
	$(PY) -m ruff check harness engines tests scripts
	$(PY) -m pytest -ra --durations=20 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
