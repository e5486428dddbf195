# `make test` builds .venv if missing (CPU torch first), then lints and runs the test suite,
# then the lean forward's parity tests again against the oldest transformers allowed.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; on a CUDA machine use e.g. `make test TORCH="torch"`.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The oldest transformers pyproject.toml allows: the lean forward reads its module layout, so CI
# checks parity on both ends of the range (see test-oldest).
OLDEST_TRANSFORMERS ?= transformers==4.51.3
OLDEST := $(VENV)-oldest
OLDEST_STAMP := $(OLDEST)/.installed

# The lowest versions the extras allow (uv's lowest-direct resolution), for the adapters' and
# the store's tests: pyproject.toml's lower bounds are what this target tests.
LOWEST := $(VENV)-lowest
LOWEST_STAMP := $(LOWEST)/.installed
LOWEST_TESTS := tests/langchain/test_async.py tests/langchain/test_fuzz.py \
	tests/langchain/test_query_model.py tests/langchain/test_remote.py \
	tests/llamaindex/test_async.py tests/llamaindex/test_embedding.py tests/llamaindex/test_fuzz.py \
	tests/llamaindex/test_query_model.py tests/llamaindex/test_rerank.py \
	tests/core/test_chroma.py tests/core/test_store.py tests/core/test_stored_identity.py \
	tests/core/test_query_model.py tests/core/test_remote_answers.py

.PHONY: venv test lint pytest test-oldest test-lowest demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[all,test]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .  # Python files and the README's Python snippets
	$(BIN)/mypy $$(ls -d qwen3_rag langchain_qwen3 llamaindex_qwen3 benchmarks 2>/dev/null)
	$(BIN)/lint-imports  # the arrows of docs/ARCHITECTURE.md: [tool.importlinter] in pyproject.toml

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

$(OLDEST_STAMP): pyproject.toml
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet "$(TORCH)" "$(OLDEST_TRANSFORMERS)" pytest pytest-asyncio
	$(OLDEST)/bin/python -m pip install --quiet -e .
	touch $(OLDEST_STAMP)

# The lean forward's parity and self-check tests against the oldest transformers allowed.
test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/bin/python -m pytest -q -p no:cacheprovider \
		tests/core/test_parity.py tests/core/test_forward.py tests/core/test_fast_paths.py

$(LOWEST_STAMP): pyproject.toml constraints/lowest.txt $(STAMP)
	test -x $(LOWEST)/bin/python || $(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/python -m pip install --quiet --upgrade pip
	$(LOWEST)/bin/python -m pip install --quiet "$(TORCH)"
	$(BIN)/uv pip install --quiet --python $(LOWEST)/bin/python --resolution lowest-direct \
		-c constraints/lowest.txt -e ".[langchain,llamaindex,chroma,remote]" \
		"pytest>=8" "pytest-asyncio>=0.24" "hypothesis>=6.100"
	touch $(LOWEST_STAMP)

# The adapters' and the store's tests against the lowest versions pyproject.toml allows.
test-lowest: $(LOWEST_STAMP)
	$(LOWEST)/bin/python -m pytest -q -p no:cacheprovider $(LOWEST_TESTS)

test: lint pytest test-oldest test-lowest

# `make demo`: index this repository's documentation into ./qwen3_db, ask one question and print
# the reranked answers. Downloads Qwen/Qwen3-Embedding-0.6B and Qwen/Qwen3-Reranker-0.6B on first
# use, unless QWEN3_RAG_EMBED_MODEL / QWEN3_RAG_RERANK_MODEL name other models or local folders.
DEMO_DB ?= qwen3_db
DEMO_QUESTION ?= How do I run the tests without downloading any model?

demo: $(STAMP)
	$(BIN)/qwen3-rag index README.md $(wildcard docs) --db $(DEMO_DB)
	$(BIN)/qwen3-rag query "$(DEMO_QUESTION)" --db $(DEMO_DB) -k 3

clean:
	rm -rf $(VENV) $(OLDEST) $(LOWEST) .pytest_cache .mypy_cache .ruff_cache
