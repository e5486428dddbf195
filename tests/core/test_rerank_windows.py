"""Long documents by windows: the tail a truncated pair never reads is found, exactly.

The reference here is literal: the test cuts each long document into windows itself, from
the tokenizer's own offsets and the recipe strings (the budget is ``max_length`` less the
prefix, the suffix and the body with an empty document; windows of that many tokens start
every ``size - overlap`` tokens, the last one ending at the last token), scores every window
with the Qwen3-Reranker README code (``literal_rerank``, one pair at a time) and takes the
maximum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qwen3_rag import Reranker, RerankerOptions, _forward
from tests.core.test_parity import TASK, literal_rerank
from tests.core.test_remote import PREFIX, SUFFIX

MAX_LENGTH = 256
OVERLAP = 16
QUERY = "What is the capital of China?"
#: Sentences the tiny random reranker scores low and high for QUERY (checked in the test).
LOW = "provided. Note that the answer can only be yes or no. assistant user system think "
HIGH = "Paris is the capital of France and a large city in Europe. "
#: ~670 tokens: the first windows hold only LOW, the relevant part is the tail.
TAIL_DOC = LOW * 30 + HIGH * 12
OTHER = "The capital of China is Beijing. " * 8


def literal_windows(
    model_dir: Path,
    query: str,
    document: str,
    *,
    max_length: int = MAX_LENGTH,
    overlap: int = OVERLAP,
    max_windows: int | None = None,
) -> list[tuple[int, int]]:
    """The character spans of the windows of ``document``, built here from the recipe."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)

    def count(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False))

    budget = max_length - count(PREFIX) - count(SUFFIX)
    head = f"<Instruct>: {TASK}\n<Query>: {query}\n<Document>: "
    if count(head + document) <= budget:
        return [(0, len(document))]
    size = budget - count(head)
    enc = tok(document, add_special_tokens=False, return_offsets_mapping=True)
    n = len(enc["input_ids"])
    char = [0, *(start for start, _ in enc["offset_mapping"][1:]), len(document)]
    starts = [*range(0, n - size, size - overlap), n - size][:max_windows]
    return [(char[s], char[s + size]) for s in starts]


def literal_best(
    model_dir: Path, query: str, document: str, **kw: Any
) -> tuple[float, tuple[int, int], int]:
    """``(best window's P(yes), its span, how many windows)`` by the literal recipe."""
    spans = literal_windows(model_dir, query, document, **kw)
    texts = [document[a:b] for a, b in spans]
    scores = literal_rerank(
        model_dir, TASK, query, texts, max_length=MAX_LENGTH, last_logits_only=True
    )
    best = max(range(len(spans)), key=lambda i: (scores[i], -i))
    return scores[best], spans[best], len(spans)


def windowing(model_dir: Path, **kw: Any) -> Reranker:
    """A reranker scoring long documents by windows, at this module's settings."""
    settings: dict[str, Any] = {"max_length": MAX_LENGTH, "window_overlap": OVERLAP, **kw}
    return Reranker(str(model_dir), device="cpu", long_documents="max", **settings)


@pytest.fixture(scope="module")
def windowed(real_reranker_dir: Path) -> Reranker:
    return windowing(real_reranker_dir)


@pytest.fixture(scope="module")
def truncating(real_reranker_dir: Path) -> Reranker:
    return Reranker(str(real_reranker_dir), device="cpu", max_length=MAX_LENGTH)


def test_the_relevant_tail_is_found_by_windows_where_truncation_misses_it(
    real_reranker_dir: Path, windowed: Reranker, truncating: Reranker
) -> None:
    best, span, count = literal_best(real_reranker_dir, QUERY, TAIL_DOC)
    cut, other = literal_rerank(real_reranker_dir, TASK, QUERY, [TAIL_DOC, OTHER], MAX_LENGTH)
    assert count >= 4
    assert TAIL_DOC[span[0] : span[1]].count(HIGH) >= 6  # the winning window is the tail's
    assert cut < other < best  # the premise: truncation ranks it below OTHER, windows above

    docs = [OTHER, TAIL_DOC]
    assert truncating.score(QUERY, docs) == pytest.approx([other, cut], abs=1e-5)
    assert windowed.score(QUERY, docs) == pytest.approx([other, best], abs=1e-5)
    assert [i for i, _ in truncating.rank(QUERY, docs)] == [0, 1]  # the tail unseen
    ranked = windowed.rank(QUERY, docs)
    assert [i for i, _ in ranked] == [1, 0]
    assert ranked[0].window == span
    assert ranked[1].window == (0, len(OTHER))  # read whole
    assert all(r.window is None for r in truncating.rank(QUERY, docs))


def test_max_windows_keeps_the_first_windows(real_reranker_dir: Path) -> None:
    rr = windowing(real_reranker_dir, max_windows=2)
    best, span, count = literal_best(real_reranker_dir, QUERY, TAIL_DOC, max_windows=2)
    assert count == 2 and span[1] < len(TAIL_DOC)
    (got,) = rr.rank(QUERY, [TAIL_DOC])
    assert got.window == span
    assert got[1] == pytest.approx(best, abs=1e-5)


@pytest.fixture
def forward_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """The prefixes whose keys and values are computed, and every batch's token ids."""
    seen: dict[str, list[Any]] = {"prefixes": [], "batches": []}
    real_prefix, real_hidden = _forward.prefix_kv, _forward.final_hidden

    def prefix_kv(model: Any, prefix: Any, device: Any) -> Any:
        seen["prefixes"].append(list(prefix))
        return real_prefix(model, prefix, device)

    def final_hidden(model: Any, sequences: Any, *args: Any, **kwargs: Any) -> Any:
        seen["batches"].append([list(s) for s in sequences])
        return real_hidden(model, sequences, *args, **kwargs)

    monkeypatch.setattr(_forward, "prefix_kv", prefix_kv)
    monkeypatch.setattr(_forward, "final_hidden", final_hidden)
    return seen


