"""llamaindex_qwen3.as_llm: a LlamaIndex LLM as the adaptation's LLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata, MockLLM

from llamaindex_qwen3 import as_llm
from qwen3_rag.adapt import synthesize
from qwen3_rag.adapt.corpus import Passage


class JsonLLM(CustomLLM):
    """Answers the configuration step, then the query step, as JSON."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata()

    def complete(
        self, prompt: str, formatted: bool = False, **kwargs: object
    ) -> CompletionResponse:
        if '"query"' in prompt:
            return CompletionResponse(text=json.dumps({"query": "capital of France"}))
        config = {
            "character": "a tourist",
            "question_type": "keywords",
            "difficulty": "high_school",
        }
        return CompletionResponse(text=json.dumps(config))

    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: object):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_mock_llm_echoes() -> None:
    assert as_llm(MockLLM())("hello") == "hello"


def test_a_llamaindex_llm_drives_the_synthesis(tmp_path: Path) -> None:
    report = synthesize(
        [Passage("a#0", "Paris is the capital of France.", "a")],
        as_llm(JsonLLM()),
        tmp_path / "q.jsonl",
    )
    assert report.made == 1
    assert json.loads((tmp_path / "q.jsonl").read_text())["query"] == "capital of France"


def test_not_an_llm() -> None:
    with pytest.raises(TypeError, match="LlamaIndex LLM"):
        as_llm(lambda p: p)  # type: ignore[arg-type]
