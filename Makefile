# whisper-bench: `make compare` runs the whole comparison, `make test` the test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
MODEL ?= tiny.en
CORES_LIST ?=
ENGINES ?=
export DOCKER_BUILDKIT := 0
# Pins that live outside pyproject.toml: openai-whisper is installed without its dependencies
# (its triton requirement is ~1 GB and unused on CPU).
OPENAI_WHISPER := openai-whisper==20250625

.PHONY: venv system-deps docker models audio compare test clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "torch==2.13.0"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[prepare,engine-ort,engine-hf,engine-faster-whisper,engine-openai-whisper,test]"
	$(PY) -m pip install -q --disable-pip-version-check --no-deps "$(OPENAI_WHISPER)"
	touch $@

venv: $(VENV)/.installed

# Speech synthesis for the corpus and the tests; libsndfile for soundfile.
system-deps:
	@command -v espeak-ng >/dev/null && command -v sox >/dev/null || { \
	  echo "installing espeak-ng and sox"; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng sox libsndfile1 >/dev/null; }

docker:
	scripts/ensure-docker.sh

models: venv
	$(PY) -m harness models prepare --model $(MODEL)

audio: venv system-deps
	$(PY) -m harness audio synth

# The containerized runs and the report join this target as they land; today it prepares the
# models and the corpus that every run uses.
compare: venv system-deps
	$(PY) -m harness models prepare --model $(MODEL)
	$(PY) -m harness audio synth
	$(PY) -m harness models verify --model $(MODEL)

test: venv system-deps
	$(PY) -m pytest -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
