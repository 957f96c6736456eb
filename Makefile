# The README's two commands: `make demo` (the main job) and `make test` (the tests).
# Both create .venv when it is missing. torch is pinned to the CPU build that this machine keeps on local disk;
# on a GPU machine install the torch build that matches your CUDA first, then `pip install -e .[dev]`.
PYTHON ?= python3
VENV := .venv
TORCH_PIN ?= torch==2.13.0
DEMO_DIR ?= demo
# --no-compile: Python writes the bytecode of each module on its first import, so only what runs gets compiled;
# pip compiling all 29,000 files of the environment made `make venv` take 156 s instead of 84 s on 2 cores. A
# PYTHONDONTWRITEBYTECODE in the caller's environment would make every process compile torch again (7 s instead
# of 3.7 s per start), so the recipes run without it.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test venv clean

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --no-compile "$(TORCH_PIN)"
	$(VENV)/bin/pip install --quiet --no-compile -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/transunet3d demo $(DEMO_DIR)

test: venv
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO_DIR)
