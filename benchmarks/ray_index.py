"""``python -m benchmarks.ray_index``: the Ray path of ``qwen3-rag index`` against the plain one.

The same chunks (generated prose, ``--chunks`` chunks of about ``--chunk-size`` tokens) are
indexed into fresh embedded stores by :func:`qwen3_rag.indexing.index_paths`, once with the
model in this process (torch on every usable core) and once per Ray layout with
:func:`qwen3_rag.distributed.ray_embed_step` on a local Ray (``ray.init`` with no cluster):
one actor with every core, and one actor per core. The model has the exact
Qwen3-Embedding-0.6B shape (random weights, real tokenizer), float32 on this machine's CPU
(``--tiny``: a two-layer model, a smoke run where Ray's fixed costs dominate).

The plain path runs first and again last (the gap between the two is the machine's drift).
Reported per row: wall time, its ratio to the mean of the two plain runs (the overhead Ray
adds here, where it has no more cores to use than the plain path), Ray's start
(``ray.init``, once), and the largest difference between the stored vectors and the plain
path's (they must agree).

Example:
    python -m benchmarks.ray_index                    # 0.6B shape, prints a Markdown table
    python -m benchmarks.ray_index --tiny --chunks 16  # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import models


def write_corpus(folder: Path, chunks: int, chunk_size: int) -> None:
    """Files of numbered paragraphs, each about ``chunk_size`` tokens (one chunk each)."""
    folder.mkdir(parents=True)
    words = max(8, int(chunk_size * 0.7))
    for f in range((chunks + 7) // 8):
        paragraphs = [
            f"Part {f}.{i}. "
            + " ".join(f"word{(f * 131 + i * 17 + k * 7) % 997}" for k in range(words))
            for i in range(min(8, chunks - 8 * f))
        ]
        (folder / f"file{f:03d}.md").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")


def vectors(db: Path) -> dict[str, np.ndarray]:
    from qwen3_rag.store import open_client

    got = open_client(db).get_collection("docs").get(include=["embeddings"])
    return {
        i: np.asarray(e, dtype=np.float32)
        for i, e in zip(got["ids"], got["embeddings"], strict=True)
    }


def index(folder: Path, db: Path, model: Path, chunk_size: int, embed: Any = None) -> float:
    from qwen3_rag.indexing import index_paths

    start = time.perf_counter()
    stats = index_paths(
        [folder],
        db=db,
        model=str(model),
        device="cpu",
        chunk_size=chunk_size,
        chunk_overlap=0,
        embed=embed,
    )
    wall = time.perf_counter() - start
    assert stats.chunks_embedded == stats.chunks_stored, stats
    return wall


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray

    from qwen3_rag import Embedder, tune_cpu_threads
    from qwen3_rag.distributed import init_ray, ray_embed_step
    from qwen3_rag.loading import cpu_threads

    shape, name = (models.TINY, "tiny") if args.tiny else (models.QWEN3_06B, "qwen3-0.6b")
    model = models.build(args.cache / f"{name}-embedding", "embedding", shape=shape)
    cores = cpu_threads()
    tune_cpu_threads()
    Embedder(str(model), device="cpu").embed_documents(["warm up"])  # page the weights in
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_corpus(work / "docs", args.chunks, args.chunk_size)
        plain = index(work / "docs", work / "plain", model, args.chunk_size)
        reference = vectors(work / "plain")
        rows.append({"path": f"plain, torch {cores} threads", "wall": plain, "diff": 0.0})
        start = time.perf_counter()
        init_ray(
            num_cpus=cores,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
        )
        ray.data.DataContext.get_current().enable_progress_bars = False
        ray_start = time.perf_counter() - start
        layouts = args.layouts or [(1, cores)] + ([(cores, 1)] if cores > 1 else [])
        try:
            embedder = Embedder(str(model), device="cpu")
            for actors, cpus in layouts:
                db = work / f"ray-{actors}x{cpus}"
                step = ray_embed_step(embedder, concurrency=actors, num_cpus=cpus)
                wall = index(work / "docs", db, model, args.chunk_size, embed=step)
                got = vectors(db)
                assert got.keys() == reference.keys()
                diff = max(float(np.abs(got[k] - reference[k]).max()) for k in got)
                rows.append(
                    {
                        "path": f"Ray, {actors} actor(s) x {cpus} CPU",
                        "wall": wall,
                        "diff": diff,
                        "ray_start": ray_start,
                    }
                )
        finally:
            ray.shutdown()
        # The plain path again, after Ray: the machine's drift shows as the gap between the two.
        again = index(work / "docs", work / "plain-again", model, args.chunk_size)
        rows.append({"path": f"plain again, torch {cores} threads", "wall": again, "diff": 0.0})
    baseline = (plain + again) / 2
    for row in rows:
        row["ratio"] = row["wall"] / baseline
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    name = "tiny" if args.tiny else "qwen3-0.6b shape"
    lines = [
        f"## Ray index vs plain index ({name}, float32 CPU, {args.chunks} chunks of "
        f"~{args.chunk_size} tokens, {platform.machine()}, {os.cpu_count()} cores)",
        "",
        "| path | wall s | / plain (mean of both runs) | max abs vector diff |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['path']} | {r['wall']:.1f} | {r['ratio']:.2f} | {r['diff']:.1e} |")
    start = next((r["ray_start"] for r in rows if "ray_start" in r), None)
    if start is not None:
        lines += ["", f"Ray start (`ray.init`, once, not in the rows): {start:.1f} s."]
    return "\n".join(lines) + "\n"


def _layouts(value: str) -> list[tuple[int, int]]:
    try:
        return [(int(a), int(c)) for a, c in (x.split("x") for x in value.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected ACTORSxCPUS,...") from None


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_index", description=__doc__)
    parser.add_argument("--chunks", type=int, default=24, help="chunks to index (24)")
    parser.add_argument("--chunk-size", type=int, default=128, help="tokens per chunk (128)")
    parser.add_argument("--tiny", action="store_true", help="a two-layer model (smoke run)")
    parser.add_argument("--cache", type=Path, default=models.CACHE, help="model cache folder")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--layouts",
        type=_layouts,
        help="Ray layouts as ACTORSxCPUS, comma-separated (default: 1xCORES,CORESx1)",
    )
    args = parser.parse_args(argv)
    table = markdown(run(args), args)
    print(table)
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
