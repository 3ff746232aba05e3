# Every target creates or reuses .venv and installs what is missing, torch first
# (pinned so the CPU build on disk is taken, not a several-GB CUDA build), and the Debian
# packages the wheels need when this user may install them (scripts/system-packages.sh).
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
TORCH   ?= torch==2.13.0
DEMO_DIR ?= data/demo

.PHONY: install demo test bench cuda-check clean

$(VPY):
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -c "import torch" 2>/dev/null || $(VPY) -m pip install -q "$(TORCH)"
	$(VPY) -m pip install -q -e ".[viz,test,bench]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	@sh scripts/system-packages.sh demo
	$(VPY) -m apps.demo --dir $(DEMO_DIR)

test: install
	@sh scripts/system-packages.sh test
	$(VPY) -m pytest -q $(PYTEST_ARGS)

bench: install
	$(VPY) -m apps.bench $(BENCH_ARGS)

# On a machine with an NVIDIA GPU: the CUDA tests, one training step of the reference
# network and 100 frames of live depth on the GPU, with times.
cuda-check: install
	@sh scripts/system-packages.sh demo
	sh scripts/cuda-check.sh $(VPY)

clean:
	rm -rf $(VENV) build *.egg-info
