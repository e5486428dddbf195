"""qwen3_rag.evaluation: metrics, exact search, MRL, cache, reranking, Chroma, bad input.

Every number is checked against an independent computation written here: metrics by hand,
rankings by brute force over ``Embedder`` vectors, p-values by enumerating sign flips.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, evaluation
from qwen3_rag.evaluation import (
    Configuration,
    Dataset,
    VectorCache,
    evaluate,
    evaluate_vectors,
    load_beir,
    paired_test,
    score_run,
    search,
    truncate,
    write_run,
)
from tests.beir import CORPUS, QRELS, QUERIES, joined, write_beir
from tests.models import build_model

pytest.importorskip("pytrec_eval")

# -- metrics by hand --------------------------------------------------------------------------

HAND_QRELS = {
    "q1": {"d1": 2, "d3": 1, "d6": 1},  # three relevant, graded; d6 is never retrieved
    "q2": {"d2": 1},  # its only relevant document is not retrieved
    "q3": {"d5": 1},  # absent from the run altogether
    "q4": {"a": 1},  # a tie: see below
}
HAND_RUN = {
    "q1": [("d2", 0.9), ("d1", 0.8), ("d4", 0.7), ("d3", 0.6), ("d5", 0.5)],
    "q2": [("d1", 0.9), ("d3", 0.8), ("d5", 0.7)],
    # Equal scores: trec_eval puts the higher document id first, so "b" ranks 1, "a" ranks 2.
    "q4": [("a", 0.5), ("b", 0.5)],
}


def test_metrics_equal_values_computed_by_hand() -> None:
    values = score_run(
        HAND_QRELS,
        HAND_RUN,
        ["nDCG@3", "nDCG@5", "Recall@3", "Recall@5", "MRR@10", "MRR@1", "MAP@5", "P@5"],
    )
    log2 = math.log2
    # q1, ranking d2 d1 d4 d3 d5 with gains 0 2 0 1 0 (nDCG's gain is the grade itself):
    #   DCG@3 = 2/log2(3);  DCG@5 = 2/log2(3) + 1/log2(5)
    #   ideal gains 2 1 1: IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.6309 + 0.5
    idcg = 2 / log2(2) + 1 / log2(3) + 1 / log2(4)
    expected_q1 = {
        "nDCG@3": (2 / log2(3)) / idcg,  # 0.40303
        "nDCG@5": (2 / log2(3) + 1 / log2(5)) / idcg,  # 0.54059
        "Recall@3": 1 / 3,  # d1 of {d1, d3, d6}
        "Recall@5": 2 / 3,  # d1, d3
        "MRR@10": 1 / 2,  # first relevant at rank 2
        "MRR@1": 0.0,  # rank 1 is d2, not relevant
        "MAP@5": (1 / 2 + 2 / 4) / 3,  # P@2 at d1, P@4 at d3, over 3 relevant
        "P@5": 2 / 5,
    }
    for name, value in expected_q1.items():
        assert values[name]["q1"] == pytest.approx(value, abs=1e-9), name
    for name in expected_q1:
        assert values[name]["q2"] == 0.0  # nothing relevant retrieved
        assert values[name]["q3"] == 0.0  # no run for q3: scores 0, like trec_eval -c
    # q4: "b" (not relevant) ranks before "a" on the tie, so a is at rank 2.
    assert values["MRR@10"]["q4"] == pytest.approx(1 / 2)
    assert values["MRR@1"]["q4"] == 0.0
    assert values["Recall@5"]["q4"] == 1.0
    assert values["nDCG@5"]["q4"] == pytest.approx((1 / log2(3)) / 1.0)


def test_metric_names_and_cutoffs() -> None:
    assert evaluation.parse_metric(" ndcg @ 10 ").name == "nDCG@10"
    assert evaluation.parse_metric("precision@5").name == "P@5"
    for bad in ("ndcg", "ndcg@0", "bleu@10", "recall@x"):
        with pytest.raises(ValueError, match="is not one of nDCG@k"):
            evaluation.parse_metric(bad)


def test_run_file_gives_trec_eval_the_same_numbers(tmp_path: Path) -> None:
    import pytrec_eval

    path = write_run(tmp_path / "runs" / "hand.trec", HAND_RUN, "my run")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 d2 1 0.9 my_run"
    assert lines[-1] == "q4 Q0 b 2 0.5 my_run"
    with path.open() as f:
        parsed = pytrec_eval.parse_run(f)
    again = score_run(HAND_QRELS, {q: list(d.items()) for q, d in parsed.items()}, ["MRR@10"])
    assert again == score_run(HAND_QRELS, HAND_RUN, ["MRR@10"])
    assert not list((tmp_path / "runs").glob(".*"))  # no temporary file left


# -- significance -----------------------------------------------------------------------------


def test_permutation_test_equals_enumeration_of_sign_flips() -> None:
    a = [0.2, 0.5, 0.1, 0.9, 0.4, 0.3, 0.8, 0.6]
    b = [0.3, 0.9, 0.1, 1.0, 0.2, 0.7, 0.8, 0.9]
    d = [y - x for x, y in zip(a, b, strict=True)]
    observed = abs(sum(d))
    flips = list(itertools.product([1, -1], repeat=len(d)))
    extreme = sum(
        1
        for s in flips
        if abs(sum(si * di for si, di in zip(s, d, strict=True))) >= observed - 1e-12
    )
    assert paired_test(a, b) == pytest.approx(extreme / len(flips))  # 2**8 = 256 <= resamples
    assert paired_test(a, b) == paired_test(b, a)
    # The t-test: t = mean(d) / (sd(d) / sqrt(n)), two-sided, n - 1 degrees of freedom.
    from scipy.stats import t as student

    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1))
    expected = 2 * student.sf(abs(mean / (sd / math.sqrt(n))), n - 1)
    assert paired_test(a, b, method="t-test") == pytest.approx(expected)
    assert paired_test(a, a, method="t-test") == 1.0
    with pytest.raises(ValueError, match="equally long"):
        paired_test(a, b[:-1])
    with pytest.raises(ValueError, match="method"):
        paired_test(a, b, method="wilcoxon")  # type: ignore[arg-type]


def test_randomised_permutation_test_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(40), rng.random(40) + 0.1  # 2**40 patterns: sampled
    p = paired_test(a, b)
    assert p == paired_test(a, b)
    assert abs(p - paired_test(a, b, method="t-test")) < 0.05


# -- exact search -----------------------------------------------------------------------------


def brute_force(scores: np.ndarray, k: int) -> list[list[int]]:
    """Every document scored, sorted by (score descending, index ascending), first k."""
    n = scores.shape[1]
    return [sorted(range(n), key=lambda i: (-row[i], i))[:k] for row in scores.tolist()]


@pytest.mark.parametrize("block_size", [1, 5, 16, 97, 500])
@pytest.mark.parametrize("k", [1, 7, 60, 150])
def test_blocked_search_equals_brute_force_with_ties(
    block_size: int, k: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small integer vectors: every dot product is exact in float32, whatever the summation
    # order, and many of them tie (also across blocks and at the cut).
    rng = np.random.default_rng(0)
    corpus = rng.integers(-2, 3, size=(97, 6)).astype(np.float32)
    corpus[[40, 41, 90]] = corpus[3]  # duplicates: equal scores for every query
    queries = rng.integers(-2, 3, size=(11, 6)).astype(np.float32)
    monkeypatch.setattr("qwen3_rag.evaluation.exact.QUERY_BLOCK", 4)  # several query blocks too
    scores, index = search(queries, corpus, k, block_size=block_size)
    full = queries.astype(np.float64) @ corpus.T.astype(np.float64)
    expected = brute_force(full, k)
    assert index.tolist() == expected
    assert scores.tolist() == [[full[q, i] for i in row] for q, row in enumerate(expected)]


@pytest.mark.parametrize("block_size", [1, 5, 16, 200])
def test_evaluate_vectors_breaks_ties_by_id_across_blocks(
    block_size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(2)
    corpus = rng.integers(-2, 3, size=(97, 6)).astype(np.float32)
    corpus[[10, 60, 61]] = corpus[30]
    queries = rng.integers(-2, 3, size=(9, 6)).astype(np.float32)
    ids = [f"doc-{x}" for x in rng.permutation(1000)[:97]]  # ids in no particular order
    qids = [f"q{i}" for i in range(9)]
    monkeypatch.setattr("qwen3_rag.evaluation.exact.QUERY_BLOCK", 4)
    run, _ = evaluate_vectors(
        queries, corpus, qids, ids, {q: {ids[0]: 1} for q in qids}, metrics=["MRR@10"], k=25,
        block_size=block_size,
    )  # fmt: skip
    full = queries.astype(np.float64) @ corpus.T.astype(np.float64)
    for q, row in zip(qids, full.tolist(), strict=True):
        expected = trec_ranking(dict(zip(ids, row, strict=True)), 25)
        assert [d for d, _ in run[q]] == expected


def test_search_with_matryoshka_truncation() -> None:
    rng = np.random.default_rng(1)
    corpus = rng.standard_normal((50, 64)).astype(np.float32)
    queries = rng.standard_normal((5, 64)).astype(np.float32)
    scores, index = search(queries, corpus, 10, dimensions=32, block_size=7)
    cut_q = queries[:, :32] / np.linalg.norm(queries[:, :32], axis=1, keepdims=True)
    cut_d = corpus[:, :32] / np.linalg.norm(corpus[:, :32], axis=1, keepdims=True)
    full = cut_q.astype(np.float64) @ cut_d.T.astype(np.float64)
    assert index.tolist() == brute_force(full, 10)
    np.testing.assert_allclose(scores, np.take_along_axis(full, index, 1), atol=1e-6)


def test_search_rejects_bad_input() -> None:
    v = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match="equal widths"):
        search(v, v[:, :3], 2)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        search(v, v, 0)
    with pytest.raises(ValueError, match="block_size"):
        search(v, v, 2, block_size=0)
    bad = v.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        search(v, bad, 2)
    with pytest.raises(ValueError, match="NaN"):
        search(bad, v, 2)
    _, index = search(v, v, 10)  # k beyond the corpus: all of it
    assert index.shape == (4, 4)


def test_evaluate_vectors_orders_ties_like_trec_eval() -> None:
    # Three identical documents: every query ties on them; trec_eval's order is "c", "b", "a".
    docs = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    run, values = evaluate_vectors(
        np.array([[1, 0]], dtype=np.float32),
        docs,
        ["q"],
        ["a", "b", "c", "z"],
        {"q": {"a": 1}},
        metrics=["MRR@10"],
        k=2,
    )
    assert [d for d, _ in run["q"]] == ["c", "b"]
    assert values["MRR@10"]["q"] == 0.0  # "a" was cut at k=2


# -- data -------------------------------------------------------------------------------------


def test_load_beir_joins_title_and_text_and_keeps_grades(tmp_path: Path) -> None:
    data = load_beir(write_beir(tmp_path / "data"))
    assert data.corpus["geo-1"] == "GEO Paris is the capital of France and its largest city."
    assert data.corpus["geo-0"] == CORPUS["geo-0"]["text"]  # empty title: text alone
    assert set(data.queries) == set(QRELS)  # the unjudged query is skipped
    assert data.skipped_queries == 1 and data.ignored_qrels == 0
    assert data.qrels["q-capital"] == {"geo-0": 2, "geo-1": 1, "geo-2": 1}
    assert data.split == "test"
    same = Dataset.from_dicts(CORPUS, QUERIES, QRELS)
    assert same.corpus == data.corpus and same.qrels == data.qrels


def test_bad_folders_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere: no such folder"):
        load_beir(tmp_path / "nowhere")
    for name in ("corpus.jsonl", "queries.jsonl"):
        folder = write_beir(tmp_path / name)
        (folder / name).unlink()
        with pytest.raises(FileNotFoundError, match=f"{name}: no such file"):
            load_beir(folder)
    folder = write_beir(tmp_path / "splits", split="dev")
    with pytest.raises(FileNotFoundError, match=r"test\.tsv: no such file .*this folder has: dev"):
        load_beir(folder)
    assert len(load_beir(folder, split="dev").queries) == len(QRELS)


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "data")
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[2] = '{"_id": "broken", "text": '
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"corpus\.jsonl, line 3: not valid JSON"):
        load_beir(folder)

    folder = write_beir(tmp_path / "data2")
    with (folder / "queries.jsonl").open("a") as f:
        f.write('{"text": "no id"}\n')
    with pytest.raises(ValueError, match=r"queries\.jsonl, line 10: needs an '_id'"):
        load_beir(folder)

    folder = write_beir(tmp_path / "data3")
    with (folder / "qrels" / "test.tsv").open("a") as f:
        f.write("q-git\tcode-1\thigh\n")
    with pytest.raises(ValueError, match=r"test\.tsv, line 16: score 'high' is not an integer"):
        load_beir(folder)
    with (folder / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\nq-git code-1\n")
    with pytest.raises(ValueError, match=r"test\.tsv, line 2: expected 3 tab-separated"):
        load_beir(folder)


def test_unknown_ids_in_qrels_are_counted_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    qrels = {**QRELS, "q-git": {"code-2": 2, "nope-1": 1, "nope-2": 1}, "ghost": {"geo-0": 1}}
    with caplog.at_level(logging.INFO, logger="qwen3_rag.evaluation"):
        data = load_beir(write_beir(tmp_path / "data", qrels=qrels))
    assert "3 qrels rows ignored: they name 2 unknown documents and 1 unknown queries" in (
        caplog.text
    )
    assert "1 of 9 queries have no relevant document in split 'test': skipped" in caplog.text
    assert data.ignored_qrels == 3 and data.skipped_queries == 1
    assert data.qrels["q-git"] == {"code-2": 2}
    assert "ghost" not in data.qrels


def test_empty_corpus_and_no_judged_query_are_clear_errors(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "data")
    (folder / "corpus.jsonl").write_text("")
    with pytest.raises(ValueError, match="the corpus is empty"):
        load_beir(folder)
    with pytest.raises(ValueError, match="the corpus is empty"):
        Dataset.from_dicts({}, QUERIES, QRELS)
    with pytest.raises(ValueError, match="no query has a relevant document"):
        Dataset.from_dicts(CORPUS, QUERIES, {"q-git": {"code-2": 0}})
    with pytest.raises(TypeError, match=r"corpus\['x'\] must be a string or a"):
        Dataset.from_dicts({"x": 3}, QUERIES, QRELS)


# -- the tiny models --------------------------------------------------------------------------

METRICS = ["nDCG@10", "Recall@5", "MRR@10"]


#: Two copies of geo-0's text under other ids: exact ties, broken as trec_eval breaks them
#: ("geo-0" > "dup-b" > "dup-a" in reverse byte order).
DUPLICATES = {"dup-a": CORPUS["geo-0"]["text"], "dup-b": CORPUS["geo-0"]["text"]}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return Dataset.from_dicts({**CORPUS, **DUPLICATES}, QUERIES, QRELS, name="tiny")


def embed_documents(emb: Embedder, texts: list[str]) -> np.ndarray:
    """Document vectors, each distinct text embedded once (equal texts: equal vectors)."""
    unique = list(dict.fromkeys(texts))
    vectors = dict(zip(unique, emb.embed_documents(unique), strict=True))
    return np.stack([vectors[t] for t in texts])


def trec_ranking(scores: dict[str, float], k: int) -> list[str]:
    """Ids by score descending, ties by id descending (trec_eval), written out here."""
    by_id = sorted(scores, reverse=True)
    return sorted(by_id, key=lambda d: -scores[d])[:k]


def exact_dot(a: np.ndarray, b: np.ndarray) -> float:
    """The dot product, correctly rounded (float32 products are exact in float64; fsum)."""
    return math.fsum(x * y for x, y in zip(a.tolist(), b.tolist(), strict=True))


def literal_metrics(ranking: list[str], qrels: dict[str, int]) -> dict[str, float]:
    """nDCG@10 (linear gains), Recall@5 and MRR@10 from their textbook definitions."""
    dcg = sum(qrels.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranking[:10]))
    ideal = sorted(qrels.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    relevant = {d for d, g in qrels.items() if g > 0}
    first = next((r for r, d in enumerate(ranking[:10]) if d in relevant), None)
    return {
        "nDCG@10": dcg / idcg,
        "Recall@5": len(relevant & set(ranking[:5])) / len(relevant),
        "MRR@10": 0.0 if first is None else 1 / (first + 1),
    }


def check_run_against_vectors(
    result: evaluation.ConfigurationResult,
    data: Dataset,
    query_vectors: np.ndarray,
    doc_vectors: np.ndarray,
    k: int,
) -> None:
    doc_ids = list(data.corpus)
    for qid, qv in zip(data.queries, query_vectors, strict=True):
        scores = {d: exact_dot(v, qv) for d, v in zip(doc_ids, doc_vectors, strict=True)}
        expected = trec_ranking(scores, k)
        got = result.run[qid]
        assert [d for d, _ in got] == expected, qid
        np.testing.assert_allclose([s for _, s in got], [scores[d] for d in expected], atol=1e-5)
        literal = literal_metrics(expected, dict(data.qrels[qid]))
        for name, value in literal.items():
            assert result.per_query[name][qid] == pytest.approx(value, abs=1e-9), (qid, name)
    for name in METRICS:
        mean = sum(result.per_query[name].values()) / len(data.queries)
        assert result.metrics[name] == pytest.approx(mean)


def test_retrieval_equals_brute_force_over_embedder_vectors(
    tiny_embedding_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    model = str(tiny_embedding_dir)
    configs = [
        Configuration(instruction="web_search"),
        Configuration(instruction="question_answering", dimensions=32),
        Configuration(instruction=""),  # raw queries
        Configuration(instruction="semantic_similarity"),  # symmetric: documents instructed
    ]
    report = evaluate(data, configs, embedder=model, metrics=METRICS, k=10, cache=tmp_path / "c")
    assert [r.name for r in report.results] == [
        "web_search",
        "question_answering d=32",
        "no-instruction",
        "semantic_similarity",
    ]
    queries = list(data.queries.values())
    documents = list(data.corpus.values())
    full = Embedder(model)
    full_docs = embed_documents(full, documents)
    check_run_against_vectors(
        report.results[0],
        data,
        full.embed_queries(queries, instruction="web_search"),
        full_docs,
        10,
    )
    ranked = [d for d, _ in report.results[0].run["q-capital"]]
    assert ranked.index("geo-0") < ranked.index("dup-b") < ranked.index("dup-a")  # tied
    small = Embedder(model, dimensions=32, instruction="question_answering")
    check_run_against_vectors(
        report.results[1], data, small.embed_queries(queries), embed_documents(small, documents), 10
    )
    check_run_against_vectors(report.results[2], data, full.embed_documents(queries), full_docs, 10)
    sym = Embedder(model, instruction="semantic_similarity")
    sym_docs = embed_documents(sym, documents)
    assert not np.allclose(sym_docs, full_docs, atol=1e-4)
    check_run_against_vectors(report.results[3], data, sym.embed_queries(queries), sym_docs, 10)
    assert report.results[3].settings["document_instruction"] == sym.instruction
    assert report.results[0].settings["document_instruction"] is None

    # Significance against the first row, per metric, from the per-query values.
    for r in report.results[1:]:
        for name in METRICS:
            qids = list(data.queries)
            expected = paired_test(
                [report.results[0].per_query[name][q] for q in qids],
                [r.per_query[name][q] for q in qids],
            )
            assert r.p_values[name] == expected
    assert report.results[0].p_values == {}


def test_matryoshka_vectors_equal_the_embedders(tiny_embedding_dir: Path) -> None:
    texts = [joined(doc) for doc in CORPUS.values()]
    full = Embedder(str(tiny_embedding_dir)).embed_documents(texts)
    for dims in (32, 48, 64):
        direct = Embedder(str(tiny_embedding_dir), dimensions=dims).embed_documents(texts)
        derived = truncate(full, dims)
        assert derived.shape == direct.shape
        assert float(np.abs(derived - direct).max()) <= 1e-6


def test_embedder_with_dimensions_and_bad_sizes(
    tiny_embedding_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    small = Embedder(str(tiny_embedding_dir), dimensions=32)
    report = evaluate(data, embedder=small, metrics=METRICS, k=10, cache=False)
    assert report.results[0].name == "web_search d=32"
    assert report.results[0].settings["dimensions"] == 32
    for dims in (16, 65):
        with pytest.raises(ValueError, match=rf"dimensions={dims} is out of range .* <= 64"):
            evaluate(data, [Configuration(dimensions=dims)], embedder=small, cache=False)


# -- the vector cache -------------------------------------------------------------------------


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """Every Embedder.embed_queries / embed_documents call: (method, texts)."""
    calls: list[tuple[str, list[str]]] = []
    for name in ("embed_queries", "embed_documents"):
        original = getattr(Embedder, name)

        def wrapper(
            self: Embedder, texts: Any, _o: Callable[..., Any] = original, _n: str = name, **kw: Any
        ) -> Any:
            calls.append((_n, list(texts)))
            return _o(self, texts, **kw)

        monkeypatch.setattr(Embedder, name, wrapper)
    return calls


def test_cache_hit_then_only_a_changed_document_is_embedded(
    tiny_embedding_dir: Path,
    tmp_path: Path,
    count_calls: list[tuple[str, list[str]]],
) -> None:
    folder = tmp_path / "cache"
    configs = [Configuration(instruction="web_search"), Configuration(dimensions=32)]
    data = Dataset.from_dicts(CORPUS, QUERIES, QRELS)

    def run(d: Dataset) -> evaluation.Evaluation:
        return evaluate(
            d, configs, embedder=str(tiny_embedding_dir), cache=folder, k=10, metrics=METRICS
        )

    first = run(data)
    documents = [c for c in count_calls if c[0] == "embed_documents"]
    assert len(documents) == 1 and len(documents[0][1]) == len(CORPUS)  # once, full size
    assert [c[0] for c in count_calls].count("embed_queries") == 1  # shared by both configs
    count_calls.clear()

    second = run(data)
    assert count_calls == []  # no model call at all
    assert [r.run for r in second.results] == [r.run for r in first.results]

    changed = dict(CORPUS)
    changed["sci-1"] = {"title": "", "text": "Photosynthesis makes sugar from light."}
    run(Dataset.from_dicts(changed, QUERIES, QRELS))
    assert count_calls == [("embed_documents", ["Photosynthesis makes sugar from light."])]

    # A different dtype is another model setting: nothing is reused.
    count_calls.clear()
    evaluate(
        data,
        configs,
        embedder=Embedder(str(tiny_embedding_dir), dtype="bfloat16"),
        cache=folder,
        k=10,
        metrics=METRICS,
    )
    assert sum(len(t) for m, t in count_calls if m == "embed_documents") == len(CORPUS)


def test_cache_follows_the_weights_not_the_path(
    tiny_embedding_dir: Path,
    tiny_tokenizer_dir: Path,
    tmp_path: Path,
    count_calls: list[tuple[str, list[str]]],
) -> None:
    """New weights under the same path are another model; a copied folder is the same one."""
    import shutil

    from tests.models import build_model

    folder = Path(shutil.copytree(tiny_embedding_dir, tmp_path / "model"))
    data = Dataset.from_dicts(CORPUS, QUERIES, QRELS)

    def run(model: Path) -> evaluation.Evaluation:
        return evaluate(data, embedder=str(model), cache=tmp_path / "cache", metrics=METRICS)

    first = run(folder)
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    count_calls.clear()
    assert [r.run for r in run(copy).results] == [r.run for r in first.results]
    assert count_calls == []  # the same weights elsewhere: every vector from the cache

    retrained = build_model(tmp_path / "retrained", tiny_tokenizer_dir, kind="embedding", seed=6)
    shutil.copy(retrained / "model.safetensors", folder / "model.safetensors")
    count_calls.clear()
    after = run(folder)
    assert sum(len(t) for m, t in count_calls if m == "embed_documents") == len(CORPUS)
    assert [r.run for r in after.results] != [r.run for r in first.results]


def test_cache_survives_interrupted_and_corrupt_shards(
    tiny_embedding_dir: Path,
    tmp_path: Path,
    count_calls: list[tuple[str, list[str]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = VectorCache(tmp_path / "cache")
    emb = Embedder(str(tiny_embedding_dir))
    data = Dataset.from_dicts(CORPUS, QUERIES, QRELS)
    evaluate(data, embedder=emb, cache=cache, k=10, metrics=METRICS)
    folder = cache.folder(emb)
    shards = sorted(folder.glob("*.keys.npy"))
    assert len(shards) == 2  # documents, queries
    # An interruption between the two renames leaves vectors without keys, plus temp files.
    (folder / "dead.vectors.npy").write_bytes(b"half")
    (folder / ".x.keys.npy.tmp").write_bytes(b"half")
    # A shard damaged on disk is skipped with a warning and its texts embedded again.
    docs_shard = next(s for s in shards if len(np.load(s)) == len(CORPUS))
    docs_shard.write_bytes(b"garbage")
    count_calls.clear()
    with caplog.at_level(logging.WARNING, logger="qwen3_rag.evaluation"):
        again = evaluate(data, embedder=emb, cache=cache, k=10, metrics=METRICS)
    assert "ignoring unreadable cache shard" in caplog.text
    assert [m for m, _ in count_calls] == ["embed_documents"]
    fresh = evaluate(data, embedder=emb, cache=False, k=10, metrics=METRICS)
    assert again.results[0].run == fresh.results[0].run


# -- reranking --------------------------------------------------------------------------------


def test_rerank_equals_literal_and_scores_each_pair_once(
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    data: Dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scored: list[int] = []
    original = Reranker.score

    def counting(self: Reranker, query: str, docs: Any, **kw: Any) -> list[float]:
        scored.append(len(docs))
        return original(self, query, docs, **kw)

    monkeypatch.setattr(Reranker, "score", counting)
    configs = [
        Configuration(instruction="web_search"),
        Configuration(instruction="web_search", rerank=True, fetch_k=8),
        Configuration(instruction="web_search", dimensions=64, rerank=True, fetch_k=8),
    ]
    report = evaluate(
        data,
        configs,
        embedder=str(tiny_embedding_dir),
        reranker=str(tiny_reranker_dir),
        metrics=["nDCG@5", "MRR@5"],
        cache=False,
    )
    assert report.k == 5
    assert [r.name for r in report.results] == [
        "web_search",
        "web_search +rerank@8",
        "web_search d=64 +rerank@8",
    ]
    # Same candidates (64 is the full size): the third configuration reuses every score.
    assert sum(scored) == 8 * len(data.queries)
    assert report.results[1].run == report.results[2].run

    reranker = Reranker(str(tiny_reranker_dir))
    doc_ids = list(data.corpus)
    emb = Embedder(str(tiny_embedding_dir))
    qv = emb.embed_queries(list(data.queries.values()))
    dv = embed_documents(emb, list(data.corpus.values()))
    for qid, vector in zip(data.queries, qv, strict=True):
        vector_scores = {d: exact_dot(v, vector) for d, v in zip(doc_ids, dv, strict=True)}
        candidates = trec_ranking(vector_scores, 8)
        rerank_scores = dict(
            zip(
                candidates,
                original(
                    reranker,
                    data.queries[qid],
                    [data.corpus[d] for d in candidates],
                    instruction="web_search",
                ),
                strict=True,
            )
        )
        expected = trec_ranking(rerank_scores, 5)
        got = report.results[1].run[qid]
        assert [d for d, _ in got] == expected
        np.testing.assert_allclose(
            [s for _, s in got], [rerank_scores[d] for d in expected], atol=1e-6
        )


def test_fetch_k_below_k_and_other_bad_arguments(tiny_embedding_dir: Path, data: Dataset) -> None:
    model = str(tiny_embedding_dir)
    with pytest.raises(ValueError, match=r"configurations\[1\]: fetch_k=5 is smaller than k=10"):
        evaluate(
            data,
            [Configuration(), Configuration(rerank=True, fetch_k=5)],
            embedder=model,
            metrics=["nDCG@10"],
            cache=False,
        )
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        evaluate(data, embedder=model, k=0, cache=False)
    with pytest.raises(ValueError, match="not a known preset"):
        evaluate(data, [Configuration(instruction="websearch")], embedder=model, cache=False)
    with pytest.raises(ValueError, match="is not one of nDCG@k"):
        evaluate(data, embedder=model, metrics=["bleu@4"], cache=False)
    with pytest.raises(TypeError, match="must be a Configuration"):
        evaluate(data, [{"rerank": True}], embedder=model, cache=False)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="configurations is empty"):
        evaluate(data, [], embedder=model, cache=False)
    with pytest.raises(ValueError, match="id_key applies only to a Chroma collection"):
        evaluate(data, embedder=model, id_key="doc_id", cache=False)


def test_before_and_after_models_compared(
    tiny_embedding_dir: Path, tiny_tokenizer_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    other = build_model(tmp_path / "other", tiny_tokenizer_dir, kind="embedding", seed=7)
    report = evaluate(
        data,
        [Configuration(name="before"), Configuration(name="after", model=str(other))],
        embedder=str(tiny_embedding_dir),
        metrics=METRICS,
        k=10,
        cache=tmp_path / "cache",
        runs_dir=tmp_path / "runs",
    )
    emb = Embedder(str(other))
    check_run_against_vectors(
        report["after"],
        data,
        emb.embed_queries(list(data.queries.values())),
        embed_documents(emb, list(data.corpus.values())),
        10,
    )
    assert report["after"].run != report["before"].run
    compared = report.compare("before", "after", "nDCG@10")
    assert compared["delta"] == pytest.approx(
        report["after"].metrics["nDCG@10"] - report["before"].metrics["nDCG@10"]
    )
    assert compared["p_value"] == report["after"].p_values["nDCG@10"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["after.trec", "before.trec"]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one folder per model


# -- Chroma collections -----------------------------------------------------------------------


def chroma_client(path: Path) -> Any:
    chromadb = pytest.importorskip("chromadb")
    from chromadb.config import Settings

    return chromadb.PersistentClient(str(path), settings=Settings(anonymized_telemetry=False))


def test_chroma_collection_with_corpus_ids(
    tiny_embedding_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

    client = chroma_client(tmp_path / "db")
    collection = client.create_collection(
        "beir", embedding_function=Qwen3EmbeddingFunction(str(tiny_embedding_dir))
    )
    collection.add(ids=list(data.corpus), documents=list(data.corpus.values()))
    report = evaluate(data, collection=collection, metrics=METRICS, k=10, cache=False)
    exact = evaluate(data, embedder=str(tiny_embedding_dir), metrics=METRICS, k=10, cache=False)
    assert report.search == "Chroma collection 'beir' (HNSW, cosine)"
    assert report.results[0].name == "web_search"  # the collection's instruction
    for qid in data.queries:  # 16 documents: HNSW finds the exact neighbours
        got, want = report.results[0].run[qid], exact.results[0].run[qid]
        assert [d for d, _ in got] == [d for d, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    assert report.results[0].metrics == pytest.approx(exact.results[0].metrics)
    with pytest.raises(ValueError, match="collection holds 64-dimensional vectors"):
        evaluate(data, [Configuration(dimensions=32)], collection=collection, cache=False)


def test_chroma_records_mapped_through_metadata_count_once(
    tiny_embedding_dir: Path, data: Dataset, tmp_path: Path
) -> None:
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

    # Every document as two chunks "<id>#0", "<id>#1", its corpus id in metadata["doc_id"].
    chunks: dict[str, tuple[str, str]] = {}
    for did, text in data.corpus.items():
        words = text.split()
        half = len(words) // 2
        chunks[f"{did}#0"] = (did, " ".join(words[:half]))
        chunks[f"{did}#1"] = (did, " ".join(words[half:]))
    ef = Qwen3EmbeddingFunction(
        str(tiny_embedding_dir), instruction="question_answering", dimensions=32
    )
    collection = chroma_client(tmp_path / "db").create_collection("chunks", embedding_function=ef)
    collection.add(
        ids=list(chunks),
        documents=[t for _, t in chunks.values()],
        metadatas=[{"doc_id": d, "chunk": int(c[-1])} for c, (d, _) in chunks.items()],
    )
    with pytest.raises(ValueError, match="no record of collection 'chunks' maps to a corpus id"):
        evaluate(data, collection=collection, cache=False)
    report = evaluate(
        data, collection=collection, id_key="doc_id", metrics=METRICS, k=10, cache=False
    )
    assert report.results[0].name == "question_answering d=32"  # the collection's settings
    assert report.results[0].settings["dimensions"] == 32
    emb = Embedder(str(tiny_embedding_dir), dimensions=32, instruction="question_answering")
    chunk_vectors = embed_documents(emb, [t for _, t in chunks.values()])
    owners = [d for d, _ in chunks.values()]
    for qid, qv in zip(data.queries, emb.embed_queries(list(data.queries.values())), strict=True):
        # Each document at its best chunk; k=10 counts documents, not chunks.
        best: dict[str, float] = {}
        for owner, vector in zip(owners, chunk_vectors, strict=True):
            best[owner] = max(best.get(owner, -2.0), exact_dot(vector, qv))
        expected = trec_ranking(best, 10)
        got = report.results[0].run[qid]
        assert [d for d, _ in got] == expected
        np.testing.assert_allclose([v for _, v in got], [best[d] for d in expected], atol=1e-5)


def test_chroma_collection_from_another_function_is_refused(data: Dataset, tmp_path: Path) -> None:
    collection = chroma_client(tmp_path / "db").create_collection("plain", embedding_function=None)
    collection.add(ids=["geo-0"], embeddings=[[1.0, 0.0]])
    with pytest.raises(ValueError, match="was not made by qwen3-rag"):
        evaluate(data, collection=collection, cache=False)


def test_equal_texts_are_embedded_once(
    tiny_embedding_dir: Path, data: Dataset, count_calls: list[tuple[str, list[str]]]
) -> None:
    evaluate(data, embedder=str(tiny_embedding_dir), cache=False, k=10, metrics=METRICS)
    documents = [t for m, t in count_calls if m == "embed_documents"]
    assert len(data.corpus) == len(CORPUS) + 2
    assert [len(t) for t in documents] == [len(CORPUS)]  # the two duplicates: no extra work


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, data: Dataset) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pytrec_eval", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "qwen3-rag\[eval\]"'):
        score_run(HAND_QRELS, HAND_RUN)
    with pytest.raises(ImportError, match=r'pip install "qwen3-rag\[eval\]"'):
        evaluate(data, cache=False)
