"""langchain_qwen3.as_llm / llm_from_spec: a LangChain model as the adaptation's LLM."""

from __future__ import annotations

import threading

import pytest
from langchain_core.language_models import FakeListChatModel, FakeListLLM
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langchain_qwen3 import as_llm, llm_from_spec


def test_chat_model_and_llm_become_str_to_str() -> None:
    chat = as_llm(FakeListChatModel(responses=['{"query": "a"}', '{"query": "b"}']))
    assert chat("first") == '{"query": "a"}' and chat("second") == '{"query": "b"}'
    assert as_llm(FakeListLLM(responses=["plain"]))("x") == "plain"


def test_content_blocks_are_joined_as_text() -> None:
    blocks = AIMessage(
        content=[{"type": "text", "text": '{"query": '}, {"type": "text", "text": '"b"}'}]
    )
    assert as_llm(GenericFakeChatModel(messages=iter([blocks])))("x") == '{"query": "b"}'


def test_thread_safe_enough_for_the_synthesis_pool() -> None:
    llm = as_llm(FakeListChatModel(responses=["ok"] * 50))
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.append(llm("p"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["ok"] * 8


def test_bad_arguments_and_missing_provider() -> None:
    with pytest.raises(TypeError, match="LangChain chat model"):
        as_llm("ollama:qwen3:4b")  # type: ignore[arg-type]
    try:
        import langchain_ollama  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"langchain-ollama|langchain_ollama"):
            llm_from_spec("ollama:qwen3:4b")
    with pytest.raises(ValueError):
        llm_from_spec("qwen3-that-no-provider-serves")
