from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# The suite never downloads: only the opt-in real-weights tests may reach the hub.
if os.environ.get("QWEN3_RAG_REAL_MODELS") != "1":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Engine artefacts and fidelity records of the suite stay in a temporary folder, never in the
# user's cache (tests that need a fresh one set their own).
os.environ["QWEN3_RAG_ENGINE_CACHE"] = tempfile.mkdtemp(prefix="qwen3-rag-engines-")

import pytest
import torch

from tests.models import (
    FIXTURES_MISSING,
    QWEN3_EMBEDDING_TOKENIZER,
    QWEN3_TOKENIZER,
    build_model,
    train_tiny_tokenizer,
)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BPE tokenizer with the Qwen special tokens, that does not append EOS."""
    return train_tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def tiny_embedding_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A tiny random Qwen3-Embedding model folder (bf16 safetensors, tiny tokenizer)."""
    return build_model(tmp_path_factory.mktemp("emb"), tiny_tokenizer_dir, kind="embedding")


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer_dir: Path) -> Path:
    """A tiny random Qwen3-Reranker model folder (bf16 safetensors, tiny tokenizer)."""
    return build_model(tmp_path_factory.mktemp("rr"), tiny_tokenizer_dir, kind="reranker", seed=1)


def _require_fixtures() -> None:
    if not QWEN3_TOKENIZER.is_dir() or not QWEN3_EMBEDDING_TOKENIZER.is_dir():
        pytest.skip(FIXTURES_MISSING)


@pytest.fixture(scope="session")
def real_embedding_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random Qwen3-Embedding weights beside the real Qwen3-Embedding tokenizer."""
    _require_fixtures()
    return build_model(
        tmp_path_factory.mktemp("real_emb"), QWEN3_EMBEDDING_TOKENIZER, kind="embedding"
    )


@pytest.fixture(scope="session")
def real_reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random Qwen3-Reranker weights beside the real Qwen3 tokenizer."""
    _require_fixtures()
    return build_model(tmp_path_factory.mktemp("real_rr"), QWEN3_TOKENIZER, kind="reranker", seed=1)


@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Chroma server (``chroma run``) on a free loopback port.

    Shared by the session: each test uses collections of its own names.
    """
    from tests.chroma_server import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma-server") / "data") as url:
        yield url


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Run a module of many small tiny-model calls on one torch thread (restored afterwards).

    The tiny models gain nothing from intra-op threads, while on a busy 2-core machine the
    OpenMP hand-off around every small op made each call 10-20x slower (measured: 12 ms per
    tiny-model call with one thread, 130-220 ms with two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def engine_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A fresh engine cache (artefacts, fidelity records), and no model left loaded."""
    from qwen3_rag import clear_cache
    from qwen3_rag.fidelity import ENGINE_CACHE_ENV

    folder = tmp_path / "engines"
    monkeypatch.setenv(ENGINE_CACHE_ENV, str(folder))
    clear_cache()
    yield folder
    clear_cache()
