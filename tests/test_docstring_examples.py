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
    "qwen3_rag.remote",
    "qwen3_rag.chroma",
    "qwen3_rag.cli",
    "qwen3_rag.store",
    "qwen3_rag.indexing",
    "qwen3_rag.evaluation",
    "qwen3_rag.adapt",
    "qwen3_rag._files",
    "qwen3_rag.errors",
    "qwen3_rag._extras",
    "qwen3_rag.identity",
    "qwen3_rag.chunking",
    "qwen3_rag.index_plan",
    "qwen3_rag.adapt.data",
    "qwen3_rag.adapt.filtering",
    "qwen3_rag.adapt.llm",
    "qwen3_rag.adapt.losses",
    "qwen3_rag.adapt.merge",
    "qwen3_rag.adapt.mine",
    "qwen3_rag.adapt.pipeline",
    "qwen3_rag.adapt.synthesize",
    "qwen3_rag.adapt.train",
    "langchain_qwen3.embeddings",
    "langchain_qwen3.rerankers",
    "langchain_qwen3.retrievers",
    "langchain_qwen3.llm",
    "llamaindex_qwen3.embeddings",
    "llamaindex_qwen3.postprocessors",
    "llamaindex_qwen3.retrievers",
    "llamaindex_qwen3.llm",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
