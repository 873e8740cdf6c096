# Two entry points: `make run` (the main job) and `make test` (the suite). Each installs what it needs.
# Also: `make docs` (the site), `make results` (the runs behind its results page), `make lint`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The exact versions of every package the results page's figures were made with: a seeded run repeats
# only for one set of versions. After changing dependencies, `make constraints` writes it anew
# (delete it first if a new requirement conflicts with a pin).
CONSTRAINTS := constraints.txt
PIN := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS))

.PHONY: run test install lint clean constraints test-rllib test-minari test-extras

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: this CPU build is small; an unpinned torch pulls a CUDA build of several GB.
	$(BIN)/pip install $(PIN) "torch==2.13.0"
	$(BIN)/pip install $(PIN) -e ".[dev,text]"
	touch $(STAMP)

# The docs' tools (mkdocs-material, mkdocstrings) in the same venv, pinned by the same file.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install $(PIN) -e ".[docs]"
	touch $(DOCS_STAMP)

constraints: $(STAMP) $(DOCS_STAMP)
	echo "# Written by make constraints: the versions make run and make test install (pip -c)." > $(CONSTRAINTS)
	$(BIN)/pip freeze --exclude-editable >> $(CONSTRAINTS)
	touch $(STAMP) $(DOCS_STAMP)  # the venv is what the file now says

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python train.py $(ARGS)

# One OpenMP/BLAS thread per process, as the library's trainers use: on two cores torch's small
# networks run several times slower on two threads.
test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

.PHONY: docs results
# Where `make results` puts the runs behind docs/results.md (the page is written from their files).
RESULTS_RUNS ?= runs/results
SCENARIO_AGENTS ?= static,adaptive-pacing,linucb-discounted,lin-ts-discounted

# The site, into site/. --strict: a broken link, a missing anchor or a docstring griffe cannot read
# fails the build. Material's notice about its end of life is silenced (it is not about this site).
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The real runs behind docs/results.md, then the page. Long: the default run, the environment,
# evaluation and scenario benchmarks, and the off-policy benchmark (tens of minutes on two cores).
results: $(STAMP)
	$(BIN)/python train.py --run-dir $(RESULTS_RUNS)/default --no-progress
	$(BIN)/python benchmarks/bench_env.py --out $(RESULTS_RUNS)/bench_env/bench_env.json
	$(BIN)/python benchmarks/bench_eval.py --out $(RESULTS_RUNS)/bench_eval
	$(BIN)/python benchmarks/bench_scenarios.py --agents $(SCENARIO_AGENTS) --budgets 0.05,0.3,1.0 \
		--out $(RESULTS_RUNS)/scenarios
	$(BIN)/python benchmarks/bench_ope.py --out $(RESULTS_RUNS)/ope
	$(BIN)/python benchmarks/results_page.py --collect $(RESULTS_RUNS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# The two rows of the README's works-with table that need packages of their own, each in its own
# venv (CI runs them after `make test`). ray[rllib] pins gymnasium 1.2.2, so its venv takes every pin
# of constraints.txt but gymnasium's; Minari's keeps them all. The versions are the ones the table
# names. A check that the package imports comes first: the tests skip, not fail, without it.
RAY_REQ    := ray[rllib]==2.60.0
MINARI_REQ := minari[create,hdf5]==0.5.4
RLLIB_VENV  ?= .venv-rllib
MINARI_VENV ?= .venv-minari

$(RLLIB_VENV)/.installed: pyproject.toml $(wildcard $(CONSTRAINTS))
	$(PYTHON) -m venv $(RLLIB_VENV)
	$(RLLIB_VENV)/bin/pip install --upgrade pip
	$(if $(PIN),grep -v -i '^gymnasium==' $(CONSTRAINTS) > $(RLLIB_VENV)/constraints.txt)
	$(RLLIB_VENV)/bin/pip install $(if $(PIN),-c $(RLLIB_VENV)/constraints.txt) "torch==2.13.0"
	$(RLLIB_VENV)/bin/pip install $(if $(PIN),-c $(RLLIB_VENV)/constraints.txt) -e . "$(RAY_REQ)" pytest hypothesis
	touch $@

$(MINARI_VENV)/.installed: pyproject.toml $(wildcard $(CONSTRAINTS))
	$(PYTHON) -m venv $(MINARI_VENV)
	$(MINARI_VENV)/bin/pip install --upgrade pip
	$(MINARI_VENV)/bin/pip install $(PIN) "torch==2.13.0"
	$(MINARI_VENV)/bin/pip install $(PIN) -e . "$(MINARI_REQ)" pytest hypothesis
	touch $@

test-rllib: $(RLLIB_VENV)/.installed
	$(RLLIB_VENV)/bin/python -c "import ray.rllib, gymnasium; print('ray', ray.__version__, 'gymnasium', gymnasium.__version__)"
	$(RLLIB_VENV)/bin/python -m pytest -q tests/test_rllib.py $(PYTEST_ARGS)

test-minari: $(MINARI_VENV)/.installed
	$(MINARI_VENV)/bin/python -c "import minari, jax, h5py; print('minari', minari.__version__, 'jax', jax.__version__)"
	$(MINARI_VENV)/bin/python -m pytest -q tests/test_ope_minari.py tests/test_wrappers.py $(PYTEST_ARGS)

test-extras: test-rllib test-minari

clean:
	rm -rf $(VENV) $(RLLIB_VENV) $(MINARI_VENV) build *.egg-info
