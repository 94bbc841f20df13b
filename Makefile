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

.PHONY: setup demo test browser clean-venv

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install -q -e ".[test]"
	@$(BIN)/python -c "import torch, cogarch; print('cogarch', cogarch.__version__, '| torch', torch.__version__)"
	touch $(STAMP)

setup: $(STAMP)

# The serve page test drives Debian's Chromium (tests/serve/test_page_browser.py). Installed here when
# missing and we are root with apt-get (CI); otherwise the test fails with a clear message unless
# COGARCH_SKIP_BROWSER=1.
CHROMIUM ?= /usr/bin/chromium

browser:
	@if [ ! -x "$(CHROMIUM)" ] && [ "$$COGARCH_SKIP_BROWSER" != "1" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the browser test"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
	  else echo "note: $(CHROMIUM) missing and cannot apt-get install it (not root?): the browser test will fail; set COGARCH_SKIP_BROWSER=1 to skip it"; fi; \
	fi

test: setup browser
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m cogarch.demo

clean-venv:
	rm -rf $(VENV)
