from __future__ import annotations

import threading
from typing import Any

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.callbacks.llama_debug import LlamaDebugHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from llamaindex_qwen3 import Qwen3Rerank
from qwen3_rag import Reranker
from tests.llamaindex.conftest import QUERY


def _scored(nodes: list[TextNode]) -> list[NodeWithScore]:
    return [NodeWithScore(node=n, score=1.0 - i / 100) for i, n in enumerate(nodes)]


def test_scores_and_order_equal_core(
    rerank: Qwen3Rerank, core_reranker: Reranker, nodes: list[TextNode]
) -> None:
    given = _scored(nodes)
    out = rerank.postprocess_nodes(given, query_str=QUERY)
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    want = core_reranker.rank(QUERY, texts, top_n=3)
    assert [(n.node.node_id, n.score) for n in out] == [(f"n{i}", s) for i, s in want]
    # new NodeWithScore objects; the inputs keep their retrieval scores
    assert all(o is not g for o in out for g in given)
    assert [g.score for g in given] == [1.0 - i / 100 for i in range(len(nodes))]
    assert out[0].node is nodes[want[0][0]]


def test_top_n_none_returns_all_reordered(
    rr_dir: str, core_reranker: Reranker, nodes: list[TextNode]
) -> None:
    out = Qwen3Rerank(rr_dir, top_n=None).postprocess_nodes(_scored(nodes), query_str=QUERY)
    want = core_reranker.rank(QUERY, [n.text for n in nodes])
    assert len(out) == len(nodes)
    assert [(n.node.node_id, n.score) for n in out] == [(f"n{i}", s) for i, s in want]


def test_metadata_is_part_of_the_scored_text(rr_dir: str, core_reranker: Reranker) -> None:
    node = TextNode(text="Beijing.", metadata={"title": "Capitals"})
    out = Qwen3Rerank(rr_dir, top_n=1).postprocess_nodes(
        [NodeWithScore(node=node, score=0.5)], query_str=QUERY
    )
    text = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "Capitals" in text
    assert out[0].score == core_reranker.score(QUERY, [text])[0]


def test_keep_retrieval_score_on_a_copy(rr_dir: str, nodes: list[TextNode]) -> None:
    given = _scored(nodes)
    out = Qwen3Rerank(rr_dir, top_n=2, keep_retrieval_score=True).postprocess_nodes(
        given, query_str=QUERY
    )
    by_id = {g.node.node_id: g for g in given}
    for n in out:
        assert n.node.metadata["retrieval_score"] == by_id[n.node.node_id].score
        assert n.node.get_content() == by_id[n.node.node_id].node.get_content()
    assert all("retrieval_score" not in n.metadata for n in nodes)


def test_missing_query_bundle_is_a_clear_error(rerank: Qwen3Rerank, nodes: list[TextNode]) -> None:
    with pytest.raises(ValueError, match="needs the query"):
        rerank.postprocess_nodes(_scored(nodes))


async def test_missing_query_bundle_async(rerank: Qwen3Rerank, nodes: list[TextNode]) -> None:
    with pytest.raises(ValueError, match="needs the query"):
        await rerank.apostprocess_nodes(_scored(nodes))


@pytest.mark.parametrize("top_n", [0, -1])
def test_top_n_not_positive_is_value_error(rr_dir: str, top_n: int) -> None:
    with pytest.raises(ValueError, match="top_n"):
        Qwen3Rerank(rr_dir, top_n=top_n)


def test_top_n_set_later_to_zero_fails_in_the_core(
    rerank: Qwen3Rerank, nodes: list[TextNode]
) -> None:
    rerank.top_n = 0
    with pytest.raises(ValueError, match="top_n"):
        rerank.postprocess_nodes(_scored(nodes), query_str=QUERY)


def test_empty_text_nodes_are_scored_not_dropped(rr_dir: str, core_reranker: Reranker) -> None:
    nodes = [TextNode(text="", id_="empty"), TextNode(text="Beijing is the capital.", id_="b")]
    out = Qwen3Rerank(rr_dir, top_n=None).postprocess_nodes(_scored(nodes), query_str=QUERY)
    assert {n.node.node_id for n in out} == {"empty", "b"}
    scores = dict(zip(["empty", "b"], core_reranker.score(QUERY, ["", nodes[1].text]), strict=True))
    assert {n.node.node_id: n.score for n in out} == scores


