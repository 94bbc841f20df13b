# Two commands do all set-up on a fresh clone:
#   make demo   — create .venv, install the CPU build of torch and cogarch, run the main job
#   make test   — same set-up, then the test suite
# torch is installed FIRST and pinned (the CPU wheel 2.13.0 is on local disk here), so that pip
# never resolves an unpinned `torch` to a multi-GB CUDA build. On a CUDA machine, install the CUDA
# build of torch into .venv yourself first and run `make setup TORCH_SPEC=` (empty: keep yours).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.cogarch-installed

.PHONY: setup demo test clean-venv

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[test]"
	@$(BIN)/python -c "import torch, cogarch; print('cogarch', cogarch.__version__, '| torch', torch.__version__)"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m cogarch.demo

clean-venv:
	rm -rf $(VENV)
