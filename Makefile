# Two entry points: `make run` (the main job) and `make test` (the suite). Each installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exact versions of every package the README's figures were made with: a seeded run repeats
# only for one set of versions. After changing dependencies, `make constraints` writes it anew
# (delete it first if a new requirement conflicts with a pin).
CONSTRAINTS := constraints.txt
PIN := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS))

.PHONY: run test install lint clean constraints

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: this CPU build is small; an unpinned torch pulls a CUDA build of several GB.
	$(BIN)/pip install $(PIN) "torch==2.13.0"
	$(BIN)/pip install $(PIN) -e ".[dev,text]"
	touch $(STAMP)

constraints: $(STAMP)
	echo "# Written by make constraints: the versions make run and make test install (pip -c)." > $(CONSTRAINTS)
	$(BIN)/pip freeze --exclude-editable >> $(CONSTRAINTS)
	touch $(STAMP)  # the venv is what the file now says

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