def test_no_nodes(rerank: Qwen3Rerank) -> None:
    assert rerank.postprocess_nodes([], query_str=QUERY) == []


def test_query_bundle_and_query_str_agree(rerank: Qwen3Rerank, nodes: list[TextNode]) -> None:
    a = rerank.postprocess_nodes(_scored(nodes), query_bundle=QueryBundle(QUERY))
    b = rerank.postprocess_nodes(_scored(nodes), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in a] == [(n.node.node_id, n.score) for n in b]


def test_fields_reach_the_core(rr_dir: str, nodes: list[TextNode]) -> None:
    rr = Qwen3Rerank(rr_dir, instruction="Find the sentence about a city", max_length=1024)
    assert rr.reranker.instruction == "Find the sentence about a city"
    assert rr.reranker.max_length == 1024
    texts = [n.text for n in nodes]
    want = Reranker(rr_dir, instruction="Find the sentence about a city", max_length=1024).rank(
        QUERY, texts, top_n=3
    )
    out = rr.postprocess_nodes(_scored(nodes), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [(f"n{i}", s) for i, s in want]


def test_class_name_fields_and_serialisation(rr_dir: str) -> None:
    rr = Qwen3Rerank(rr_dir, top_n=4, keep_retrieval_score=True)
    assert Qwen3Rerank.class_name() == "Qwen3Rerank"
    for name, field in Qwen3Rerank.model_fields.items():
        if name != "callback_manager":
            assert field.description, name
    data = rr.to_dict()
    assert data["class_name"] == "Qwen3Rerank" and data["model"] == rr_dir
    again = Qwen3Rerank.from_dict(data)
    assert again.top_n == 4 and again.keep_retrieval_score and again.reranker.model == rr_dir


def test_events_instrumentation_and_callback(
    rr_dir: str, nodes: list[TextNode], captured_events: list[Any]
) -> None:
    debug = LlamaDebugHandler()
    rr = Qwen3Rerank(rr_dir, top_n=3, callback_manager=CallbackManager([debug]))
    given = _scored(nodes)
    out = rr.postprocess_nodes(given, query_str=QUERY)
    starts = [e for e in captured_events if isinstance(e, ReRankStartEvent)]
    ends = [e for e in captured_events if isinstance(e, ReRankEndEvent)]
    assert len(starts) == 1 and len(ends) == 1
    query = starts[0].query
    assert isinstance(query, QueryBundle) and query.query_str == QUERY
    assert starts[0].top_n == 3 and starts[0].model_name == rr_dir
    assert [n.node.node_id for n in starts[0].nodes] == [n.node_id for n in nodes]
    assert ends[0].nodes == out
    pairs = debug.get_event_pairs(CBEventType.RERANKING)
    assert len(pairs) == 1
    start, end = pairs[0]
    assert start.payload is not None and end.payload is not None
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert start.payload[EventPayload.TOP_K] == 3
    assert start.payload[EventPayload.MODEL_NAME] == rr_dir
    assert end.payload[EventPayload.NODES] == out


async def test_async_equals_sync_off_the_loop_with_events(
    rerank: Qwen3Rerank,
    nodes: list[TextNode],
    captured_events: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sync = rerank.postprocess_nodes(_scored(nodes), query_str=QUERY)
    captured_events.clear()
    threads: list[int] = []
    original = rerank.reranker.rank

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(rerank.reranker, "rank", spy)
    out = await rerank.apostprocess_nodes(_scored(nodes), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in out] == [(n.node.node_id, n.score) for n in sync]
    assert threads and threading.get_ident() not in threads
    kinds = [type(e) for e in captured_events if isinstance(e, ReRankStartEvent | ReRankEndEvent)]
    assert kinds == [ReRankStartEvent, ReRankEndEvent]


def test_quantize_reaches_the_core(rr_dir: str) -> None:
    assert Qwen3Rerank(rr_dir, device="cpu", quantize="int8").reranker.quantize == "int8"
    assert Qwen3Rerank(rr_dir).reranker.quantize is None
