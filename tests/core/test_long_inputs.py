"""Inputs of thousands of tokens stay exact, and attention memory stays linear in their length.

The lean forward attends with an explicit mask only where queries continue a shared prefix
(the reranker's prefix sharing, and the last layer's single query per row). A mask holds
queries x keys elements, and SDPA's CPU kernel copies it to floats, so at the models' 32k
context one unchunked mask would take gigabytes; the queries are therefore cut in chunks whose
mask stays under ``_forward._MASK_ELEMENTS`` (the benchmark's memory probe measures the real
32k case). Here the same paths run on a few thousand tokens against the literal recipe, once
as they are and once with the mask budget made tiny, so that they go through many chunks.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qwen3_rag import Embedder, Reranker, _forward
from qwen3_rag import reranker as reranker_module
from tests.core.test_parity import TASK, literal_embed, literal_rerank, normalise

MAX_LENGTH = 4096  # the tiny test models' max_position_embeddings
QUERY = "Which paragraph talks about the seventh topic and its neighbours?"


def long_text(seed: int, words: int = 6000) -> str:
    """Varied words, far more than ``MAX_LENGTH`` tokens (cut to it, with a logged warning)."""
    rng = np.random.default_rng(seed)
    vocab = ["topic", "seventh", "neighbour", "Beijing", "gravity", "的", "über", "42", "\n"]
    vocab += [f"w{i}" for i in range(50)]
    return " ".join(rng.choice(vocab, size=words))


@pytest.fixture(params=["one chunk", "many chunks"])
def mask_budget(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The default mask budget, or one so small that a 4k input needs ~250 query chunks."""
    if request.param == "many chunks":
        monkeypatch.setattr(_forward, "_MASK_ELEMENTS", 1 << 16)
    return int(_forward._MASK_ELEMENTS)


@pytest.fixture(params=["per sequence", "padded grid"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Attention one sequence at a time (CPU), or on one padded grid (accelerators)."""
    grid = request.param == "padded grid"
    monkeypatch.setattr(_forward, "per_sequence_attention", lambda device: not grid)
    return str(request.param)


@pytest.fixture
def attention_masks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shape of every explicit mask given to SDPA (clear it before the call to watch)."""
    shapes: list[tuple[int, ...]] = []
    real = F.scaled_dot_product_attention

    def recording(*args: Any, **kwargs: Any) -> torch.Tensor:
        mask = kwargs.get("attn_mask")
        if mask is not None:
            shapes.append(tuple(mask.shape))
        return real(*args, **kwargs)

    monkeypatch.setattr(_forward.F, "scaled_dot_product_attention", recording)
    return shapes


def test_long_texts_embed_like_the_literal_recipe(
    real_embedding_dir: Path,
    layout: str,
    attention_masks: list[tuple[int, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = [long_text(0), "a short one beside it", long_text(1, words=1500)]
    emb = Embedder(str(real_embedding_dir), device="cpu", max_length=MAX_LENGTH).load()
    attention_masks.clear()  # the load-time self-check attends too
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = emb.embed_documents(texts)
    ours = list(attention_masks)  # the reference below goes through SDPA as well
    assert any("1 of 3 texts" in r.getMessage() for r in caplog.records)  # cut to 4096 tokens
    expected = normalise(literal_embed(real_embedding_dir, texts, max_length=MAX_LENGTH))
    assert np.abs(got - expected).max() <= 1e-5
    if layout == "per sequence":  # causal attention of one sequence needs no mask at all
        assert ours == []
    else:  # no prefix: no mask but the last layer's one query per row
        assert ours and all(shape[-2] == 1 for shape in ours)


#: One query, so its template, instruction and query are computed once and shared: the
#: documents then continue that prefix, the first with ~4,000 tokens of its own.
LONG_DOCS = [long_text(2), "short", long_text(3, words=900)]


@pytest.fixture(scope="module")
def long_docs_reference(real_reranker_dir: Path) -> list[float]:
    """The literal recipe's scores for ``LONG_DOCS`` (computed once for both budgets)."""
    return literal_rerank(
        real_reranker_dir, TASK, QUERY, LONG_DOCS, max_length=MAX_LENGTH, last_logits_only=True
    )


def test_long_documents_through_prefix_sharing_rerank_like_the_literal_recipe(
    real_reranker_dir: Path,
    long_docs_reference: list[float],
    layout: str,
    mask_budget: int,
    attention_masks: list[tuple[int, ...]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rr = Reranker(str(real_reranker_dir), device="cpu", max_length=MAX_LENGTH).load()
    attention_masks.clear()
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = rr.score(QUERY, LONG_DOCS)
    ours = list(attention_masks)
    assert np.abs(np.array(got) - np.array(long_docs_reference)).max() <= 1e-5
    chunked = [shape for shape in ours if shape[-2] > 1]
    longest = max(shape[-2] * shape[-1] for shape in chunked)
    assert longest <= mask_budget  # every prefix-continuing mask within the budget
    if mask_budget < 4000 * 4000:
        assert len(chunked) > 100  # went through many chunks, each equal to the reference


@pytest.fixture
def prefix_lengths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every prefix whose keys and values the reranker computes and keeps."""
    lengths: list[int] = []
    real = _forward.prefix_kv

    def recording(model: Any, prefix: Any, device: Any) -> Any:
        lengths.append(len(prefix))
        return real(model, prefix, device)

    monkeypatch.setattr(_forward, "prefix_kv", recording)
    return lengths


def test_a_lone_long_pair_keeps_no_prefix_cache(
    real_reranker_dir: Path, prefix_lengths: list[int]
) -> None:
    """Sharing a prefix with nobody saves nothing, and would hold every layer's keys and values
    for the whole input (7.5 GB at 32k tokens for the 0.6B model)."""
    rr = Reranker(str(real_reranker_dir), device="cpu", max_length=MAX_LENGTH).load()
    prefix_lengths.clear()  # the load-time self-check shares a prefix
    docs = [long_text(5)]
    got = rr.score(QUERY, docs)
    assert prefix_lengths == []
    expected = literal_rerank(
        real_reranker_dir, TASK, QUERY, docs, max_length=MAX_LENGTH, last_logits_only=True
    )
    assert abs(got[0] - expected[0]) <= 1e-5


def test_the_shared_prefix_is_capped_by_the_token_budget(
    real_reranker_dir: Path, prefix_lengths: list[int]
) -> None:
    """A long query shared by several documents: its cached part stays within the budget."""
    rr = Reranker(str(real_reranker_dir), device="cpu", max_batch_tokens=512).load()
    prefix_lengths.clear()
    query = long_text(6, words=300)  # ~600 tokens with the template
    docs = ["Beijing is the capital of China.", "gravity", ""]
    got = rr.score(query, docs)
    assert prefix_lengths == [512 // reranker_module.SHARE_FRACTION]
    expected = literal_rerank(real_reranker_dir, TASK, query, docs, last_logits_only=True)
    assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-5
