"""The ONNX Runtime engine: the same recipe around an exported decoder, built once, checked.

Float32 through ONNX Runtime matches the literal recipe of the READMEs (``test_parity``'s
reference functions, no qwen3_rag code); int8 stays within the fidelity floors; the artefact
is built once per identity and reused; a degraded artefact is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, clear_cache, fidelity
from qwen3_rag import _model as model_module
from qwen3_rag.errors import FidelityError
from qwen3_rag.identity import ModelIdentity
from qwen3_rag.store import embedding_function_for
from tests.core.test_parity import (
    DOCUMENTS,
    QUERIES,
    TASK,
    literal_embed,
    literal_rerank,
    normalise,
)
from tests.models import build_model, tiny_config

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def test_float32_engine_embeds_the_literal_recipe(real_embedding_dir: Path) -> None:
    # small batches under a token budget: padded batches of several lengths
    emb = Embedder(str(real_embedding_dir), device="cpu", engine="onnx", batch_size=4,
                   max_batch_tokens=300, dimensions=48)  # fmt: skip
    queries = [f"Instruct: {TASK}\nQuery:{q}" for q in QUERIES]
    expected_q = normalise(literal_embed(real_embedding_dir, queries), 48)
    expected_d = normalise(literal_embed(real_embedding_dir, DOCUMENTS), 48)
    assert np.abs(emb.embed_queries(QUERIES) - expected_q).max() <= 1e-5
    assert np.abs(emb.embed_documents(DOCUMENTS) - expected_d).max() <= 1e-5
    assert str(emb.identity()).endswith("(onnx, float32)")


def test_float32_engine_reranks_the_literal_recipe(real_reranker_dir: Path) -> None:
    rr = Reranker(str(real_reranker_dir), device="cpu", engine="onnx", batch_size=3)
    for query in QUERIES[:2]:
        expected = literal_rerank(real_reranker_dir, TASK, query, DOCUMENTS)
        got = rr.score(query, DOCUMENTS)
        assert np.abs(np.array(got) - np.array(expected)).max() <= 1e-5
    assert np.ptp(expected) > 0.01  # the candidates are told apart, or the check proves little


@pytest.fixture(scope="module")
def calm_reranker_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A tiny reranker with trained-like small weights (init 0.05, not 0.2).

    The default tiny reranker's random logits are large enough that int8 rounding moves its
    probe scores by ~0.08, above the floor; real checkpoints move by under 0.01.
    """
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tiny_tokenizer_dir / "tokenizer.json")).get_vocab_size()
    return build_model(tmp_path_factory.mktemp("calm"), tiny_tokenizer_dir, kind="reranker",
                       config=tiny_config(vocab, seed_scale=0.05), seed=3)  # fmt: skip


def test_int8_engine_stays_within_the_floors_and_says_so(
    engine_cache: Path, tiny_embedding_dir: Path, calm_reranker_dir: Path
) -> None:
    docs = ["The capital of China is Beijing.", "Gravity is a force.", "def main(): return 42"]
    emb = Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx", quantize="int8")
    exact = Embedder(str(tiny_embedding_dir), device="cpu").embed_documents(docs)
    got = emb.embed_documents(docs)
    assert float((got * exact).sum(axis=1).min()) >= fidelity.MIN_COSINE
    record = emb.fidelity()
    assert record is not None and record.ok and record.identity.endswith("(onnx, int8)")
    assert record.details["disk_bytes"] > 0 and record.details["build_seconds"] >= 0
    rr = Reranker(str(calm_reranker_dir), device="cpu", engine="onnx", quantize="int8")
    scores = rr.score("capital of China?", docs)
    reference = Reranker(str(calm_reranker_dir), device="cpu").score("capital of China?", docs)
    assert np.abs(np.array(scores) - np.array(reference)).max() <= fidelity.MAX_SCORE_DIFF
    assert {r.identity.split(" ", 1)[1] for r in fidelity.records()} == {"(onnx, int8)"}
    assert 0 < rr.weight_bytes() < Reranker(str(calm_reranker_dir), device="cpu").weight_bytes()


def test_the_artefact_is_built_once_and_reused(
    engine_cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_embedding_dir: Path
) -> None:
    docs = ["Beijing is China's capital.", "Gravity.", ""]
    first = Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx", quantize="int8")
    vectors = first.embed_documents(docs)
    (folder,) = engine_cache.iterdir()
    assert folder.name.startswith("embedder-onnx-int8-")
    clear_cache()  # as a new process would

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(model_module, "export_decoder", no_export)
    monkeypatch.setattr(model_module.ModelBase, "_reference", no_export)  # no torch model loaded
    again = Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx", quantize="int8")
    np.testing.assert_allclose(again.embed_documents(docs), vectors, atol=1e-6)
    assert again.fidelity() == first.fidelity()  # re-probed at load, the same measurement


def _degrade(graph: Path) -> None:
    """Shift the (int8) token embedding table by one row: a broken artefact, still loadable."""
    model = onnx.load(str(graph))
    (table,) = [i for i in model.graph.initializer if i.name.startswith("decoder.embed_tokens")
                and i.name.endswith("_quantized")]  # fmt: skip
    weights = np.roll(onnx.numpy_helper.to_array(table), 1, axis=0)
    table.CopyFrom(onnx.numpy_helper.from_array(weights, table.name))
    onnx.save(model, str(graph))


def test_a_degraded_artefact_is_refused(engine_cache: Path, tiny_embedding_dir: Path) -> None:
    Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx", quantize="int8").load()
    (folder,) = engine_cache.iterdir()
    _degrade(folder / "model.onnx")
    clear_cache()
    emb = Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx", quantize="int8")
    with pytest.raises(FidelityError, match=r"min_cosine -?0\.\d+ \(floor >= 0\.99\) REFUSED"):
        emb.embed_documents(["a text"])
    (record,) = fidelity.records()
    assert not record.ok  # the new measurement is stored, so doctor shows it


def test_engines_never_mix_vectors_and_collections_reopen_with_their_path() -> None:
    torch32 = ModelIdentity("sha256:ab", "torch", "float32")
    onnx32 = ModelIdentity("sha256:ab", "onnx", "float32")
    onnx8 = ModelIdentity("sha256:ab", "onnx", "int8")
    assert torch32.changes(onnx32) == ["engine torch -> onnx"]
    assert onnx32.changes(onnx8) == ["precision float32 -> int8"]
    assert not ModelIdentity("sha256:ab", "server", "unknown").changes(torch32)
    config = {"model": "m", "identity": onnx8.to_dict()}
    reopened = embedding_function_for(config, device="cpu").embedder
    assert (reopened.engine, reopened.quantize) == ("onnx", "int8")
    asked = embedding_function_for(config, device="cpu", dtype="float32").embedder
    assert (asked.engine, asked.quantize) == ("torch", None)  # what the caller asked for


def test_a_missing_extra_is_named_before_any_export(
    engine_cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_embedding_dir: Path
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    emb = Embedder(str(tiny_embedding_dir), device="cpu", engine="onnx")
    with pytest.raises(ImportError, match=r'pip install "qwen3-rag\[onnx\]"'):
        emb.load()
    assert not engine_cache.exists()
