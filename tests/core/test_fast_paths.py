"""The fast paths stay exact: prefix sharing, sorted token-budget batches, the lean forward.

Speed is never asserted here; only that every shortcut computes what the plain path does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qwen3_rag import Embedder, Reranker, _forward, clear_cache
from qwen3_rag import reranker as reranker_module
from qwen3_rag.batching import right_pad
from tests.models import load_reference

QUERIES = ["What is the capital of China?", "Explain gravity", "capital", ""]
DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "",
    "Paris is the capital of France and a large city in Europe. " * 6,
    "ok",
    "Python is a programming language; def main(): return 42",
]


def _unshared_scores(
    monkeypatch: pytest.MonkeyPatch, folder: Path, pairs: list[tuple[str, str]], **kw: object
) -> list[float]:
    """Scores with prefix sharing off (every pair runs in full), same lean forward."""
    with monkeypatch.context() as m:
        m.setattr(
            reranker_module, "_share_groups", lambda queries, seqs: [(0, list(range(len(seqs))))]
        )
        return Reranker(str(folder), device="cpu", **kw).score_pairs(pairs)  # type: ignore[arg-type]


def _hf_scores(
    monkeypatch: pytest.MonkeyPatch, folder: Path, pairs: list[tuple[str, str]]
) -> list[float]:
    """Scores through transformers' own forward (left padding, batch size 1)."""
    clear_cache()
    with monkeypatch.context() as m:
        m.setattr(_forward, "supports", lambda model: False)
        scores = Reranker(str(folder), device="cpu", batch_size=1).score_pairs(pairs)
    clear_cache()
    return scores


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_prefix_shared_rerank_equals_unshared(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    folder = request.getfixturevalue(
        "tiny_reranker_dir" if which == "tiny" else "real_reranker_dir"
    )
    # two multi-candidate queries, plus queries that occur once (pooled on the template)
    pairs = [(q, d) for q in QUERIES[:2] for d in DOCS] + [(QUERIES[2], DOCS[0]), (QUERIES[3], "x")]
    shared = Reranker(str(folder), device="cpu", batch_size=4).score_pairs(pairs)
    unshared = _unshared_scores(monkeypatch, folder, pairs, batch_size=1)
    reference = _hf_scores(monkeypatch, folder, pairs)
    assert np.abs(np.array(shared) - np.array(unshared)).max() <= 1e-5
    assert np.abs(np.array(shared) - np.array(reference)).max() <= 1e-5
    assert np.ptp(reference) > 1e-3  # the scores differ, so equality means something


def test_share_groups_use_exact_token_prefix() -> None:
    seqs = [[1, 2, 3, 4, 9], [1, 2, 3, 5], [1, 2, 7], [1, 2, 3, 4]]
    groups = reranker_module._share_groups(["a", "a", "b", "c"], seqs)
    assert groups == [(3, [0, 1]), (2, [2, 3])]
    # a member that is entirely the common prefix keeps its last token to score
    assert reranker_module._share_groups(["a", "a"], [[1, 2, 3], [1, 2, 3, 4]]) == [(2, [0, 1])]
    assert reranker_module._share_groups(["a"], [[5]]) == [(0, [0])]


def test_share_groups_do_not_trust_string_boundaries(real_reranker_dir: Path) -> None:
    """BPE can merge the query's end with the document's start: only tokens are compared."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(real_reranker_dir / "tokenizer.json"))
    a = tok.encode("<Query>: abc\n<Document>: def", add_special_tokens=False).ids
    b = tok.encode("<Query>: abc\n<Document>:\ndef", add_special_tokens=False).ids
    ((shared, _),) = reranker_module._share_groups(["q", "q"], [a, b])
    assert a[:shared] == b[:shared] and a[shared] != b[shared]


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_sorted_budgeted_embedding_batches_equal_batch_size_one(
    request: pytest.FixtureRequest, which: str
) -> None:
    folder = request.getfixturevalue(
        "tiny_embedding_dir" if which == "tiny" else "real_embedding_dir"
    )
    texts = DOCS + QUERIES
    one = Embedder(str(folder), device="cpu", batch_size=1).embed_documents(texts)
    batched = Embedder(str(folder), device="cpu", batch_size=32).embed_documents(texts)
    budget = Embedder(str(folder), device="cpu", max_batch_tokens=40).embed_documents(texts)
    assert np.abs(one - batched).max() <= 1e-5
    assert np.abs(one - budget).max() <= 1e-5


def test_lean_forward_equals_transformers(tiny_embedding_dir: Path) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    assert _forward.supports(model)
    seqs = [[5, 6, 7, 8, 9, 10, 11], [12], [13, 14, 15]]
    with torch.inference_mode():
        ids, lengths = right_pad(seqs, 0, torch.device("cpu"))
        got = _forward.last_hidden(model, ids, lengths)
        ref = torch.stack(
            [model(input_ids=torch.tensor([s])).last_hidden_state[0, -1] for s in seqs]
        )
        assert (got - ref).abs().max().item() <= 1e-5
        past = _forward.prefix_kv(model, [1, 2, 3], torch.device("cpu"))
        got = _forward.last_hidden(model, ids, lengths, past)
        ref = torch.stack(
            [model(input_ids=torch.tensor([[1, 2, 3, *s]])).last_hidden_state[0, -1] for s in seqs]
        )
        assert (got - ref).abs().max().item() <= 1e-5


INT8_COSINE_FLOOR = 0.98  # documented floor on the tiny models (0.6B measured: >= 0.998)


def test_int8_embeddings_stay_above_fidelity_floor(tiny_embedding_dir: Path) -> None:
    pytest.importorskip("torchao")
    texts = DOCS + QUERIES
    exact = Embedder(str(tiny_embedding_dir), device="cpu").embed_documents(texts)
    int8 = Embedder(str(tiny_embedding_dir), device="cpu", quantize="int8")
    approx = int8.embed_documents(texts)
    cosine = (exact * approx).sum(axis=1)
    assert cosine.min() >= INT8_COSINE_FLOOR
    assert np.abs(exact - approx).max() > 0  # it really is a different (quantized) model


def test_int8_rerank_keeps_the_order(tiny_reranker_dir: Path) -> None:
    pytest.importorskip("torchao")
    exact = Reranker(str(tiny_reranker_dir), device="cpu").score(QUERIES[0], DOCS)
    approx = Reranker(str(tiny_reranker_dir), device="cpu", quantize="int8").score(QUERIES[0], DOCS)
    assert np.abs(np.array(exact) - np.array(approx)).max() <= 0.05  # tiny-model floor
    assert int(np.argmax(exact)) == int(np.argmax(approx))


@pytest.mark.parametrize("fast", [True, False])
def test_int8_warns_where_the_cpu_makes_it_slower(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fast: bool
) -> None:
    pytest.importorskip("torchao")
    from qwen3_rag import loading

    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: fast)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert loading.fast_int8_cpu() is fast
    with caplog.at_level("WARNING", logger="qwen3_rag.loading"):
        loading.quantize_int8(torch.nn.Sequential(torch.nn.Linear(32, 16)))
    warned = [r for r in caplog.records if "VNNI" in r.getMessage()]
    assert len(warned) == (0 if fast else 1)


def test_quantize_is_validated_and_part_of_the_cache_key(tiny_embedding_dir: Path) -> None:
    with pytest.raises(ValueError, match="quantize"):
        Embedder(str(tiny_embedding_dir), device="cpu", quantize="int4")
    with pytest.raises(ValueError, match="float32"):
        Reranker(str(tiny_embedding_dir), device="cpu", dtype="bfloat16", quantize="int8")
    assert Embedder(str(tiny_embedding_dir), device="cpu", quantize="INT8").quantize == "int8"


def test_padding_bound_splits_mixed_lengths_and_keeps_every_item() -> None:
    from qwen3_rag.batching import plan_batches

    lengths = [300, 280, 40, 35, 30, 300, 20, 10]
    loose = plan_batches(lengths, 32, 16384)
    tight = plan_batches(lengths, 32, 16384, max_padding=0.15, min_batch_tokens=64)
    assert len(loose) == 1 and len(tight) > 1
    assert sorted(i for b in tight for i in b) == list(range(len(lengths)))
    padded = sum(max(lengths[i] for i in b) * len(b) for b in tight)
    assert padded < 0.6 * max(lengths) * len(lengths)


def test_batches_are_cut_for_padding_only_where_padding_costs() -> None:
    from qwen3_rag.batching import MAX_PADDING

    cpu = torch.device("cpu")
    assert _forward.padding_limit(True, cpu) is None  # per-sequence attention: no pad computed
    assert _forward.padding_limit(False, cpu) == MAX_PADDING  # transformers' forward pads
    assert _forward.padding_limit(True, torch.device("cuda")) == MAX_PADDING  # padded grid
