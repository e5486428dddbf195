"""Splits by passage, the BEIR folder, and hard-negative mining on hand-made vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qwen3_rag.adapt.corpus import Passage, chunk_corpus
from qwen3_rag.adapt.data import (
    MIN_PAIRS,
    Triplet,
    read_triplets,
    split_by_passage,
    write_beir,
    write_triplets,
)
from qwen3_rag.adapt.filtering import apply_filters
from qwen3_rag.adapt.mine import mine_negatives
from qwen3_rag.evaluation import load_beir
from qwen3_rag.loading import ModelSource, load_fast_tokenizer


def test_split_by_passage_is_stable_and_disjoint() -> None:
    ids = [f"p{i}" for i in range(50)]
    split = split_by_passage(ids, test=0.2, dev=0.1, seed=7)
    assert [list(split.values()).count(s) for s in ("train", "dev", "test")] == [35, 5, 10]
    # independent of order and of the other passages: a passage keeps its split
    assert split_by_passage(list(reversed(ids)), test=0.2, dev=0.1, seed=7) == split
    assert split_by_passage(ids, seed=8) != split
    assert split_by_passage(ids + ids[:3], test=0.2, dev=0.1, seed=7) == split  # duplicates


def test_too_small_a_corpus_names_the_minimum() -> None:
    with pytest.raises(ValueError, match=f"7 passages .* at least {MIN_PAIRS}"):
        split_by_passage([f"p{i}" for i in range(7)])
    with pytest.raises(ValueError, match="fractions"):
        split_by_passage([f"p{i}" for i in range(20)], test=0.6, dev=0.5)


def test_beir_folder_reads_back_with_the_evaluation(tmp_path: Path) -> None:
    passages = [Passage(f"f.txt#{i}", f"text {i}", "f.txt") for i in range(4)]
    qrels = {"train": {"q0": "f.txt#0", "q1": "f.txt#1"}, "dev": {}, "test": {"q2": "f.txt#2"}}
    write_beir(tmp_path, passages, {"q0": "a", "q1": "b", "q2": "c"}, qrels)
    data = load_beir(tmp_path, split="test")
    assert data.corpus == {p.id: p.text for p in passages}  # every passage is a candidate
    assert dict(data.queries) == {"q2": "c"} and data.qrels == {"q2": {"f.txt#2": 1}}
    assert load_beir(tmp_path, split="train").qrels == {"q0": {"f.txt#0": 1}, "q1": {"f.txt#1": 1}}
    t = Triplet("train", "q0", "a", "f.txt#0", "text 0", ("f.txt#3",), ("text 3",), 0.9, (0.4,))
    write_triplets(tmp_path / "triplets.jsonl", [t])
    assert read_triplets(tmp_path / "triplets.jsonl") == [t]
    assert read_triplets(tmp_path / "triplets.jsonl", "dev") == []


def test_chunking_is_the_indexers(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    """The passages are the chunks ``qwen3-rag index`` stores: same ids, same texts."""
    from qwen3_rag.indexing import index_paths
    from qwen3_rag.store import DEFAULT_COLLECTION, find_collection, open_client

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("First paragraph here.\n\nSecond one, a bit longer. " * 8)
    (docs / "sub" / "b.md").write_text("# Title\n\nA short note.\n")
    (docs / ".hidden").mkdir()
    (docs / ".hidden" / "x.txt").write_text("skipped")
    (docs / "b.bin").write_bytes(b"\x00\x01binary")
    tok = load_fast_tokenizer(ModelSource(str(tiny_embedding_dir)))
    got = chunk_corpus([docs], tok, chunk_size=40, chunk_overlap=8)
    index_paths(
        [docs], db=tmp_path / "db", model=str(tiny_embedding_dir), chunk_size=40, chunk_overlap=8
    )
    stored = find_collection(open_client(tmp_path / "db"), DEFAULT_COLLECTION).get()
    want = dict(zip(stored["ids"], stored["documents"], strict=True))
    assert {p.id: p.text for p in got} == want and len(got) > 2
    assert {p.source for p in got} == {str(docs / "a.txt"), str(docs / "sub" / "b.md")}
    with pytest.raises(ValueError, match="does not exist"):
        chunk_corpus([tmp_path / "nope"], tok)


def test_filters_mark_every_pair_and_count_removals() -> None:
    pairs = [{"query": str(i)} for i in range(5)]
    report = apply_filters(
        pairs,
        [0.9, 0.5, 0.8, 0.95, 0.75],
        [0.5, 0.5, 0.01, 0.999, 0.6],
        threshold=0.7,
        band=(0.05, 0.99),
    )
    assert [p["kept"] for p in pairs] == [True, False, False, False, True]
    assert [p["removed_by"] for p in pairs] == [
        None,
        "embedding",
        "rerank_low",
        "rerank_high",
        None,
    ]
    assert (
        report.removed == {"embedding": 1, "rerank_low": 1, "rerank_high": 1} and report.kept == 2
    )
    assert pairs[1]["embedding_score"] == 0.5 and pairs[2]["rerank_score"] == 0.01
    with pytest.raises(ValueError, match="band"):
        apply_filters(pairs, [0.1] * 5, None, band=(0.9, 0.1))


def unit(*rows: list[float]) -> np.ndarray:
    m = np.array(rows, dtype=np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_mining_skips_the_positive_and_near_positives() -> None:
    pool_ids = ["pos", "near", "dup", "n1", "n2", "n3", "far"]
    pool = unit(
        [1, 0, 0],
        [0.99, 0.14, 0],
        [1, 0, 0],
        [0.8, 0.6, 0],
        [0.6, 0.8, 0],
        [0.3, 0.95, 0],
        [0, 0, 1],
    )
    q = unit([1, 0.05, 0])
    texts = {p: p for p in pool_ids} | {"dup": "pos"}  # "dup" has the positive's text
    pos_score = float(q[0] @ pool[0])
    negs, report = mine_negatives(
        q, ["pos"], [pos_score], pool_ids, pool, k=3, margin=0.05, texts=texts
    )
    assert [n for n, _, _ in negs[0]] == ["n1", "n2", "n3"]  # best first, below the margin
    assert report.skipped_margin == 1  # "near" scores within 0.05 of the positive
    assert negs[0][0][1] == pytest.approx(float(q[0] @ pool[3]))
    # a pool too small to mine k from is filled at random (never with the positive or its
    # duplicate), and counted
    negs, report = mine_negatives(
        q, ["pos"], [pos_score], pool_ids[:5], pool[:5], k=3, margin=0.05, texts=texts
    )
    assert [n for n, _, _ in negs[0][:2]] == ["n1", "n2"] and negs[0][2][0] == "near"
    assert report.filled_random == 1
    with pytest.raises(ValueError, match="at least"):
        mine_negatives(q, ["pos"], [pos_score], pool_ids[:2], pool[:2], k=3)


class FakeReranker:
    """Scores a document 0.9 when its id says it is relevant, else 0.1."""

    def score(self, query: str, documents: list[str]) -> list[float]:
        return [0.9 if d.startswith("relevant") else 0.1 for d in documents]


def test_mining_asks_the_reranker_about_candidates() -> None:
    pool_ids = ["pos", "a", "b", "c", "d"]
    pool = unit([1, 0], [0.8, 0.6], [0.7, 0.71], [0.6, 0.8], [0.5, 0.86])
    texts = {"pos": "pos", "a": "relevant a", "b": "b", "c": "relevant c", "d": "d"}
    q = pool[:1]
    negs, report = mine_negatives(
        q,
        ["pos"],
        [1.0],
        pool_ids,
        pool,
        k=2,
        reranker=FakeReranker(),
        queries=["q"],
        texts=texts,  # type: ignore[arg-type]
    )
    assert [n for n, _, _ in negs[0]] == ["b", "d"] and [r for _, _, r in negs[0]] == [0.1, 0.1]
    assert report.skipped_reranker == 2
