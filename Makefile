# Two entry points: `make run` (the main job) and `make test` (the suite). Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: this CPU build is small; an unpinned torch pulls a CUDA build of several GB.
	$(BIN)/pip install "torch==2.13.0"
	$(BIN)/pip install -e ".[dev,text]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python train.py $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
