"""Indexing end to end: the time outside the model, and the cost of a re-index after one edit.

``python -m benchmarks.indexing`` runs :func:`qwen3_rag.indexing.index_paths` with a
random-weight model of the exact Qwen3-Embedding-0.6B shape and the real tokenizer (built once
under ``benchmarks/.cache``), float32 on this machine's CPU, and prints two tables:

* **Outside the model**: a fixed slice of this repository (README.md and two core modules,
  copied to a temporary folder) indexed into a fresh store. The time inside the model is every
  ``Embedder.embed_documents`` call, timed from outside the indexer (so the same probe measures
  any version of it); the rest of the wall time (reading, chunking, hashing, store reads and
  writes, threads) is what the indexer adds. Best of ``--rounds``.
* **Re-index after one edit**: a 50-chunk file indexed from scratch, then one paragraph in its
  middle rewritten and the folder indexed again: chunks embedded and wall time of the second
  run, as a share of the first.

``--tiny`` uses a two-layer model instead (a smoke run: there the model is so fast that the
indexer's own work dominates, which is what the share measures).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import models

REPO = Path(__file__).resolve().parent.parent
SLICE = ["README.md", "qwen3_rag/instructions.py", "qwen3_rag/batching.py"]


@contextmanager
def model_clock() -> Iterator[list[float]]:
    """Time every ``Embedder.embed_documents`` call (seconds, appended to the yielded list)."""
    from qwen3_rag import Embedder

    spent: list[float] = []
    real = Embedder.embed_documents

    def timed(self: Any, texts: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(self, texts, **kwargs)
        finally:
            spent.append(time.perf_counter() - start)

    Embedder.embed_documents = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Embedder.embed_documents = real  # type: ignore[method-assign]


def index(folder: Path, db: Path, model: Path, chunk_size: int) -> tuple[Any, float, float]:
    """One ``index_paths`` run: (stats, wall seconds, seconds inside the model)."""
    from qwen3_rag.indexing import index_paths

    with model_clock() as spent:
        start = time.perf_counter()
        stats = index_paths(
            [folder],
            db=db,
            model=str(model),
            device="cpu",
            chunk_size=chunk_size,
            chunk_overlap=chunk_size // 8,
        )
        wall = time.perf_counter() - start
    return stats, wall, sum(spent)


def fifty_chunk_file(edited: bool) -> str:
    """About 50 paragraphs of README prose, each near 100 tokens; one rewritten if ``edited``."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    prose = [p.replace("\n", " ") for p in readme.split("\n\n") if len(p) > 200 and "`" not in p]
    paragraphs = [f"Part {i}. {prose[i % len(prose)][:420]}" for i in range(50)]
    if edited:
        paragraphs[25] = "Part 25. This paragraph was rewritten from scratch, " + "new words " * 30
    return "\n\n".join(paragraphs) + "\n"


def outside_the_model(
    model: Path, rounds: int, chunk_size: int, work: Path, files: list[str]
) -> dict[str, float]:
    """Index the repository slice ``rounds`` times into fresh stores; the best round."""
    corpus = work / "slice"
    for name in files:
        target = corpus / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / name, target)
    runs = []
    for r in range(rounds):
        stats, wall, inside = index(corpus, work / f"slice_db{r}", model, chunk_size)
        runs.append({"wall": wall, "model": inside, "chunks": stats.chunks_embedded})
    best = min(runs, key=lambda run: run["wall"])
    best["outside"] = (best["wall"] - best["model"]) / best["wall"]
    best["outside_median"] = statistics.median((r["wall"] - r["model"]) / r["wall"] for r in runs)
    return best


def reindex_cost(model: Path, work: Path) -> dict[str, float]:
    """A 50-chunk file from scratch, then after one edited paragraph."""
    folder = work / "fifty"
    folder.mkdir()
    (folder / "long.md").write_text(fifty_chunk_file(edited=False), encoding="utf-8")
    db = work / "fifty_db"
    scratch, scratch_wall, _ = index(folder, db, model, 128)
    (folder / "long.md").write_text(fifty_chunk_file(edited=True), encoding="utf-8")
    again, again_wall, _ = index(folder, db, model, 128)
    return {
        "chunks": scratch.chunks_embedded,
        "scratch_wall": scratch_wall,
        "embedded": again.chunks_embedded,
        "reused": getattr(again, "chunks_reused", 0),
        "again_wall": again_wall,
    }


def main(argv: list[str] | None = None) -> int:
    """Print both tables; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.indexing", description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="indexing rounds (best counts)")
    parser.add_argument("--chunk-size", type=int, default=256, help="tokens per chunk (256)")
    parser.add_argument("--tiny", action="store_true", help="a two-layer model (smoke run)")
    parser.add_argument("--cache", type=Path, default=models.CACHE, help="model cache folder")
    parser.add_argument(
        "--slice", nargs="+", default=SLICE, metavar="FILE", help="repository files to index"
    )
    args = parser.parse_args(argv)

    shape, name = (models.TINY, "tiny") if args.tiny else (models.QWEN3_06B, "qwen3-0.6b")
    model = models.build(args.cache / f"{name}-embedding", "embedding", shape=shape)
    from qwen3_rag import Embedder

    Embedder(str(model), device="cpu").embed_documents(["warm up"])  # load once, untimed
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        o = outside_the_model(model, args.rounds, args.chunk_size, work, args.slice)
        r = reindex_cost(model, work)
    print(f"## Indexing, {name} float32 CPU, chunk_size {args.chunk_size}\n")
    print("| chunks | wall s | model s | outside the model (best) | (median) |")
    print("|---:|---:|---:|---:|---:|")
    print(
        f"| {o['chunks']:.0f} | {o['wall']:.1f} | {o['model']:.1f} | {o['outside']:.1%} "
        f"| {o['outside_median']:.1%} |\n"
    )
    print("## Re-index after editing one paragraph of a 50-chunk file (chunk_size 128)\n")
    print("| chunks | scratch s | embedded again | reused | again s | chunks share | time share |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {r['chunks']:.0f} | {r['scratch_wall']:.1f} | {r['embedded']:.0f} "
        f"| {r['reused']:.0f} | {r['again_wall']:.1f} | {r['embedded'] / r['chunks']:.1%} "
        f"| {r['again_wall'] / r['scratch_wall']:.1%} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
