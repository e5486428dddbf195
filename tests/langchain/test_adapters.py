"""Adapters equal the core exactly; compatibility with langchain-qwen3 0.1.2; bad input."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from langchain_qwen3 import (
    Qwen3CrossEncoder,
    Qwen3Embeddings,
    Qwen3Reranker,
    Qwen3RerankRetriever,
)
from qwen3_rag import Embedder, Reranker
from tests.langchain.conftest import QUERY, TEXTS, make_docs

BASE_CALLS: list[dict[str, Any]] = []


class FixedRetriever(BaseRetriever):
    """Returns fresh copies of the test corpus and records the kwargs it was called with."""

    def _get_relevant_documents(self, query: str, *, run_manager: Any, **kwargs: Any) -> list:
        BASE_CALLS.append(kwargs)
        return make_docs()


class RetrieverStarts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[str | None, UUID | None]] = []

    def on_retriever_start(
        self,
        serialized: Any,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self.starts.append((kwargs.get("name"), parent_run_id))


# -- embeddings -----------------------------------------------------------------------------


def test_embeddings_equal_core_exactly(embeddings: Qwen3Embeddings, emb_path: str) -> None:
    core = Embedder(emb_path, device="cpu")
    docs = embeddings.embed_documents(TEXTS)
    assert isinstance(docs, list) and all(type(x) is float for x in docs[0])
    np.testing.assert_array_equal(np.array(docs, dtype=np.float32), core.embed_documents(TEXTS))
    query = embeddings.embed_query(QUERY)
    np.testing.assert_array_equal(np.array(query, dtype=np.float32), core.embed_queries([QUERY])[0])
    # the query gets the instruction, documents do not
    assert not np.allclose(query, embeddings.embed_documents([QUERY])[0])
    raw = Qwen3Embeddings(model=emb_path, device="cpu", instruction="")
    assert raw.embed_query(QUERY) == raw.embed_documents([QUERY])[0]
    assert embeddings.embed_documents([]) == []


async def test_async_embeddings_equal_sync(embeddings: Qwen3Embeddings) -> None:
    assert await embeddings.aembed_query(QUERY) == embeddings.embed_query(QUERY)
    assert await embeddings.aembed_documents(TEXTS[:3]) == embeddings.embed_documents(TEXTS[:3])


def test_embeddings_options_reach_the_core(emb_path: str) -> None:
    emb = Qwen3Embeddings(
        model_name=emb_path,
        instruction="question_answering",
        dimensions=32,
        device="cpu",
        dtype="float32",
        max_length=16,
        batch_size=2,
    )
    assert emb.model == emb_path
    core = emb.embedder
    assert core.model == emb_path and core.dimensions == 32 and core.max_length == 16
    assert core.batch_size == 2 and core.dtype.is_floating_point and core.device.type == "cpu"
    assert core.instruction.startswith("Given a question, retrieve Wikipedia")
    assert len(emb.embed_query("x")) == 32
    reference = Embedder(emb_path, instruction="question_answering", dimensions=32, max_length=16)
    np.testing.assert_array_equal(
        np.array(emb.embed_query(QUERY * 5), dtype=np.float32),
        reference.embed_queries([QUERY * 5])[0],
    )


def test_embeddings_bad_input(embeddings: Qwen3Embeddings, emb_path: str) -> None:
    with pytest.raises(TypeError, match="single str"):
        embeddings.embed_documents("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embeddings.embed_documents(["a", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a str"):
        embeddings.embed_query(["a"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a known preset"):
        Qwen3Embeddings(model=emb_path, instruction="websearch")
    with pytest.raises(ValueError, match="dimensions"):
        Qwen3Embeddings(model=emb_path, dimensions=8)
    with pytest.raises(ValueError, match="extra"):
        Qwen3Embeddings(model=emb_path, batchsize=4)


def test_truncation_is_logged(emb_path: str, caplog: pytest.LogCaptureFixture) -> None:
    emb = Qwen3Embeddings(model=emb_path, device="cpu", max_length=8)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        emb.embed_documents([TEXTS[1] * 3, "short"])
    assert "1 of 2 texts exceeded max_length=8" in caplog.text


# -- langchain-qwen3 0.1.2 constructor --------------------------------------------------------


def test_legacy_constructor_maps_what_applies(emb_path: str) -> None:
    emb = Qwen3Embeddings(
        model=emb_path,
        max_length=4096,
        device="cpu",
        model_kwargs={"torch_dtype": "float32", "trust_remote_code": True, "revision": "main"},
        use_modelscope=False,
    )
    core = emb.embedder
    assert core.max_length == 4096 and core.device.type == "cpu"
    assert str(core.dtype) == "torch.float32" and emb.revision == "main"
    assert len(emb.embed_query(QUERY)) == 64


def test_legacy_constructor_rejects_the_rest(emb_path: str) -> None:
    with pytest.raises(ValueError, match=r"model_kwargs keys \['attn_implementation'\]"):
        Qwen3Embeddings(model=emb_path, model_kwargs={"attn_implementation": "sdpa"})
    with pytest.raises(ValueError, match="use_modelscope=True is not supported"):
        Qwen3Embeddings(model=emb_path, use_modelscope=True)
    with pytest.raises(ValueError, match="conflicts with dtype='bfloat16'"):
        Qwen3Embeddings(model=emb_path, dtype="bfloat16", model_kwargs={"dtype": "float32"})


def test_legacy_get_detailed_instruct(emb_path: str, embeddings: Qwen3Embeddings) -> None:
    raw = Qwen3Embeddings(model=emb_path, device="cpu", instruction="")
    task = "Given a web search query, retrieve relevant passages that answer the query"
    formatted = raw.get_detailed_instruct(task, QUERY)
    assert formatted == f"Instruct: {task}\nQuery:{QUERY}"
    # formatting by hand with instruction="" gives exactly what embed_query does by default
    assert raw.embed_query(formatted) == embeddings.embed_query(QUERY)
    with pytest.raises(ValueError, match="apply it twice"):
        embeddings.get_detailed_instruct(task, QUERY)


# -- reranker compressor ----------------------------------------------------------------------


def test_compressor_equals_core_rank(reranker: Qwen3Reranker, rr_path: str) -> None:
    docs = make_docs()
    before = [d.model_copy(deep=True) for d in docs]
    out = reranker.compress_documents(docs, QUERY)
    expected = Reranker(rr_path, device="cpu").rank(QUERY, TEXTS, top_n=3)
    assert [(d.id, d.metadata["relevance_score"]) for d in out] == [
        (f"id{i}", s) for i, s in expected
    ]
    assert [d.page_content for d in out] == [TEXTS[i] for i, _ in expected]
    assert all(d.metadata["source"] == f"doc{i}" for d, (i, _) in zip(out, expected, strict=True))
    assert docs == before  # inputs untouched
    assert all("relevance_score" not in d.metadata for d in docs)
    assert all(o is not docs[i] for o, (i, _) in zip(out, expected, strict=True))


async def test_compressor_async_and_top_n(reranker: Qwen3Reranker, rr_path: str) -> None:
    docs = make_docs()
    sync = reranker.compress_documents(docs, QUERY)
    assert list(await reranker.acompress_documents(docs, QUERY)) == list(sync)
    everything = Qwen3Reranker(model=rr_path, device="cpu", top_n=None)
    ranked = everything.compress_documents(docs, QUERY)
    assert len(ranked) == len(docs)
    scores = [d.metadata["relevance_score"] for d in ranked]
    assert scores == sorted(scores, reverse=True)
    assert list(ranked[:3]) == list(sync)
    assert reranker.compress_documents([], QUERY) == []


def test_compressor_scores_empty_documents(reranker: Qwen3Reranker, rr_path: str) -> None:
    docs = [Document(page_content=""), Document(page_content=TEXTS[0]), Document(page_content="")]
    out = Qwen3Reranker(model=rr_path, device="cpu", top_n=None).compress_documents(docs, QUERY)
    assert len(out) == 3
    assert sum(d.page_content == "" for d in out) == 2
    expected = Reranker(rr_path, device="cpu").score(QUERY, ["", TEXTS[0], ""])
    assert sorted(d.metadata["relevance_score"] for d in out) == sorted(expected)


def test_compressor_bad_input(reranker: Qwen3Reranker, rr_path: str) -> None:
    for bad in (0, -2):
        with pytest.raises(ValueError, match="top_n must be an integer >= 1"):
            Qwen3Reranker(model=rr_path, top_n=bad)
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Document"):
        reranker.compress_documents([Document(page_content="a"), "b"], QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="documents must be a list"):
        reranker.compress_documents(Document(page_content="a"), QUERY)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="query must be a str"):
        reranker.compress_documents(make_docs(), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a known preset"):
        Qwen3Reranker(model=rr_path, instruction="websearch")


def test_contextual_compression_retriever(reranker: Qwen3Reranker, rr_path: str) -> None:
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=FixedRetriever()
    )
    out = retriever.invoke(QUERY)
    expected = Reranker(rr_path, device="cpu").rank(QUERY, TEXTS, top_n=3)
    assert [(d.page_content, d.metadata["relevance_score"]) for d in out] == [
        (TEXTS[i], s) for i, s in expected
    ]


# -- cross-encoder ----------------------------------------------------------------------------


def test_cross_encoder_equals_core(rr_path: str) -> None:
    encoder = Qwen3CrossEncoder(model=rr_path, device="cpu")
    pairs = [(QUERY, TEXTS[0]), ("Explain gravity", TEXTS[1]), (QUERY, "")]
    assert encoder.score(pairs) == Reranker(rr_path, device="cpu").score_pairs(pairs)
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        encoder.score([("only one",)])  # type: ignore[list-item]
    compressor = CrossEncoderReranker(model=encoder, top_n=2)
    out = compressor.compress_documents(make_docs(), QUERY)
    expected = Reranker(rr_path, device="cpu").rank(QUERY, TEXTS, top_n=2)
    assert [d.page_content for d in out] == [TEXTS[i] for i, _ in expected]


# -- two-stage retriever ----------------------------------------------------------------------


async def test_rerank_retriever(reranker: Qwen3Reranker, rr_path: str) -> None:
    BASE_CALLS.clear()
    retriever = Qwen3RerankRetriever(base_retriever=FixedRetriever(), reranker=reranker, k=4)
    ranking = Reranker(rr_path, device="cpu").rank(QUERY, TEXTS)
    out = retriever.invoke(QUERY)
    assert [(d.id, d.metadata["relevance_score"]) for d in out] == [
        (f"id{i}", s) for i, s in ranking[:4]
    ]
    assert [d.id for d in retriever.invoke(QUERY, k=2)] == [f"id{i}" for i, _ in ranking[:2]]
    assert [d.id for d in await retriever.ainvoke(QUERY, k=5)] == [f"id{i}" for i, _ in ranking[:5]]
    # other keyword arguments go to the base retriever, k does not
    retriever.invoke(QUERY, k=1, flavour="x")
    assert BASE_CALLS[-1] == {"flavour": "x"}
    # k=None falls back to the reranker's top_n (3)
    default = Qwen3RerankRetriever(base_retriever=FixedRetriever(), reranker=reranker)
    assert len(default.invoke(QUERY)) == 3
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        Qwen3RerankRetriever(base_retriever=FixedRetriever(), reranker=reranker, k=0)
    with pytest.raises(ValueError, match="top_n must be an integer >= 1"):
        retriever.invoke(QUERY, k=0)


async def test_rerank_retriever_runnable_base_and_callbacks(reranker: Qwen3Reranker) -> None:
    base = RunnableLambda(lambda q: make_docs()[:2])
    retriever = Qwen3RerankRetriever(base_retriever=base, reranker=reranker, k=5)
    assert len(retriever.invoke(QUERY)) == 2

    handler = RetrieverStarts()
    nested = Qwen3RerankRetriever(base_retriever=FixedRetriever(), reranker=reranker, k=1)
    nested.invoke(QUERY, config={"callbacks": [handler]})
    await nested.ainvoke(QUERY, config={"callbacks": [handler]})
    names = [name for name, _ in handler.starts]
    assert names == [
        "Qwen3RerankRetriever",
        "FixedRetriever",
        "Qwen3RerankRetriever",
        "FixedRetriever",
    ]
    # the base retriever's run is a child of the rerank retriever's run
    assert handler.starts[0][1] is None and handler.starts[1][1] is not None


def test_quantize_reaches_the_core(emb_path: str, rr_path: str) -> None:
    pytest.importorskip("torchao")
    emb = Qwen3Embeddings(model=emb_path, device="cpu", quantize="int8")
    core = Embedder(emb_path, device="cpu", quantize="int8")
    assert emb.embedder._runtime() is core._runtime()  # the int8 model, shared
    assert emb.embed_documents(TEXTS) == core.embed_documents(TEXTS).tolist()
    reranker = Qwen3Reranker(model=rr_path, device="cpu", quantize="int8", top_n=None)
    docs = reranker.compress_documents(make_docs(), QUERY)
    expected = Reranker(rr_path, device="cpu", quantize="int8").rank(QUERY, TEXTS)
    assert [d.metadata["relevance_score"] for d in docs] == [s for _, s in expected]
    with pytest.raises(ValueError, match="quantize"):
        Qwen3Embeddings(model=emb_path, device="cpu", quantize="int4")
