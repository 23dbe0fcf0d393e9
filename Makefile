# The two commands of the README: `make build` (the main job) and `make test` (all tests).
# Both set up .venv on first use; nothing else needs to be installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Offline and quiet by default: a missing hub model fails in 0.02 s instead of retrying for minutes,
# W&B writes runs under wandb/ (upload later with `wandb sync`), Ploomber sends no telemetry.
# `HF_HUB_OFFLINE=0 make build MODEL=hf:ORG/NAME` lets a machine with a network fetch a hub model.
export HF_HUB_OFFLINE ?= 1
export WANDB_MODE ?= offline
# One W&B group per make invocation: the runs of one build (or one test session) are found together
ifndef WANDB_RUN_GROUP
export WANDB_RUN_GROUP := build-$(shell date -u +%Y%m%dT%H%M%S)
endif
export WANDB_SILENT := true
export PLOOMBER_STATS_ENABLED := false
export PLOOMBER_VERSION_CHECK_DISABLED := 1
export TOKENIZERS_PARALLELISM := false
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Metaflow names runs after the user and refuses to start without one: it skips root, the usual user in a container,
# even in METAFLOW_USER, so root's runs go under 'lookbench'. Jupyter refuses to run as root unless told --allow-root.
export METAFLOW_USER ?= $(or $(filter-out root,$(shell id -un 2>/dev/null)),lookbench)
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)
WAREHOUSE ?= data/warehouse.duckdb

SMOKE := --env--data data/smoke --env--reports reports/smoke --env--sample 1000 --env--epochs 10 --env--ft_max_train 500
# The build's base model (env.yaml `model`): `make build MODEL=open_clip:ViT-B-32@openai`, `MODEL=hf:patrickjohncyh/fashion-clip`
MODEL ?=
# Any other env.yaml knob for one build: `make build ENV_ARGS="--env--format kagl --env--source data/raw/kagl"`
ENV_ARGS ?=
WITH_MODEL := $(if $(MODEL),--env--model '$(MODEL)',) $(ENV_ARGS)

.PHONY: setup data build smoke flow flow-finetune serve retrain paper test test-fast lab clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml jupyter_server_config.json
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	# Ploomber's server extension wraps Jupyter's contents manager and breaks on the async default
	# ('coroutine' object is not subscriptable); a sync base class fixes it. Jupyter reads the venv's config dir.
	mkdir -p $(VENV)/etc/jupyter && cp jupyter_server_config.json $(VENV)/etc/jupyter/jupyter_server_config.json
	touch $@

data: setup
	$(BIN)/python scripts/get_fashion_mnist.py

build: data
	$(BIN)/ploomber build $(WITH_MODEL)

smoke: data
	$(BIN)/ploomber build $(SMOKE) $(WITH_MODEL)

# The batch job on Metaflow, over the main build's warehouse (2 shards here; `--with batch` or `--with kubernetes`
# elsewhere). `make flow WAREHOUSE=path FLOW_ARGS='--device cpu'` for another warehouse or flow options.
flow: setup
	$(BIN)/python flows/score_flow.py run --shards 2 --warehouse $(WAREHOUSE) $(FLOW_ARGS)

# Fine-tuning on Metaflow: NODES machines (@parallel) x NPROC processes each (torchrun), over the main build's
# warehouse; checkpoints in data/finetune-flow. Here: 1 node x 2 CPU processes. FLOW_ARGS: see flows/finetune_flow.py.
NODES ?= 1
NPROC ?= 2
flow-finetune: setup
	$(BIN)/python flows/finetune_flow.py run --nodes $(NODES) --nproc $(NPROC) --warehouse $(WAREHOUSE) $(FLOW_ARGS)

# The promoted model over HTTP (lookbench serve): http://127.0.0.1:8000/ and /docs. SERVE_ARGS for more options.
serve: setup
	$(BIN)/lookbench serve --warehouse $(WAREHOUSE) $(SERVE_ARGS)

# New feedback or corrections after a build (the service's log): merge them, split again (removed items leave) and
# rebuild everything downstream: align, fine-tune (with the feedback pairs and the corrected labels), evaluate...
retrain: setup
	$(BIN)/ploomber task feedback --force $(WITH_MODEL)
	$(BIN)/ploomber task splits --force $(WITH_MODEL)
	$(BIN)/ploomber build $(WITH_MODEL)

# The experiments in experiments/ (only what is missing runs) and the paper folder reports/paper/
# `make paper PAPER_ARGS='--env--experiments DIR'` for another folder of experiment files.
paper: data
	$(BIN)/ploomber build -e pipeline.paper.yaml --force $(PAPER_ARGS)

# The fast layer (about a minute): unit tests, ruff, and every notebook's own checks. Run it often.
test-fast: setup
	WANDB_MODE=disabled $(BIN)/python -m pytest -m "not slow"
	WANDB_MODE=disabled $(BIN)/nbdev_test --n_workers 2

# Everything: the fast layer first, then whole pipeline builds, the Metaflow flow, servers and hard kills (tests/e2e),
# and the notebooks' checks flagged `#| slow` (whole experiment grids).
test: test-fast
	WANDB_MODE=disabled $(BIN)/python -m pytest -m slow
	WANDB_MODE=disabled $(BIN)/nbdev_test --n_workers 2 --flags slow

lab: setup
	$(BIN)/jupyter lab $(ALLOW_ROOT)

clean:
	rm -rf data/smoke reports/smoke data/receipts data/staging reports/*.ipynb reports/*.html
