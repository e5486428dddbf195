from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from qwen3_rag import clear_cache
from tests.adapt.fakes import FakeLLM, write_corpus

#: Settings of the shared adaptation run: the tiny random model's cosine similarities sit
#: between ~0.2 and ~0.8, so the report's 0.7 threshold would drop most pairs; 0.3 drops a
#: few (the filter path runs) and keeps enough to learn from.
TINY_THRESHOLD = 0.3


@contextmanager
def single_thread() -> Iterator[None]:
    """Tiny models run faster on one thread (and far faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with single_thread():
        yield


def run_settings(tiny_embedding_dir: Path) -> dict[str, object]:
    from qwen3_rag.adapt import TrainConfig

    return {
        "base_model": str(tiny_embedding_dir),
        "threshold": TINY_THRESHOLD,
        "chunk_size": 200,
        "chunk_overlap": 10,
        "test_fraction": 0.3,
        "train": TrainConfig(
            epochs=5, batch_size=8, learning_rate=1e-2, lora_r=8, lora_alpha=16, max_length=128
        ),
        "show_progress": False,
    }


@pytest.fixture(scope="session")
def adapted(
    tmp_path_factory: pytest.TempPathFactory, tiny_embedding_dir: Path
) -> tuple[object, Path, Path]:
    """One full adaptation run on the tiny model: (summary, output folder, corpus folder)."""
    from qwen3_rag.adapt import adapt

    root = tmp_path_factory.mktemp("adapt")
    corpus = write_corpus(root / "docs", 100)
    out = root / "out"
    with single_thread():
        summary = adapt([corpus], llm=FakeLLM(), out=out, **run_settings(tiny_embedding_dir))  # type: ignore[arg-type]
    clear_cache()
    return summary, out, corpus
