"""Pydantic field sets for the LangChain and LlamaIndex classes, declared from the options.

Both frameworks build their classes on pydantic v2, so their model settings are declared once,
here, as mixins: every type, default and description comes from
:class:`~qwen3_rag.EmbedderOptions` / :class:`~qwen3_rag.RerankerOptions`, and the adapters
inherit them. Each adapter adds only what its framework names differently (``model`` vs
``model_name``, ``batch_size`` vs ``embed_batch_size``) and builds its core object with
:meth:`EmbedderFields.embedder_options` / :meth:`RerankerFields.reranker_options`, where the
core validates every value.

This module needs pydantic (installed with the ``langchain`` and ``llamaindex`` extras); the
rest of the core does not.

Example:
    >>> from qwen3_rag.fields import EmbedderFields
    >>> class Settings(EmbedderFields):
    ...     pass
    >>> options = Settings(dimensions=256).embedder_options(model="my/model", batch_size=8)
    >>> options.dimensions, options.batch_size, options.max_length
    (256, 8, 8192)
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_serializer

from qwen3_rag.options import (
    DeviceLike,
    DTypeLike,
    EmbedderOptions,
    Engine,
    InstructionLike,
    LongDocuments,
    ModelOptions,
    Precision,
    RerankerOptions,
    default,
    describe,
)

__all__ = ["EmbedderFields", "ModelFields", "RerankerFields", "option_field"]


def option_field(options: type[ModelOptions], name: str, **kwargs: Any) -> Any:
    """A pydantic ``Field`` with the default and description of option ``name``.

    Args:
        options: :class:`~qwen3_rag.EmbedderOptions` or :class:`~qwen3_rag.RerankerOptions`.
        name: The option.
        **kwargs: Further ``Field`` arguments (``alias=``, ``gt=`` ...).
    """
    return Field(default=default(options, name), description=describe(options, name), **kwargs)


class ModelFields(BaseModel):
    """The settings every Qwen3 model takes, besides its name and batch size."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    instruction: InstructionLike = option_field(ModelOptions, "instruction")
    device: DeviceLike = option_field(ModelOptions, "device")
    dtype: DTypeLike = option_field(ModelOptions, "dtype")
    max_length: int = option_field(ModelOptions, "max_length")
    max_batch_tokens: int | None = option_field(ModelOptions, "max_batch_tokens")
    revision: str | None = option_field(ModelOptions, "revision")
    cache_dir: str | None = option_field(ModelOptions, "cache_dir")
    local_files_only: bool = option_field(ModelOptions, "local_files_only")
    quantize: str | None = option_field(ModelOptions, "quantize")
    precision: Precision = option_field(ModelOptions, "precision")
    engine: Engine = option_field(ModelOptions, "engine")
    show_progress: bool = option_field(ModelOptions, "show_progress")
    base_url: str | None = option_field(ModelOptions, "base_url")
    api_key_env: str | None = option_field(ModelOptions, "api_key_env")
    timeout: float = option_field(ModelOptions, "timeout")
    max_retries: int = option_field(ModelOptions, "max_retries")

    @field_serializer("device", "dtype")
    def _as_text(self, value: torch.device | torch.dtype | str | None) -> str | None:
        """Serialise torch devices and dtypes as their names (JSON-safe, reloadable)."""
        return None if value is None else str(value).removeprefix("torch.")

    def _settings(self, fields: type[BaseModel]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in fields.model_fields}


class EmbedderFields(ModelFields):
    """The settings of an embedding class; see :class:`~qwen3_rag.EmbedderOptions`."""

    dimensions: int | None = option_field(EmbedderOptions, "dimensions")
    query_model: str | None = option_field(EmbedderOptions, "query_model")

    def embedder_options(self, *, model: str, batch_size: int) -> EmbedderOptions:
        """The validated core options for these settings, the model and the batch size.

        Raises:
            ValueError: If a value is out of range (the message names it).
            TypeError: If a value has the wrong type.
        """
        return EmbedderOptions(model=model, batch_size=batch_size, **self._settings(EmbedderFields))


class RerankerFields(ModelFields):
    """The settings of a reranker class; see :class:`~qwen3_rag.RerankerOptions`."""

    long_documents: LongDocuments = option_field(RerankerOptions, "long_documents")
    window_overlap: int = option_field(RerankerOptions, "window_overlap")
    max_windows: int | None = option_field(RerankerOptions, "max_windows")

    def reranker_options(self, *, model: str, batch_size: int) -> RerankerOptions:
        """The validated core options for these settings, the model and the batch size.

        Raises:
            ValueError: If a value is out of range or the instruction is empty.
            TypeError: If a value has the wrong type.
        """
        return RerankerOptions(model=model, batch_size=batch_size, **self._settings(RerankerFields))
