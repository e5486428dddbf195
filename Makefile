# `make test` builds .venv if missing (CPU torch first), then lints and runs the test suite.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make test TORCH="torch"`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint pytest demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy $$(ls -d qwen3_rag langchain_qwen3 llamaindex_qwen3 benchmarks 2>/dev/null)

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
