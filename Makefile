# The commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo space test test-all bench lint clean-venv

setup: $(STAMP)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,space]"
	touch $(STAMP)

# The main job: prepare Online Retail, train LMRec jointly, evaluate against popularity, save outputs/demo/.
demo: setup
	$(BIN)/lmrec-hf train training/configs/demo-bank.yaml

# The demo Space on 127.0.0.1:7860; LMREC_MODEL=ORG/NAME or a folder picks the model (default outputs/demo/model).
space: setup
	$(BIN)/python space/app.py

bench: setup
	$(BIN)/python benchmarks/train_throughput.py

test: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-all: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks hub space training

clean-venv:
	rm -rf $(VENV)
