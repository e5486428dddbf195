"""Every docstring example that can run offline runs (the hub ones are marked +SKIP)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "qwen3_rag",
    "qwen3_rag.instructions",
    "qwen3_rag.options",
    "qwen3_rag.fields",
    "qwen3_rag.batching",
    "qwen3_rag.loading",
    "qwen3_rag._forward",
    "qwen3_rag.embedder",
    "qwen3_rag.reranker",
    "qwen3_rag.chroma",
    "qwen3_rag.cli",
    "qwen3_rag.evaluation",
    "langchain_qwen3.embeddings",
    "langchain_qwen3.rerankers",
    "langchain_qwen3.retrievers",
    "llamaindex_qwen3.embeddings",
    "llamaindex_qwen3.postprocessors",
    "llamaindex_qwen3.retrievers",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
