# c64-pipeline: `make demo` runs the whole graph on the sample manuals, `make test` runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Nothing is ever fetched from a model hub: the demo model is built here, the real one is placed by hand.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# llama-cpp-python is an sdist: pip compiles llama.cpp (about 30 minutes on 2 busy cores), portably
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF
# llama.cpp's GGUF converter, unpacked from the sdist of the pinned llama-cpp-python (its wheel does not ship it)
LLAMA_CPP_DIR := .llama.cpp
export C64_LLAMA_CPP_DIR ?= $(CURDIR)/$(LLAMA_CPP_DIR)

.PHONY: setup system-packages test-packages demo ui test test-fast bench clean

setup: system-packages $(STAMP) $(LLAMA_CPP_DIR)/convert_hf_to_gguf.py

system-packages:
	@bash scripts/install_system_packages.sh

# torch/torchvision first, as the pair EasyOCR works with on these machines; then the project itself.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(LLAMA_CPP_DIR)/convert_hf_to_gguf.py: $(STAMP)
	version=$$($(PY) -c "from importlib.metadata import version; print(version('llama-cpp-python'))") && \
	$(PY) -m pip download --quiet --no-deps --no-binary :all: -d .cache/llama-cpp "llama-cpp-python==$$version" && \
	$(PY) -m c64_pipeline.training.export extract-converter .cache/llama-cpp/llama_cpp_python-$$version.tar.gz $(LLAMA_CPP_DIR)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.local.yaml
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.local.yaml $@

demo: setup $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m c64_pipeline.demo

ui: setup $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: setup test-packages
	$(PY) -m pytest

test-fast: setup test-packages
	$(PY) -m pytest -m "not slow"

# Debian packages only the tests need: Chromium (web UI test), docker-compose (compose file check), PostgreSQL
test-packages:
	@bash scripts/install_test_packages.sh

bench: setup
	$(PY) -m bench.run

clean:
	rm -rf data/raw/manuals data/interim data/processed docs/data_qc_report.md models/c64-tiny-ministral3 $(DAGSTER_HOME)
