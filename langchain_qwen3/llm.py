"""A LangChain chat model (or LLM) as the prompt -> reply callable ``qwen3_rag.adapt`` uses.

Example:
    >>> from langchain_core.language_models import FakeListChatModel
    >>> from langchain_qwen3 import as_llm
    >>> llm = as_llm(FakeListChatModel(responses=['{"query": "capital of France"}']))
    >>> llm("Write a query.")
    '{"query": "capital of France"}'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseLanguageModel
from langchain_core.output_parsers import StrOutputParser

__all__ = ["as_llm", "llm_from_spec"]


def as_llm(model: BaseLanguageModel[Any]) -> Callable[[str], str]:
    """Wrap a LangChain chat model or LLM as a ``str -> str`` callable.

    The prompt is sent as one human message (``model.invoke(prompt)``) and the reply's text
    returned (content blocks joined, as ``StrOutputParser`` does). It is safe to call from
    several threads when the model is (LangChain chat models are).

    Args:
        model: Any LangChain ``BaseChatModel`` or ``BaseLLM``.

    Raises:
        TypeError: If ``model`` is not a LangChain language model.
    """
    if not isinstance(model, BaseLanguageModel):
        raise TypeError(f"model must be a LangChain chat model or LLM, not {type(model).__name__}")
    chain = model | StrOutputParser()

    def call(prompt: str) -> str:
        return str(chain.invoke(prompt))

    return call


def llm_from_spec(spec: str, **kwargs: Any) -> Callable[[str], str]:
    """A chat model from an ``init_chat_model`` spec (``"ollama:qwen3:4b"``), as a callable.

    Args:
        spec: ``provider:model``, e.g. ``"ollama:qwen3:4b"``, ``"openai:gpt-4o-mini"``.
        **kwargs: Passed to ``init_chat_model`` (``temperature=``, ``base_url=`` ...).

    Raises:
        ImportError: If ``init_chat_model`` (package ``langchain``) or the provider's
            package (e.g. ``langchain-ollama``) is not installed; the message names it.
        ValueError: If LangChain cannot infer a provider from ``spec``.
    """
    try:
        from langchain.chat_models import init_chat_model  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from langchain_classic.chat_models import init_chat_model
        except ImportError as exc:
            raise ImportError(
                "a chat-model spec needs LangChain's init_chat_model: pip install "
                '"qwen3-rag[langchain]" langchain'
            ) from exc
    try:
        model = init_chat_model(spec, **kwargs)
    except ImportError as exc:
        raise ImportError(
            f"{spec!r} needs its provider's LangChain package: {exc} "
            f'(with pip install "qwen3-rag[langchain]")'
        ) from exc
    return as_llm(model)
