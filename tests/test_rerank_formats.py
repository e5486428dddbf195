"""Every published Qwen3-Reranker format scores alike, through every class, local and windowed.

A tiny random causal reranker with an *untied* LM head (as 4B and 8B have: with a tied head
a converted folder loaded as a causal LM would get its yes/no rows back by accident) is
converted the way the published conversions do it (``tomaarsen/Qwen3-Reranker-*-seq-cls``,
vLLM's ``is_original_qwen3_reranker``): a ``Qwen3ForSequenceClassification`` with
``num_labels=1`` whose score row is ``lm_head[yes] - lm_head[no]``, stored in float32. The
reference is literal, written here: transformers' own forward of each format on the recipe's
token ids, last position, ``sigmoid(logit_yes - logit_no)`` or ``sigmoid(score)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from langchain_core.documents import Document
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from langchain_qwen3 import Qwen3CrossEncoder, Qwen3Reranker
from llamaindex_qwen3 import Qwen3Rerank
from qwen3_rag import Reranker
from qwen3_rag.identity import inspect_checkpoint
from qwen3_rag.loading import ModelSource
from tests.core.test_parity import TASK
from tests.core.test_remote import PREFIX, SUFFIX
from tests.core.test_rerank_windows import literal_windows
from tests.models import CORPUS, build_model, convert_to_seq_cls, load_reference, tiny_config

MAX_LENGTH = 256
OVERLAP = 16
QUERY = "What is the capital of China?"
DOCS = [
    CORPUS[0],
    "",
    " ".join(CORPUS) * 2,  # ~560 tokens of the tiny tokenizer: several windows
    CORPUS[2] * 3,
    " ".join(reversed(CORPUS)) * 2,
]


@pytest.fixture(scope="module")
def formats(tiny_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An untied causal reranker (float32) and its sequence-classification conversion."""
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    root = tmp_path_factory.mktemp("formats")
    causal_dir = build_model(
        root / "causal",
        tiny_tokenizer_dir,
        kind="reranker",
        dtype=torch.float32,
        seed=3,
        config=tiny_config(vocab, tie=False),
    )
    seq_dir = convert_to_seq_cls(causal_dir, root / "seq-cls")
    found = inspect_checkpoint(ModelSource(str(seq_dir)))
    assert (found.kind, found.score_rows, found.lm_head) == ("sequence-classification", 1, False)
    return {"causal": causal_dir, "seq-cls": seq_dir}


def literal_scores(folder: Path, kind: str, query: str, docs: list[str]) -> list[float]:
    """The recipe by hand: transformers' forward of the format, last position, sigmoid."""
    from transformers import AutoTokenizer, Qwen3ForCausalLM, Qwen3ForSequenceClassification

    tok = AutoTokenizer.from_pretrained(folder)
    prefix = tok.encode(PREFIX, add_special_tokens=False)
    suffix = tok.encode(SUFFIX, add_special_tokens=False)
    cls = Qwen3ForCausalLM if kind == "causal" else Qwen3ForSequenceClassification
    model = load_reference(cls, folder)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    scores = []
    for doc in docs:
        body = tok.encode(
            f"<Instruct>: {TASK}\n<Query>: {query}\n<Document>: {doc}",
            add_special_tokens=False,
            truncation=True,
            max_length=MAX_LENGTH - len(prefix) - len(suffix),
        )
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prefix + body + suffix])).logits
        # causal: (1, positions, vocabulary), the last position's two rows; seq-cls: (1, 1),
        # the score head at the last position (transformers pools there).
        diff = logits[0, -1, yes] - logits[0, -1, no] if kind == "causal" else logits[0, 0]
        scores.append(torch.sigmoid(diff).item())
    return scores


def literal_windowed(folder: Path, kind: str, query: str, docs: list[str]) -> list[float]:
    """The best window's literal score of each document (windows cut by the test)."""
    out = []
    for doc in docs:
        spans = literal_windows(folder, query, doc, max_length=MAX_LENGTH, overlap=OVERLAP)
        out.append(max(literal_scores(folder, kind, query, [doc[a:b] for a, b in spans])))
    return out


