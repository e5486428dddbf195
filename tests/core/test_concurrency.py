"""Many threads on shared models compute exactly what one thread does, and load each model once.

Every call is started by 64 threads released together (a barrier), mixing every public method
of embedders and rerankers that share their loaded models; each result must equal the same call
made sequentially (<= 1e-5).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, loaded_models
from tests.models import CORPUS

THREADS = 64

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # 128 small calls per test
QUERIES = ["What is the capital of China?", "Explain gravity", "", "python def main", "yes or no"]


def calls(
    emb: Embedder, emb_qa: Embedder, rr: Reranker, rr_custom: Reranker
) -> list[Callable[[], Any]]:
    """64 different calls: every public method, several objects per shared model."""
    out: list[Callable[[], Any]] = []
    for i in range(THREADS):
        q = QUERIES[i % len(QUERIES)] + f" #{i}"
        docs = [CORPUS[(i + j) % len(CORPUS)] for j in range(1 + i % 5)] + [""] * (i % 2)
        kind = i % 6
        if kind == 0:
            out.append(lambda q=q, docs=docs: emb.embed_queries([q, *docs[:1]]))
        elif kind == 1:
            out.append(lambda docs=docs: emb.embed_documents(docs))
        elif kind == 2:
            out.append(lambda q=q, docs=docs: emb_qa.embed_queries([q, *docs]))
        elif kind == 3:
            out.append(lambda q=q, docs=docs: rr.score(q, docs))
        elif kind == 4:
            out.append(lambda q=q, docs=docs: rr.rank(q, docs, top_n=2))
        else:
            pairs = [(QUERIES[j % len(QUERIES)], d) for j, d in enumerate(docs)]
            out.append(lambda pairs=pairs: rr_custom.score_pairs(pairs))
    return out


def run_together(jobs: list[Callable[[], Any]]) -> list[Any]:
    """Run every job in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(jobs))

    def start(job: Callable[[], Any]) -> Any:
        barrier.wait(timeout=60)
        return job()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return list(pool.map(start, jobs))


def assert_same(concurrent: list[Any], sequential: list[Any]) -> None:
    assert len(concurrent) == len(sequential)
    for got, expected in zip(concurrent, sequential, strict=True):
        if isinstance(expected, np.ndarray):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
        elif expected and isinstance(expected[0], tuple):  # rank: same order, same scores
            assert [i for i, _ in got] == [i for i, _ in expected]
            np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
        else:
            np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_64_threads_mixing_embed_and_rerank_equal_sequential(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    emb = Embedder(str(tiny_embedding_dir), device="cpu")
    emb_qa = Embedder(
        str(tiny_embedding_dir), device="cpu", dimensions=32, instruction="question_answering"
    )
    rr = Reranker(str(tiny_reranker_dir), device="cpu", batch_size=2)
    rr_custom = Reranker(
        str(tiny_reranker_dir), device="cpu", instruction="Find passages that mention a capital"
    )
    assert emb.key == emb_qa.key and rr.key == rr_custom.key  # two shared models, four objects
    jobs = calls(emb, emb_qa, rr, rr_custom)
    sequential = [job() for job in jobs]
    concurrent = run_together(jobs)
    assert_same(concurrent, sequential)


def test_64_threads_racing_to_first_use_load_each_model_once(
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fresh copies: models no other test has loaded in this process
    emb_dir = shutil.copytree(tiny_embedding_dir, tmp_path / "emb")
    rr_dir = shutil.copytree(tiny_reranker_dir, tmp_path / "rr")
    loads: list[str] = []
    lock = threading.Lock()
    for cls in (Embedder, Reranker):
        real = cls._load_runtime

        def counted(self: Any, real: Any = real) -> Any:
            with lock:
                loads.append(self.kind)
            return real(self)

        monkeypatch.setattr(cls, "_load_runtime", counted)

    def fresh_objects() -> tuple[Embedder, Embedder, Reranker, Reranker]:
        return (
            Embedder(str(emb_dir), device="cpu"),
            Embedder(str(emb_dir), device="cpu", dimensions=32, instruction="question_answering"),
            Reranker(str(rr_dir), device="cpu", batch_size=2),
            Reranker(str(rr_dir), device="cpu", instruction="Find passages that mention a capital"),
        )

    # each job builds its own objects, so all 64 meet the empty cache at the same moment
    def job(i: int) -> Callable[[], Any]:
        return lambda: calls(*fresh_objects())[i]()

    before = len(loaded_models())
    concurrent = run_together([job(i) for i in range(THREADS)])
    assert sorted(loads) == ["embedder", "reranker"]
    assert len(loaded_models()) == before + 2
    sequential = [c() for c in calls(*fresh_objects())]
    assert_same(concurrent, sequential)
