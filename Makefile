# brainenc: the two entry points are `make demo` and `make test`; each sets itself up.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.brainenc-installed
DEMO_DIR ?= demo
NPROCS ?= 2
TORCH_VERSION ?= 2.13.0
PYTEST_ARGS ?=

.PHONY: all install demo paper-demo test test-all lint bench clean

all: test

# torch first, as a CPU wheel; otherwise pip resolves the CUDA build with several GB of packages.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/brainenc-demo-data $(DEMO_DIR)/bids --seed 42
	$(BIN)/brainenc $(DEMO_DIR)/bids $(DEMO_DIR)/out participant -w $(DEMO_DIR)/work --nprocs $(NPROCS)
	$(BIN)/brainenc $(DEMO_DIR)/bids $(DEMO_DIR)/out group -w $(DEMO_DIR)/work --nprocs $(NPROCS)
	@echo ""
	@echo "Participant reports: $$(ls $(DEMO_DIR)/out/sub-*.html | tr '\n' ' ')"
	@echo "Group report:        $(DEMO_DIR)/out/group/group.html"

# The paper's design (examples/paper_reproduction.toml) reduced to run on a laptop: every
# tuning method on both tasks, PAPER_STEPS training steps, the last layer listed, NLU sample
# sets written by brainenc, on the demo dataset with PAPER_WORDS words per story.
PAPER_STEPS ?= 10
PAPER_WORDS ?= 400
paper-demo: $(STAMP)
	$(BIN)/brainenc-demo-data $(DEMO_DIR)/paper/bids --seed 42 --words $(PAPER_WORDS)
	$(BIN)/python -m bids_app.paper_demo examples/paper_reproduction.toml $(DEMO_DIR)/paper --steps $(PAPER_STEPS)
	$(BIN)/brainenc $(DEMO_DIR)/paper/bids $(DEMO_DIR)/paper/out participant --config-file $(DEMO_DIR)/paper/spec.toml -w $(DEMO_DIR)/paper/work --nprocs $(NPROCS)
	$(BIN)/brainenc $(DEMO_DIR)/paper/bids $(DEMO_DIR)/paper/out group -w $(DEMO_DIR)/paper/work --nprocs $(NPROCS)
	@echo ""
	@echo "Group report: $(DEMO_DIR)/paper/out/group/group.html"

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check bids_app stimuli_models tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/encoding.py --size small

clean:
	rm -rf $(DEMO_DIR) work out .pytest_cache
