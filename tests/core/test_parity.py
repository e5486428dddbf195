"""Parity with the official Qwen3 recipe, on the real tokenizers and the real architecture.

The reference functions below are written literally from the Qwen3-Embedding and
Qwen3-Reranker READMEs: one text at a time (batch size 1), fp32, transformers' own classes,
no code from qwen3_rag. The models are random-weight Qwen3s saved in bf16 like the published
checkpoints, so every code path of the real weights runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qwen3_rag import Embedder, Reranker
from tests.models import QWEN3_EMBEDDING_TOKENIZER, QWEN3_TOKENIZER, build_model, load_reference

EOS_ID = 151643
YES_ID = 9693
NO_ID = 2152
TASK = "Given a web search query, retrieve relevant passages that answer the query"

QUERIES = [
    "What is the capital of China?",
    "Explain gravity",
    "",
    "   ",
    "北京是哪个国家的首都？",  # noqa: RUF001
    "how do I reverse a list in python " * 12,
]
DOCUMENTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to "
    "physical objects and is responsible for the movement of planets around the sun.",
    "",
    "Die Hauptstadt von Deutschland ist Berlin. " * 20,
    "def reverse(xs):\n    return xs[::-1]\n",
    "ok",
    "Émile Zola était un écrivain français. " * 5,
]


def literal_embed(model_dir: Path, texts: list[str], max_length: int = 8192) -> np.ndarray:
    """The README recipe: tokenize, make sure <|endoftext|> ends it, last-token pool, normalise."""
    from transformers import AutoTokenizer, Qwen3Model

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = load_reference(Qwen3Model, model_dir, torch.float32)
    rows = []
    for text in texts:
        ids = tok(text, truncation=True, max_length=max_length)["input_ids"]
        if not ids or ids[-1] != EOS_ID:  # an older tokenizer: cut to max_length - 1, append it
            ids = tok(text, truncation=True, max_length=max_length - 1)["input_ids"] + [EOS_ID]
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
        rows.append(hidden)
    return torch.stack(rows).numpy()


def normalise(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    t = torch.from_numpy(x[:, :dim] if dim else x)
    return F.normalize(t, p=2, dim=-1).numpy()


def literal_rerank(
    model_dir: Path,
    instruction: str,
    query: str,
    docs: list[str],
    max_length: int = 8192,
    *,
    last_logits_only: bool = False,
) -> list[float]:
    """The Qwen3-Reranker README code, one pair at a time.

    ``last_logits_only`` asks transformers for the last position's logits only (the only ones
    read), so thousands of tokens do not allocate thousands of vocabulary-wide rows.
    """
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = load_reference(Qwen3ForCausalLM, model_dir, torch.float32)
    prefix = (
        "<|im_start|>system\nJudge whether the Document meets the requirements based on the "
        'Query and the Instruct provided. Note that the answer can only be "yes" or "no".'
        "<|im_end|>\n<|im_start|>user\n"
    )
    suffix = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    prefix_tokens = tok.encode(prefix, add_special_tokens=False)
    suffix_tokens = tok.encode(suffix, add_special_tokens=False)
    token_true = tok.convert_tokens_to_ids("yes")
    token_false = tok.convert_tokens_to_ids("no")
    assert (token_true, token_false) == (YES_ID, NO_ID)
    scores = []
    for doc in docs:
        pair = f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
        inputs = tok(
            [pair],
            padding=False,
            truncation="longest_first",
            return_attention_mask=False,
            max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
        )
        ids = prefix_tokens + inputs["input_ids"][0] + suffix_tokens
        with torch.no_grad():
            keep = {"logits_to_keep": 1} if last_logits_only else {}
            logits = model(input_ids=torch.tensor([ids]), **keep).logits[:, -1, :]
        pair_logits = torch.stack([logits[:, token_false], logits[:, token_true]], dim=1)
        scores.append(torch.nn.functional.log_softmax(pair_logits, dim=1)[:, 1].exp().item())
    return scores


@pytest.fixture(scope="module")
def plain_tok_embedding_dir(tmp_path_factory: pytest.TempPathFactory, real_embedding_dir: Path):
    """The same weights as real_embedding_dir, beside the tokenizer that appends no EOS."""
    return build_model(tmp_path_factory.mktemp("emb_plain"), QWEN3_TOKENIZER, kind="embedding")


def test_fixture_tokenizers_behave_as_documented(real_embedding_dir: Path) -> None:
    from transformers import AutoTokenizer

    emb_tok = AutoTokenizer.from_pretrained(QWEN3_EMBEDDING_TOKENIZER)
    emb_tok.padding_side = "left"
    batch = emb_tok(["test", "test again"], padding=True)
    assert batch["input_ids"] == [[151643, 1944, 151643], [1944, 1549, 151643]]
    plain = AutoTokenizer.from_pretrained(QWEN3_TOKENIZER)
    assert plain("test")["input_ids"] == [1944]


@pytest.mark.parametrize(
    ("batch_size", "max_batch_tokens", "dimensions"),
    [(1, None, None), (3, None, None), (32, 64, None), (32, None, 32), (4, 200, 48)],
)
def test_embeddings_match_literal_recipe(
    real_embedding_dir: Path, batch_size: int, max_batch_tokens: int | None, dimensions: int | None
) -> None:
    emb = Embedder(
        str(real_embedding_dir),
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        dimensions=dimensions,
        device="cpu",
    )
    queries = [f"Instruct: {TASK}\nQuery:{q}" for q in QUERIES]
    expected_q = normalise(literal_embed(real_embedding_dir, queries), dimensions)
    expected_d = normalise(literal_embed(real_embedding_dir, DOCUMENTS), dimensions)
    got_q = emb.embed_queries(QUERIES)
    got_d = emb.embed_documents(DOCUMENTS)
    assert got_q.shape == expected_q.shape and got_d.shape == expected_d.shape
    assert np.abs(got_q - expected_q).max() <= 1e-5
    assert np.abs(got_d - expected_d).max() <= 1e-5


def test_same_vectors_whether_or_not_tokenizer_appends_eos(
    real_embedding_dir: Path, plain_tok_embedding_dir: Path
) -> None:
    with_eos = Embedder(str(real_embedding_dir), device="cpu").embed_documents(DOCUMENTS)
    without = Embedder(str(plain_tok_embedding_dir), device="cpu").embed_documents(DOCUMENTS)
    reference = normalise(literal_embed(plain_tok_embedding_dir, DOCUMENTS))
    assert np.abs(with_eos - without).max() <= 1e-6
    assert np.abs(without - reference).max() <= 1e-5


@pytest.mark.parametrize("which", ["embedding", "plain"])
def test_truncation_matches_literal_recipe(
    real_embedding_dir: Path,
    plain_tok_embedding_dir: Path,
    which: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = real_embedding_dir if which == "embedding" else plain_tok_embedding_dir
    emb = Embedder(str(folder), max_length=16, device="cpu", batch_size=2)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = emb.embed_documents(DOCUMENTS)
    expected = normalise(literal_embed(folder, DOCUMENTS, max_length=16))
    assert np.abs(got - expected).max() <= 1e-5
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("3 of 7 texts")


@pytest.mark.parametrize(("batch_size", "max_batch_tokens"), [(1, None), (16, None), (4, 300)])
def test_rerank_scores_match_literal_recipe(
    real_reranker_dir: Path, batch_size: int, max_batch_tokens: int | None
) -> None:
    rr = Reranker(
        str(real_reranker_dir),
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        device="cpu",
    )
    for query in QUERIES[:2] + QUERIES[4:5]:
        expected = literal_rerank(real_reranker_dir, TASK, query, DOCUMENTS)
        got = rr.score(query, DOCUMENTS)
        assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-5
    # random weights still have to separate the candidates, or the check above proves little
    assert np.ptp(expected) > 0.01


def test_rerank_pairs_and_custom_instruction_match_literal_recipe(real_reranker_dir: Path) -> None:
    rr = Reranker(str(real_reranker_dir), device="cpu")
    instruction = "Given the user query, retrieval the relevant passages"
    pairs = [(QUERIES[0], DOCUMENTS[0]), (QUERIES[1], DOCUMENTS[1]), (QUERIES[4], DOCUMENTS[6])]
    got = rr.score_pairs(pairs, instruction="rerank_user_query")
    expected = [literal_rerank(real_reranker_dir, instruction, q, [d])[0] for q, d in pairs]
    assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-5


def test_rerank_truncation_matches_literal_recipe(
    real_reranker_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    max_length = 96  # the fixed template takes about 60 tokens: long bodies get cut
    rr = Reranker(str(real_reranker_dir), max_length=max_length, device="cpu", batch_size=3)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        got = rr.score(QUERIES[0], DOCUMENTS)
    expected = literal_rerank(real_reranker_dir, TASK, QUERIES[0], DOCUMENTS, max_length)
    assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-5
    assert sum("truncated" in r.getMessage() for r in caplog.records) == 1
