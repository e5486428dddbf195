"""A LlamaIndex LLM as the prompt -> reply callable ``qwen3_rag.adapt`` uses.

Example:
    >>> from llama_index.core.llms import MockLLM
    >>> from llamaindex_qwen3 import as_llm
    >>> as_llm(MockLLM())("Write a query.")
    'Write a query.'
"""

from __future__ import annotations

from collections.abc import Callable

from llama_index.core.llms import LLM

__all__ = ["as_llm"]


def as_llm(llm: LLM) -> Callable[[str], str]:
    """Wrap a LlamaIndex LLM as a ``str -> str`` callable (``llm.complete(prompt).text``).

    Chat-only models work too: LlamaIndex sends the prompt as a user message.

    Raises:
        TypeError: If ``llm`` is not a LlamaIndex LLM.
    """
    if not isinstance(llm, LLM):
        raise TypeError(f"llm must be a LlamaIndex LLM, not {type(llm).__name__}")

    def call(prompt: str) -> str:
        return str(llm.complete(prompt).text)

    return call
