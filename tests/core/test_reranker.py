from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qwen3_rag import Reranker

DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "",
    "Paris is the capital of France and a large city in Europe. " * 4,
    "no",
    "yes",
]


@pytest.fixture()
def rr(tiny_reranker_dir: Path) -> Reranker:
    return Reranker(str(tiny_reranker_dir), device="cpu")


def test_scores_are_probabilities_in_input_order(rr: Reranker) -> None:
    scores = rr.score("capital of China", DOCS)
    assert len(scores) == len(DOCS)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    alone = [rr.score("capital of China", [d])[0] for d in DOCS]
    assert scores == pytest.approx(alone, abs=1e-5)
    assert len(set(round(s, 6) for s in scores)) > 1  # random weights still discriminate


def test_rank_is_best_first_and_top_n_cuts(rr: Reranker) -> None:
    scores = rr.score("capital of China", DOCS)
    ranked = rr.rank("capital of China", DOCS)
    assert [i for i, _ in ranked] == sorted(range(len(DOCS)), key=lambda i: -scores[i])
    assert [s for _, s in ranked] == pytest.approx(sorted(scores, reverse=True), abs=1e-6)
    assert rr.rank("capital of China", DOCS, top_n=2) == ranked[:2]
    assert len(rr.rank("capital of China", DOCS, top_n=100)) == len(DOCS)


def test_ties_keep_input_order(rr: Reranker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rr, "_scored", lambda *a, **k: ([0.5, 0.7, 0.5, 0.7], [None] * 4))
    assert rr.rank("q", ["a", "b", "c", "d"]) == [(1, 0.7), (3, 0.7), (0, 0.5), (2, 0.5)]


def test_score_pairs_equals_score_per_query(rr: Reranker) -> None:
    pairs = [("capital of China", d) for d in DOCS[:3]] + [("gravity", d) for d in DOCS[:3]]
    got = rr.score_pairs(pairs)
    expected = rr.score("capital of China", DOCS[:3]) + rr.score("gravity", DOCS[:3])
    assert got == pytest.approx(expected, abs=1e-5)


def test_instruction_changes_scores(rr: Reranker, tiny_reranker_dir: Path) -> None:
    default = rr.score("capital", DOCS[:2])
    other = rr.score("capital", DOCS[:2], instruction="code_search")
    assert default != pytest.approx(other, abs=1e-6)
    same = Reranker(str(tiny_reranker_dir), instruction="code_search", device="cpu")
    assert same.score("capital", DOCS[:2]) == pytest.approx(other, abs=1e-6)


def test_empty_inputs(rr: Reranker) -> None:
    assert rr.score("q", []) == []
    assert rr.rank("q", []) == []
    assert rr.score_pairs([]) == []
    assert len(rr.score("", [""])) == 1  # empty query and document are scored, not dropped


@pytest.mark.parametrize("top_n", [0, -1, 1.5, "3"])
def test_bad_top_n(rr: Reranker, top_n: object) -> None:
    with pytest.raises(ValueError, match="top_n"):
        rr.rank("q", DOCS, top_n=top_n)  # type: ignore[arg-type]


def test_bad_types(rr: Reranker) -> None:
    with pytest.raises(TypeError, match="documents must be a list"):
        rr.score("q", "a document")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        rr.score("q", ["a", 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a str"):
        rr.score(["q"], ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        rr.score_pairs([("q",)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pairs"):
        rr.score_pairs("q")  # type: ignore[arg-type]


def test_long_pairs_are_truncated_with_one_warning(
    tiny_reranker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rr = Reranker(str(tiny_reranker_dir), max_length=400, device="cpu")
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        scores = rr.score("capital", ["city " * 300, "short", "city " * 400])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("2 of 3")
    assert scores[0] == pytest.approx(scores[2], abs=1e-6)  # same kept prefix, same score


def test_max_length_smaller_than_the_template_is_a_value_error(tiny_reranker_dir: Path) -> None:
    rr = Reranker(str(tiny_reranker_dir), max_length=10, device="cpu")
    with pytest.raises(ValueError, match="max_length=10"):
        rr.score("q", ["d"])


def test_only_the_yes_no_rows_of_the_lm_head_are_kept(rr: Reranker) -> None:
    rt = rr._runtime()
    assert tuple(rt.no_yes.shape) == (2, 64)
    assert not hasattr(rt.model, "lm_head")
