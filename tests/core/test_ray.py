"""Ray Data embedding: the local recipe's vectors, and an index that survives a dead actor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray  # the ray extra is in [all]; the missing-extra error is tested in tests/cli

from qwen3_rag import Embedder, cli
from qwen3_rag.distributed import embed_dataset, init_ray, ray_embed_step
from qwen3_rag.indexing import index_paths
from tests.cli.conftest import CHUNKING, read_db, write_corpus
from tests.models import REPO_ROOT
from tests.ray_faults import FAULTS_ENV, arm, calls, disarm
from tests.readme import link_models, python_blocks

SIZES = {"chunk_size": 40, "chunk_overlap": 8, "batch_size": 4}


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One quiet local Ray (2 CPUs) for the module; its workers can be told to crash."""
    folder = tmp_path_factory.mktemp("ray-faults")
    init_ray(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            # Actors import this checkout's qwen3_rag and tests, as the driver does.
            "env_vars": {"PYTHONPATH": str(REPO_ROOT), FAULTS_ENV: str(folder)},
            "worker_process_setup_hook": "tests.ray_faults.install",
        },
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield folder
    finally:
        ray.shutdown()


def test_embed_dataset_gives_the_local_vectors(faults: Path, tiny_embedding_dir: Path) -> None:
    texts = [
        "The capital of China is Beijing.",
        "Gravity is a force that attracts two bodies towards each other. " * 6,  # truncated
        "",
        "Ünïcödé, 中文, emoji 🙂",
        *(f"Short document number {i}." for i in range(9)),
    ]
    embedder = Embedder(
        str(tiny_embedding_dir), dimensions=32, max_length=24, instruction="semantic_similarity"
    )
    rows = [{"id": f"doc-{i}", "text": t} for i, t in enumerate(texts)]
    started = time.perf_counter()
    out = embed_dataset(ray.data.from_items(rows), embedder, concurrency=2, batch_size=4)
    got = {r["id"]: (r["text"], np.asarray(r["embedding"])) for r in out.take_all()}
    print(f"embed_dataset: {time.perf_counter() - started:.1f}s")
    expected = embedder.embed_documents(texts)  # this process: the same settings, one model
    assert sorted(got) == sorted(r["id"] for r in rows)
    for i, text in enumerate(texts):
        assert got[f"doc-{i}"][0] == text
        assert got[f"doc-{i}"][1].shape == (32,)
        assert np.abs(got[f"doc-{i}"][1] - expected[i]).max() <= 1e-5

    with pytest.raises(ValueError, match="text_column 'body'"):
        embed_dataset(ray.data.from_items(rows), embedder, text_column="body")
    with pytest.raises(ValueError, match="concurrency"):
        embed_dataset(ray.data.from_items(rows), embedder, concurrency=0)


def test_an_embed_step_with_other_settings_is_refused(
    tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    docs = write_corpus(tmp_path / "docs")
    step = ray_embed_step(Embedder(str(tiny_embedding_dir), dimensions=32))  # Ray not needed
    with pytest.raises(ValueError, match="other settings than the collection's"):
        index_paths([docs], db=tmp_path / "db", model=str(tiny_embedding_dir), embed=step)


def test_index_survives_a_dead_actor(
    faults: Path,
    tiny_embedding_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docs = write_corpus(tmp_path / "docs")
    for i in range(3):  # more chunks: several batches
        (docs / f"extra-{i}.md").write_text(
            "\n\n".join(f"Extra {i}.{j}: vectors of similar texts are close." for j in range(6))
        )
    model = str(tiny_embedding_dir)
    plain = index_paths([docs], db=tmp_path / "plain", model=model, **SIZES)
    total = plain.chunks_stored
    assert total >= 12

    # Windows of two batches (one dataset, one actor each): the second window's actor
    # crashes at its first batch (the third overall); with no restarts the run fails.
    embedder = Embedder(model)
    arm(faults, die_at=3)
    with pytest.raises(ray.exceptions.RayError, match="died") as failed:
        index_paths(
            [docs],
            db=tmp_path / "db",
            model=model,
            embed=ray_embed_step(embedder, max_restarts=0, window=2 * SIZES["batch_size"]),
            **SIZES,
        )
    print(f"first run failed with {type(failed.value).__name__} after {calls(faults)} batches")
    assert calls(faults) == 3
    assert not (faults / "die_at").exists()  # the fault fired
    before = read_db(tmp_path / "db") if (tmp_path / "db" / "chroma.sqlite3").exists() else {}
    assert len(before) == 2 * SIZES["batch_size"]  # the first window's batches are kept

    # The same command again, through the CLI on Ray, where an actor crashes again at its
    # second batch: Ray Data's default restarts the actor and retries the batch, and the run
    # finishes, embedding only what is missing.
    arm(faults, die_at=2)
    monkeypatch.chdir(tmp_path)
    assert (
        cli.main(["index", str(docs), "--db", "db", "--embed-model", model, "--ray", *CHUNKING])
        == 0
    )
    summary = next(line for line in capsys.readouterr().out.splitlines() if "embedded" in line)
    assert not (faults / "die_at").exists()  # the actor did crash
    assert calls(faults) == 2  # the restarted actor is not armed
    disarm(faults)
    embedded = int(summary.split(" chunks embedded")[0])
    reused = int(summary.split(" reused")[0].rsplit(" ", 1)[1])
    assert embedded + reused == total - len(before)

    after, expected = read_db(tmp_path / "db"), read_db(tmp_path / "plain")
    assert sorted(after) == sorted(expected)  # nothing lost, nothing twice
    for id_, record in expected.items():
        assert after[id_]["document"] == record["document"]
        assert after[id_]["metadata"] == record["metadata"]
        assert np.abs(np.subtract(after[id_]["embedding"], record["embedding"])).max() <= 1e-5


def test_readme_ray_snippet_runs(
    faults: Path,
    tiny_embedding_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    link_models(tmp_path, embedding=tiny_embedding_dir)
    code = python_blocks("## Ray and a Chroma server")[1]
    assert "embed_dataset" in code and "init_ray(num_cpus=2)" in code
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "[('beijing', (32,)), ('gravity', (32,))]"