def through_every_class(folder: Path, mode: str) -> dict[str, list[float]]:
    """Scores of DOCS for QUERY, in input order, from each class over ``folder``."""
    kw: dict[str, Any] = {
        "device": "cpu",
        "max_length": MAX_LENGTH,
        "long_documents": mode,
        "window_overlap": OVERLAP,
    }
    rr = Reranker(str(folder), **kw)
    out = {"score": rr.score(QUERY, DOCS)}
    ranked = {i: s for i, s in rr.rank(QUERY, DOCS)}
    out["rank"] = [ranked[i] for i in range(len(DOCS))]
    docs = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCS)]
    compressed = Qwen3Reranker(model=str(folder), top_n=None, **kw).compress_documents(docs, QUERY)
    by_i = {d.metadata["i"]: d.metadata["relevance_score"] for d in compressed}
    out["langchain"] = [by_i[i] for i in range(len(DOCS))]
    out["cross-encoder"] = Qwen3CrossEncoder(model=str(folder), **kw).score(
        [(QUERY, d) for d in DOCS]
    )
    nodes = [NodeWithScore(node=TextNode(text=d, id_=f"n{i}")) for i, d in enumerate(DOCS)]
    post = Qwen3Rerank(str(folder), top_n=None, **kw).postprocess_nodes(
        nodes, query_bundle=QueryBundle(QUERY)
    )
    by_id = {n.node.node_id: n.score for n in post}
    out["llamaindex"] = [float(by_id[f"n{i}"] or 0.0) for i in range(len(DOCS))]
    return out


@pytest.mark.parametrize("mode", ["truncate", "max"])
def test_a_converted_checkpoint_scores_like_the_original_through_every_class(
    formats: dict[str, Path], mode: str
) -> None:
    literal = literal_scores if mode == "truncate" else literal_windowed
    reference = literal(formats["causal"], "causal", QUERY, DOCS)
    converted = literal(formats["seq-cls"], "seq-cls", QUERY, DOCS)
    assert converted == pytest.approx(reference, abs=1e-6)  # the conversion is right
    assert max(reference) - min(reference) > 0.01  # and the scores discriminate
    original = through_every_class(formats["causal"], mode)
    for name, got in through_every_class(formats["seq-cls"], mode).items():
        assert got == pytest.approx(original[name], abs=1e-6), name
        assert got == pytest.approx(reference, abs=1e-6), name


def test_the_converted_head_is_one_float32_row_and_no_lm_head_is_kept(
    formats: dict[str, Path],
) -> None:
    rt = Reranker(str(formats["seq-cls"]), device="cpu")._runtime()
    assert rt.no_yes.dtype == torch.float32 and tuple(rt.no_yes.shape) == (2, 64)
    assert torch.count_nonzero(rt.no_yes[0]) == 0  # logit_yes - logit_no = score . h
    assert not hasattr(rt.model, "score") and not hasattr(rt.model, "lm_head")


def test_windows_reach_the_framework_metadata(formats: dict[str, Path]) -> None:
    kw: dict[str, Any] = {
        "device": "cpu",
        "max_length": MAX_LENGTH,
        "long_documents": "max",
        "window_overlap": OVERLAP,
        "top_n": None,
    }
    want = {
        r[0]: r.window for r in Reranker(str(formats["seq-cls"]), **_core(kw)).rank(QUERY, DOCS)
    }
    assert want[2] != (0, len(DOCS[2]))  # the long document was windowed
    docs = [Document(page_content=d, metadata={"i": i}) for i, d in enumerate(DOCS)]
    out = Qwen3Reranker(model=str(formats["seq-cls"]), **kw).compress_documents(docs, QUERY)
    assert {d.metadata["i"]: d.metadata["rerank_window"] for d in out} == want
    assert all("rerank_window" not in d.metadata for d in docs)  # inputs untouched
    nodes = [NodeWithScore(node=TextNode(text=d, id_=f"n{i}")) for i, d in enumerate(DOCS)]
    post = Qwen3Rerank(str(formats["seq-cls"]), **kw).postprocess_nodes(nodes, query_str=QUERY)
    assert {int(n.node.node_id[1:]): n.node.metadata["rerank_window"] for n in post} == want
    assert all("rerank_window" not in n.node.metadata for n in nodes)
    hidden = post[0].node
    assert "rerank_window" in hidden.excluded_llm_metadata_keys
    assert "rerank_window" in hidden.excluded_embed_metadata_keys
    truncating = Qwen3Reranker(model=str(formats["seq-cls"]), device="cpu", max_length=256)
    assert all(
        "rerank_window" not in d.metadata for d in truncating.compress_documents(docs, QUERY)
    )


def _core(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if k != "top_n"}
