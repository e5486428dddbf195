from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.schema import TextNode

from llamaindex_qwen3 import Qwen3Embedding
from qwen3_rag import Embedder
from tests.llamaindex.conftest import QUERY
from tests.models import CORPUS


def test_query_embedding_equals_core(embed_model: Qwen3Embedding, core_embedder: Embedder) -> None:
    got = embed_model.get_query_embedding(QUERY)
    want = core_embedder.embed_queries([QUERY])[0]
    assert isinstance(got, list) and all(isinstance(x, float) for x in got)
    assert got == want.tolist()
    # the query instruction is applied: a raw-text embedding differs
    assert not np.allclose(got, core_embedder.embed_documents([QUERY])[0])


def test_text_embeddings_equal_core_and_get_no_instruction(
    embed_model: Qwen3Embedding, core_embedder: Embedder
) -> None:
    want = core_embedder.embed_documents(CORPUS).tolist()
    assert embed_model.get_text_embedding_batch(CORPUS) == want
    one = embed_model.get_text_embedding(CORPUS[0])
    assert one == core_embedder.embed_documents([CORPUS[0]])[0].tolist()
    assert one == pytest.approx(want[0], abs=1e-5)  # padding in a batch moves only rounding
    assert len(want[0]) == 64


def test_text_embeddings_one_core_call_per_batch(
    emb_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = Qwen3Embedding(emb_dir, embed_batch_size=4)
    calls: list[int] = []
    original = model.embedder.embed_documents

    def spy(texts: list[str], **kwargs: Any) -> Any:
        calls.append(len(texts))
        return original(texts, **kwargs)

    monkeypatch.setattr(model.embedder, "embed_documents", spy)
    model.get_text_embedding_batch(CORPUS)
    assert calls == [4, 4, 2]
    assert model.embedder.batch_size == 4


def test_fields_reach_the_core(emb_dir: str, core_embedder: Embedder) -> None:
    model = Qwen3Embedding(
        model_name=emb_dir, instruction="Find the matching sentence", dimensions=32, max_length=64
    )
    assert model.model == model.model_name == emb_dir
    assert model.embedder.instruction == "Find the matching sentence"
    assert model.embedder.max_length == 64
    vec = model.get_query_embedding(QUERY)
    assert len(vec) == 32
    want = Embedder(emb_dir, instruction="Find the matching sentence", dimensions=32)
    assert vec == want.embed_queries([QUERY])[0].tolist()
    raw = Qwen3Embedding(emb_dir, instruction="").get_query_embedding(QUERY)
    assert raw == core_embedder.embed_documents([QUERY])[0].tolist()


def test_class_name_and_serialisation(emb_dir: str) -> None:
    model = Qwen3Embedding(emb_dir, dimensions=48)
    assert Qwen3Embedding.class_name() == "Qwen3Embedding"
    data = model.to_dict()
    assert data["class_name"] == "Qwen3Embedding"
    assert data["model_name"] == emb_dir
    again = Qwen3Embedding.from_dict(data)
    assert again.dimensions == 48 and again.embedder.dimensions == 48
    assert again.get_query_embedding(QUERY) == model.get_query_embedding(QUERY)


def test_every_field_has_a_description() -> None:
    for name, field in Qwen3Embedding.model_fields.items():
        if name != "callback_manager":
            assert field.description, name


def test_bad_input(emb_dir: str) -> None:
    with pytest.raises(ValueError, match="disagree"):
        Qwen3Embedding(emb_dir, model_name="other")
    with pytest.raises(ValueError, match="dimensions"):
        Qwen3Embedding(emb_dir, dimensions=8)
    with pytest.raises(ValueError):
        Qwen3Embedding(emb_dir, instruction="websearch")  # a typo of a preset name
    model = Qwen3Embedding(emb_dir)
    with pytest.raises(TypeError):
        model.get_text_embedding_batch([CORPUS[0], 3])
    assert model.get_text_embedding("") == Embedder(emb_dir).embed_documents([""])[0].tolist()


async def test_async_runs_off_the_event_loop(
    embed_model: Qwen3Embedding, core_embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    core = embed_model.embedder
    for name in ("embed_queries", "embed_documents"):
        original = getattr(core, name)

        def spy(texts: list[str], _original: Any = original, **kwargs: Any) -> Any:
            threads.append(threading.get_ident())
            return _original(texts, **kwargs)

        monkeypatch.setattr(core, name, spy)
    loop_thread = threading.get_ident()
    q, docs, one = await asyncio.gather(
        embed_model.aget_query_embedding(QUERY),
        embed_model.aget_text_embedding_batch(CORPUS),
        embed_model.aget_text_embedding(CORPUS[1]),
    )
    assert q == core_embedder.embed_queries([QUERY])[0].tolist()
    assert docs == core_embedder.embed_documents(CORPUS).tolist()
    assert one == core_embedder.embed_documents([CORPUS[1]])[0].tolist()
    assert threads and loop_thread not in threads


def test_works_as_settings_embed_model(
    embed_model: Qwen3Embedding, core_embedder: Embedder
) -> None:
    saved = Settings._embed_model
    try:
        Settings.embed_model = embed_model
        assert Settings.embed_model is embed_model
        nodes = [TextNode(text=t, id_=str(i)) for i, t in enumerate(CORPUS)]
        index = VectorStoreIndex(nodes)  # no embed_model: taken from Settings
        got = index.as_retriever(similarity_top_k=3).retrieve(QUERY)
        q = core_embedder.embed_queries([QUERY])[0]
        d = core_embedder.embed_documents(CORPUS)
        order = np.argsort(-(d @ q), kind="stable")[:3]
        assert [n.node.node_id for n in got] == [str(i) for i in order]
        assert [n.score for n in got] == pytest.approx((d @ q)[order].tolist(), abs=1e-5)
    finally:
        Settings._embed_model = saved
    assert Settings._embed_model is saved


def test_quantize_reaches_the_core(emb_dir: str) -> None:
    pytest.importorskip("torchao")
    model = Qwen3Embedding(emb_dir, device="cpu", quantize="int8")
    core = Embedder(emb_dir, device="cpu", quantize="int8")
    assert model.embedder._runtime() is core._runtime()
    assert model.get_text_embedding_batch(CORPUS) == core.embed_documents(CORPUS).tolist()
