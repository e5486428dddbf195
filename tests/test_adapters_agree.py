"""The LangChain and LlamaIndex classes declare their settings from the core options.

Every field that maps onto an option has the option's type, default and description, in
both frameworks, so the two never disagree again.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.postprocessor.types import BaseNodePostprocessor

from langchain_qwen3 import Qwen3CrossEncoder, Qwen3Embeddings, Qwen3Reranker
from llamaindex_qwen3 import Qwen3Embedding, Qwen3Rerank
from qwen3_rag import EmbedderOptions, RerankerOptions
from qwen3_rag import options as options_module

#: Framework field name -> option name, where a framework names it its own way.
RENAMED = {"model_name": "model", "embed_batch_size": "batch_size"}

#: Each class, its options, and its own fields that are not options (the framework base
#: class's fields, except those it renames from an option, are its own too).
CLASSES: list[tuple[Any, type, set[str]]] = [
    (Qwen3Embeddings, EmbedderOptions, {"model_kwargs", "use_modelscope"}),
    (Qwen3Reranker, RerankerOptions, {"top_n"}),
    (Qwen3CrossEncoder, RerankerOptions, set()),
    (Qwen3Embedding, EmbedderOptions, set(BaseEmbedding.model_fields) - set(RENAMED)),
    (
        Qwen3Rerank,
        RerankerOptions,
        {"top_n", "keep_retrieval_score"} | set(BaseNodePostprocessor.model_fields),
    ),
]


def _option_types(options: type) -> dict[str, Any]:
    return typing.get_type_hints(options, vars(options_module))


@pytest.mark.parametrize(
    ("cls", "options", "own"), CLASSES, ids=lambda c: getattr(c, "__name__", "")
)
def test_fields_are_declared_from_the_options(cls: Any, options: type, own: set[str]) -> None:
    fields = cls.model_fields
    mapped = {RENAMED.get(name, name): name for name in fields if name not in own}
    option_names = {f.name for f in dataclasses.fields(options)}
    assert set(mapped) == option_names  # every option, nothing else
    types = _option_types(options)
    for f in dataclasses.fields(options):
        declared = fields[mapped[f.name]]
        assert declared.default == f.default, f.name
        assert declared.description == f.metadata["description"], f.name
        assert declared.annotation == types[f.name], f.name


def test_both_frameworks_build_the_same_core_objects() -> None:
    settings = {"dimensions": 64, "max_length": 512, "instruction": "code_search"}
    lc = Qwen3Embeddings(model="some/model", batch_size=8, device="cpu", **settings)
    li = Qwen3Embedding("some/model", embed_batch_size=8, device="cpu", **settings)
    assert lc.embedder.options == li.embedder.options
    lc_r = Qwen3Reranker(model="some/rr", batch_size=4, device="cpu", max_length=256)
    li_r = Qwen3Rerank("some/rr", batch_size=4, device="cpu", max_length=256)
    ce = Qwen3CrossEncoder(model_name="some/rr", batch_size=4, device="cpu", max_length=256)
    assert lc_r.reranker.options == li_r.reranker.options == ce.reranker.options
    defaults = [Qwen3Embeddings().embedder, Qwen3Embedding().embedder]
    assert defaults[0].options == defaults[1].options == EmbedderOptions()
    assert Qwen3Reranker().reranker.options == Qwen3Rerank().reranker.options == RerankerOptions()


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: Qwen3Embeddings(**kw),
        lambda **kw: Qwen3Embedding(**kw),
        lambda **kw: Qwen3Reranker(**kw),
        lambda **kw: Qwen3Rerank(**kw),
    ],
)
def test_bad_values_fail_alike_in_both_frameworks(make: Any) -> None:
    with pytest.raises(ValueError, match="max_length"):
        make(max_length=0)
    with pytest.raises(ValueError, match="web_serch"):
        make(instruction="web_serch")