def test_a_hundred_windows_share_the_query_prefix_and_stay_within_the_token_budget(
    real_reranker_dir: Path, forward_calls: dict[str, list[Any]]
) -> None:
    budget = 1024
    rr = windowing(real_reranker_dir, max_batch_tokens=budget, batch_size=64).load()
    long_doc = LOW * 950 + HIGH * 12 + LOW * 20
    docs = [long_doc, OTHER, TAIL_DOC]
    forward_calls["prefixes"].clear()
    forward_calls["batches"].clear()
    got = rr.rank(QUERY, docs)

    expected = {i: literal_best(real_reranker_dir, QUERY, d) for i, d in enumerate(docs)}
    assert expected[0][2] >= 100  # a hundred windows and more
    for r in got:
        assert r[1] == pytest.approx(expected[r[0]][0], abs=1e-5)
        assert r.window == expected[r[0]][1]
    (prefix,) = forward_calls["prefixes"]  # one query: its prefix computed once for all
    assert len(prefix) > 60  # template, instruction and query
    rows = [row for batch in forward_calls["batches"] for row in batch]
    assert len(rows) == sum(e[2] for e in expected.values())  # every window once, no more
    for batch in forward_calls["batches"]:  # never all windows at once: the budget holds
        assert len(batch) * max(len(r) for r in batch) <= budget


def test_a_document_that_fits_is_scored_as_by_the_recipe(
    windowed: Reranker, truncating: Reranker
) -> None:
    docs = ["The capital of China is Beijing.", "", OTHER]
    assert windowed.score(QUERY, docs) == truncating.score(QUERY, docs)
    assert [r.window for r in windowed.rank(QUERY, docs)] == [
        (0, len(docs[i])) for i, _ in truncating.rank(QUERY, docs)
    ]


async def test_async_and_pairs_agree_with_sync(windowed: Reranker) -> None:
    docs = [OTHER, TAIL_DOC]
    assert await windowed.arank(QUERY, docs) == windowed.rank(QUERY, docs)
    assert [r.window for r in await windowed.arank(QUERY, docs)] == [
        r.window for r in windowed.rank(QUERY, docs)
    ]
    assert await windowed.ascore(QUERY, docs) == windowed.score(QUERY, docs)
    pairs = [(QUERY, TAIL_DOC), ("gravity", TAIL_DOC), (QUERY, OTHER)]
    alone = [windowed.score(q, [d])[0] for q, d in pairs]
    assert windowed.score_pairs(pairs) == pytest.approx(alone, abs=1e-6)


def test_no_truncation_warning_for_windows(
    windowed: Reranker, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="qwen3_rag"):
        windowed.score(QUERY, [TAIL_DOC, LOW * 40])
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_an_overlap_the_windows_cannot_advance_by_is_a_value_error(
    real_reranker_dir: Path,
) -> None:
    rr = Reranker(str(real_reranker_dir), device="cpu", max_length=MAX_LENGTH, long_documents="max")
    with pytest.raises(ValueError, match=r"window_overlap=64.*raise max_length"):
        rr.score("why " * 150, [TAIL_DOC])  # a long query leaves the windows < 64 tokens
    assert len(rr.score("why " * 150, ["short"])) == 1  # nothing to window: no error


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"long_documents": "first"}, "long_documents must be one of 'truncate', 'max'"),
        ({"window_overlap": -1}, "window_overlap must be an integer >= 0"),
        ({"window_overlap": 1.5}, "window_overlap"),
        ({"max_windows": 0}, "max_windows must be an integer >= 1"),
    ],
)
def test_bad_window_options_name_the_argument(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RerankerOptions(**kwargs)
    with pytest.raises(ValueError, match=match):
        Reranker("m", **kwargs)


def test_remote_windows_equal_local(
    real_embedding_dir: Path, real_reranker_dir: Path, tmp_path: Path
) -> None:
    """With base_url the windows are cut here and sent as documents: the same scores."""
    import asyncio

    from tests.remote_server import LoopbackServer

    kw: dict[str, Any] = {"max_length": 128, "long_documents": "max", "window_overlap": 8}
    doc = "Die Hauptstadt von Deutschland ist Berlin. " * 20 + "Beijing is China's capital."
    docs = [doc, "short"]
    local = Reranker(str(real_reranker_dir), device="cpu", **kw)
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as srv:
        remote = Reranker(str(real_reranker_dir), base_url=srv.url, **kw)
        got = remote.rank(QUERY, docs)
        got_async = asyncio.run(remote.arank(QUERY, docs))
        sent = srv.bodies("/rerank")[0]["documents"]
    want = local.rank(QUERY, docs)
    assert [(i, r.window) for i, r in zip([r[0] for r in got], got, strict=True)] == [
        (r[0], r.window) for r in want
    ]
    assert [r[1] for r in got] == pytest.approx([r[1] for r in want], abs=1e-5)
    assert [r.window for r in got_async] == [r.window for r in want]
    assert len(sent) > 3  # windows went as documents
    with pytest.raises(ValueError, match="tokenizer"):
        Reranker("no/such-served-name", base_url="http://127.0.0.1:9", **kw).score(QUERY, docs)
