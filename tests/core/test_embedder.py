from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder, Preset
from qwen3_rag.instructions import format_query

TEXTS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other.",
    "",
    "Paris is the capital of France and a large city in Europe. " * 6,
    "yes",
]


@pytest.fixture()
def emb(tiny_embedding_dir: Path) -> Embedder:
    return Embedder(str(tiny_embedding_dir), device="cpu")


def test_shapes_dtype_and_unit_norm(emb: Embedder) -> None:
    q = emb.embed_queries(TEXTS)
    d = emb.embed_documents(TEXTS)
    assert q.dtype == np.float32 and q.shape == (len(TEXTS), 64) == d.shape
    assert emb.dimension == 64
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(q).all() and np.isfinite(d).all()


def test_queries_get_the_instruction_and_documents_do_not(emb: Embedder) -> None:
    q = emb.embed_queries(["gravity"])
    raw = emb.embed_documents(["gravity"])
    formatted = emb.embed_documents([format_query(emb.instruction, "gravity")])
    assert not np.allclose(q, raw, atol=1e-3)
    np.testing.assert_allclose(q, formatted, atol=1e-6)


def test_symmetric_preset_applies_to_documents(tiny_embedding_dir: Path) -> None:
    emb = Embedder(str(tiny_embedding_dir), instruction="semantic_similarity", device="cpu")
    np.testing.assert_allclose(emb.embed_documents(TEXTS), emb.embed_queries(TEXTS), atol=1e-6)
    custom = Preset("stance", "Retrieve tweets with the same stance", symmetric=True)
    by_call = emb.embed_documents(["a"], instruction=custom)
    plain = Embedder(str(tiny_embedding_dir), instruction="", device="cpu")
    np.testing.assert_allclose(
        by_call, plain.embed_documents([format_query(custom.instruction, "a")]), atol=1e-6
    )


def test_per_call_instruction_overrides_the_default(emb: Embedder) -> None:
    code = emb.embed_queries(["sort a list"], instruction="code_search")
    literal = emb.embed_queries(
        ["sort a list"],
        instruction="Given a question about coding, retrieval code or passage that can solve "
        "user's question",
    )
    np.testing.assert_allclose(code, literal, atol=1e-6)
    assert not np.allclose(code, emb.embed_queries(["sort a list"]), atol=1e-3)


def test_no_instruction_embeds_raw_text(tiny_embedding_dir: Path) -> None:
    raw = Embedder(str(tiny_embedding_dir), instruction="", device="cpu")
    np.testing.assert_allclose(raw.embed_queries(TEXTS), raw.embed_documents(TEXTS), atol=1e-6)


@pytest.mark.parametrize("dims", [32, 48, 64])
def test_mrl_keeps_the_first_dims_then_renormalises(
    emb: Embedder, tiny_embedding_dir: Path, dims: int
) -> None:
    full = emb.embed_documents(TEXTS)
    small = Embedder(str(tiny_embedding_dir), dimensions=dims, device="cpu")
    got = small.embed_documents(TEXTS)
    expected = full[:, :dims] / np.linalg.norm(full[:, :dims], axis=1, keepdims=True)
    assert got.shape == (len(TEXTS), dims) and small.dimension == dims
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_vectors_do_not_depend_on_the_batch(tiny_embedding_dir: Path) -> None:
    one = Embedder(str(tiny_embedding_dir), batch_size=1, device="cpu").embed_documents(TEXTS)
    many = Embedder(str(tiny_embedding_dir), batch_size=64, device="cpu").embed_documents(TEXTS)
    budget = Embedder(
        str(tiny_embedding_dir), batch_size=64, max_batch_tokens=40, device="cpu"
    ).embed_documents(TEXTS)
    alone = np.vstack(
        [Embedder(str(tiny_embedding_dir), device="cpu").embed_documents([t]) for t in TEXTS]
    )
    for other in (many, budget, alone):
        assert np.abs(one - other).max() <= 1e-5


def test_input_order_is_kept(emb: Embedder) -> None:
    forward = emb.embed_documents(TEXTS)
    backward = emb.embed_documents(TEXTS[::-1])
    np.testing.assert_allclose(forward, backward[::-1], atol=1e-5)


def test_empty_and_whitespace_texts_give_valid_vectors(emb: Embedder) -> None:
    vecs = emb.embed_documents(["", "   ", "\n\t"])
    assert np.isfinite(vecs).all()
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_empty_list_gives_empty_array(emb: Embedder) -> None:
    out = emb.embed_queries([])
    assert out.shape == (0, 64) and out.dtype == np.float32


def test_bare_string_is_a_type_error_with_a_hint(emb: Embedder) -> None:
    with pytest.raises(TypeError, match=r"single str.*\[text\]"):
        emb.embed_documents("hello")  # type: ignore[arg-type]


def test_non_string_item_is_named_by_index(emb: Embedder) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        emb.embed_queries(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        emb.embed_documents([None])  # type: ignore[list-item]


def test_long_text_is_truncated_with_one_warning(
    tiny_embedding_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emb = Embedder(str(tiny_embedding_dir), max_length=8, device="cpu")
    long_a, long_b = "capital city " * 50, "capital city " * 60
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        vecs = emb.embed_documents([long_a, "short", long_b])
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 1 and messages[0].startswith("2 of 3 texts")
    # both long texts share their first 7 tokens, so their truncated vectors are identical
    np.testing.assert_allclose(vecs[0], vecs[2], atol=1e-6)


@pytest.mark.parametrize("bad", [16, 31, 0, -5, 64.0, "64", True])
def test_bad_dimensions_are_value_errors(tiny_embedding_dir: Path, bad: object) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        Embedder(str(tiny_embedding_dir), dimensions=bad)  # type: ignore[arg-type]


def test_dimensions_above_the_hidden_size_is_a_value_error(tiny_embedding_dir: Path) -> None:
    emb = Embedder(str(tiny_embedding_dir), dimensions=65, device="cpu")
    with pytest.raises(ValueError, match=r"dimensions=65.*32 <= dimensions <= 64"):
        emb.embed_queries(["x"])


def test_concurrent_calls_from_threads_are_safe(tiny_embedding_dir: Path) -> None:
    emb = Embedder(str(tiny_embedding_dir), device="cpu")
    expected = emb.embed_documents(TEXTS)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(Embedder(str(tiny_embedding_dir), device="cpu").embed_documents(TEXTS))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 6
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)
