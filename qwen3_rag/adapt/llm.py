"""The LLM that writes the synthetic queries: any callable ``str -> str``.

The core never imports a framework: an LLM enters :mod:`qwen3_rag.adapt` as a plain function
from a prompt to the model's reply. Wrap what you have:

* a local chat model folder (e.g. Qwen3-4B): :class:`TransformersChatLLM`;
* a LangChain chat model: ``langchain_qwen3.as_llm(chat_model)``, or
  ``langchain_qwen3.llm_from_spec("ollama:qwen3:4b")`` (``init_chat_model`` specs);
* a LlamaIndex LLM: ``llamaindex_qwen3.as_llm(llm)``;
* anything else: ``lambda prompt: my_client.complete(prompt)``.

Example:
    >>> from qwen3_rag.adapt.llm import TransformersChatLLM
    >>> llm = TransformersChatLLM("models/Qwen3-4B")  # loads nothing yet
    >>> reply = llm('Answer in JSON: {"ok": true}')  # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch

from qwen3_rag.loading import (
    ModelSource,
    load_pretrained,
    load_tokenizer,
    resolve_device,
    resolve_dtype,
)
from qwen3_rag.options import DeviceLike, DTypeLike, check_positive_int

__all__ = ["LLM", "TransformersChatLLM"]

#: What :mod:`qwen3_rag.adapt` calls an LLM: a function from a prompt to the reply text. It
#: may raise (a network error, a timeout): the call is counted as failed and retried.
LLM = Callable[[str], str]


class TransformersChatLLM:
    """A local transformers chat model as an :data:`LLM` (greedy decoding by default).

    The prompt is sent as one user message through the tokenizer's chat template (Qwen3's
    thinking is switched off with ``enable_thinking=False``, which other templates ignore);
    the reply is the generated text without special tokens. The model loads on the first
    call; calls are serialised (one generation at a time).

    Args:
        model: Local folder (or hub id) of a chat model with a chat template.
        max_new_tokens: Most tokens generated per reply.
        temperature: 0 for greedy decoding (reproducible); above 0 samples.
        device: ``"cpu"``, ``"cuda"`` ...; default CUDA, else MPS, else CPU.
        dtype: Default float32 on CPU, bfloat16 on CUDA.

    Raises:
        ValueError: On the first call, if the tokenizer has no chat template.

    Example:
        >>> llm = TransformersChatLLM("models/Qwen3-4B", max_new_tokens=128)
        >>> llm.model
        'models/Qwen3-4B'
    """

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
    ) -> None:
        self.source = ModelSource(model)
        self.max_new_tokens = check_positive_int(max_new_tokens, "max_new_tokens")
        if not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"temperature must be a number >= 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._loaded: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TransformersChatLLM({self.source.model!r}, device='{self.device}')"

    @property
    def model(self) -> str:
        """The folder or hub id of the chat model."""
        return self.source.model

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM

            tokenizer = load_tokenizer(self.source)
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    f"llm={self.source.model!r}: its tokenizer has no chat template; the LLM "
                    f"must be a chat (instruct) model such as Qwen3-4B"
                )
            lm = load_pretrained(AutoModelForCausalLM, self.source, self.device, self.dtype)
            self._loaded = (tokenizer, lm)
        return self._loaded

    def __call__(self, prompt: str) -> str:
        """The model's reply to ``prompt``, sent as one user message."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        with self._lock:
            tokenizer, lm = self._load()
            inputs = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                enable_thinking=False,
            ).to(self.device)
            sampling: dict[str, Any] = (
                {"do_sample": True, "temperature": self.temperature}
                if self.temperature > 0
                else {"do_sample": False}
            )
            pad = tokenizer.pad_token_id
            with torch.inference_mode():
                out = lm.generate(
                    **inputs,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=pad if pad is not None else tokenizer.eos_token_id,
                    **sampling,
                )
            new = out[0, inputs["input_ids"].shape[1] :]
            return str(tokenizer.decode(new, skip_special_tokens=True))
