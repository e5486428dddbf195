"""CPU paths side by side: ``precision="fast"``, bfloat16, int8 and ONNX Runtime against float32.

``python -m benchmarks.precision`` measures, in one run on the random-weight models with the
exact 0.6B shapes (``benchmarks.models``, real tokenizers):

* **Embedding** the same real paragraphs (``benchmarks.run.corpus``) through every CPU path
  (:data:`qwen3_rag.cpu.CPU_PATHS`): tokens per second against this package's float32 path
  and the smallest cosine to its vectors; best of ``--repeats``.
* **sentence-transformers' own backends** on the same texts (ONNX dynamic int8, OpenVINO
  float32 and int8 weights), run by :mod:`benchmarks.st_backends` in the environment given by
  ``--peers-python`` (those backends need ``optimum``, which pins transformers 4).
* **Reranking** 20 and 100 candidates for one query: pairs per second against float32 and
  the largest score difference from it.
* **Building the ONNX artefacts** (export + int8 quantization): seconds and disk size, from
  the fidelity records the first build writes (``--fresh`` rebuilds them).
* **End to end with ``precision="fast"``** (``--e2e``): ``benchmarks.e2e`` with ours on the
  fast path: indexing a folder and asking a question against the LangChain and LlamaIndex
  paths (float32 Hugging Face models, as their users run them).

The report names the machine's CPU flags (a speed claim holds for the instruction set it was
measured on) and says which path won. ``--results FILE`` replaces (or appends) its section.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import models
from benchmarks.host import machine, write_section
from benchmarks.run import corpus

logger = logging.getLogger("benchmarks")

HEADING = "## CPU paths: precision='fast', bfloat16, int8 and ONNX Runtime against float32"
QUERY = "How do I read a file line by line and strip the trailing newline?"
#: The paths measured (names of ``qwen3_rag.cpu.CPU_PATHS``), float32 first.
PATHS = ("exact", "bfloat16", "int8", "onnx", "onnx-int8", "fast")


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(axis=1).min())


def _free() -> None:
    from qwen3_rag import clear_cache

    clear_cache()
    gc.collect()


def embedding(folder: Path, texts: list[str], paths: list[str], repeats: int) -> dict[str, Any]:
    """Tokens per second and min cosine to float32 of each path on ``texts``."""
    from qwen3_rag import Embedder
    from qwen3_rag.cpu import CPU_PATHS

    out: dict[str, Any] = {}
    reference: np.ndarray | None = None
    tokens = 0
    for path in paths:
        emb = Embedder(str(folder), device="cpu", **CPU_PATHS[path])  # type: ignore[arg-type]
        start = time.perf_counter()
        emb.load()
        load = time.perf_counter() - start
        tokens = tokens or sum(len(ids) for ids in emb.token_ids(texts))
        emb.embed_documents(texts[:2])  # warm-up
        best, vectors = float("inf"), np.empty(0)
        for _ in range(repeats):
            start = time.perf_counter()
            vectors = emb.embed_documents(texts)
            best = min(best, time.perf_counter() - start)
        if reference is None:
            reference = vectors
        fidelity = emb.fidelity()
        out[path] = {
            "identity": str(emb.identity()),
            "seconds": best,
            "tokens_per_s": tokens / best,
            "min_cosine": _min_cosine(reference, vectors),
            "load_seconds": load,
            "probe": fidelity.to_json() if fidelity is not None else None,
        }
        logger.info("embedding, %s: %.0f tok/s", path, tokens / best)
        del emb
        _free()
    return {"texts": len(texts), "tokens": tokens, "paths": out, "reference": reference}


def peers(
    python: str, folder: Path, cache: Path, texts: list[str], reference: np.ndarray, repeats: int
) -> dict[str, Any]:
    """sentence-transformers' backends (:mod:`benchmarks.st_backends`) in ``python``."""
    from benchmarks.run import QUERY_PROMPT

    st_dir = models.sentence_transformers_folder(folder, cache / f"{folder.name}-st", QUERY_PROMPT)
    with tempfile.TemporaryDirectory(prefix="qwen3-st-") as tmp:
        work = Path(tmp)
        (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        run = subprocess.run(
            [
                python,
                "-m",
                "benchmarks.st_backends",
                str(st_dir),
                str(work / "texts.json"),
                str(work / "out"),
                "--repeats",
                str(repeats),
            ],
            cwd=Path(__file__).resolve().parent.parent,
            capture_output=True,
            text=True,
        )
        results_file = work / "out" / "results.json"
        if not results_file.is_file():
            return {"error": (run.stderr.strip().splitlines() or ["no output"])[-1]}
        results: dict[str, Any] = json.loads(results_file.read_text(encoding="utf-8"))
        for r in results.values():
            if "file" in r:
                r["min_cosine"] = _min_cosine(reference, np.load(work / "out" / r.pop("file")))
    return results


def reranking(folder: Path, counts: list[int], paths: list[str], repeats: int) -> dict[str, Any]:
    """Pairs per second and largest score difference from float32, per candidate count."""
    from qwen3_rag import Reranker
    from qwen3_rag.cpu import CPU_PATHS

    docs = corpus(max(counts))
    out: dict[str, Any] = {}
    references: dict[int, np.ndarray] = {}
    for path in paths:
        rr = Reranker(str(folder), device="cpu", **CPU_PATHS[path])  # type: ignore[arg-type]
        rr.load()
        rr.score(QUERY, docs[:2])  # warm-up
        row: dict[str, Any] = {"identity": str(rr.identity())}
        for n in counts:
            best, scores = float("inf"), np.empty(0)
            for _ in range(repeats if n <= 20 else 1):
                start = time.perf_counter()
                scores = np.array(rr.score(QUERY, docs[:n]))
                best = min(best, time.perf_counter() - start)
            references.setdefault(n, scores)
            row[str(n)] = {
                "seconds": best,
                "pairs_per_s": n / best,
                "max_score_diff": float(np.abs(scores - references[n]).max()),
            }
            logger.info("reranking %d, %s: %.1f pairs/s", n, path, n / best)
        fidelity = rr.fidelity()
        row["probe"] = fidelity.to_json() if fidelity is not None else None
        out[path] = row
        del rr
        _free()
    return {"counts": counts, "paths": out}


def end_to_end(cache: Path) -> dict[str, Any]:
    """``benchmarks.e2e`` with ours on ``precision="fast"`` (the QUICK sizes)."""
    from benchmarks.run import CE_TEMPLATE, QUICK, e2e_section

    emb_dir = models.build(cache / "embedding-0.6b", "embedding")
    rr_dir = models.build(cache / "reranker-0.6b", "reranker", seed=1)
    ce_dir = models.without_chat_template(rr_dir, cache / "reranker-0.6b-ce")
    (ce_dir / "chat_template.jinja").write_text(CE_TEMPLATE)
    return e2e_section(QUICK, emb_dir, rr_dir, ce_dir, cache, "0.6b", precision="fast")


def _ratio_row(name: str, value: float, floor: float) -> str:
    return f"| {name} | {value:.2f} | {'met' if value >= floor else '**missed**'} |"


def report(d: dict[str, Any]) -> str:
    """The markdown section."""
    emb, rr = d["embedding"], d["reranking"]
    base = emb["paths"]["exact"]["tokens_per_s"]
    fast_identity = emb["paths"]["fast"]["identity"]
    lines = [
        HEADING,
        "",
        f"`python -m benchmarks.precision`: random weights with the exact 0.6B shapes, real "
        f"tokenizers; {emb['texts']} real paragraphs ({emb['tokens']} tokens) embedded as "
        f"documents, best of {d['repeats']}; one query against "
        f"{' and '.join(map(str, rr['counts']))} paragraphs (best of {d['repeats']} for up to "
        f"20, else one run). "
        f"Machine: {d['machine']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in d["versions"].items())
        + f". `precision='fast'` chose here: {fast_identity}.",
        "",
        "### Embedding",
        "",
        "| path | identity | tok/s | vs float32 | min cosine vs float32 | probe min cosine |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for path, r in emb["paths"].items():
        probe = f"{r['probe']['value']:.5f}" if r["probe"] else "exact"
        lines.append(
            f"| {path} | {r['identity'].split(' ', 1)[1]} | {r['tokens_per_s']:.0f} | "
            f"{r['tokens_per_s'] / base:.2f}x | {r['min_cosine']:.5f} | {probe} |"
        )
    peer_rate = 0.0
    if d.get("peers"):
        lines += ["", "sentence-transformers' own backends (same texts, same token count):", ""]
        lines += ["| backend | tok/s | vs our float32 | min cosine vs our float32 |"]
        lines += ["|---|---:|---:|---:|"]
        for name, r in d["peers"].items():
            if not isinstance(r, dict) or "seconds" not in r:
                why = r.get("error") if isinstance(r, dict) else r
                lines.append(f"| {name} | failed: {why} | | |")
                continue
            rate = emb["tokens"] / r["seconds"]
            peer_rate = max(peer_rate, rate)
            lines.append(f"| {name} | {rate:.0f} | {rate / base:.2f}x | {r['min_cosine']:.5f} |")
    lines += ["", "### Reranking", ""]
    columns = " | ".join(f"{n} cand. pairs/s | vs float32 | max score diff" for n in rr["counts"])
    lines += [f"| path | identity | {columns} |"]
    lines += ["|---|---|" + "---:|---:|---:|" * len(rr["counts"])]
    for path, r in rr["paths"].items():
        cells = []
        for n in rr["counts"]:
            c = r[str(n)]
            ratio = c["pairs_per_s"] / rr["paths"]["exact"][str(n)]["pairs_per_s"]
            cells.append(f"{c['pairs_per_s']:.2f} | {ratio:.2f}x | {c['max_score_diff']:.4f}")
        lines.append(f"| {path} | {r['identity'].split(' ', 1)[1]} | " + " | ".join(cells) + " |")
    builds = [
        (kind, path, r["probe"]["details"])
        for kind, section in (("embedder", emb["paths"]), ("reranker", rr["paths"]))
        for path, r in section.items()
        if path.startswith("onnx") and r.get("probe") and "build_seconds" in r["probe"]["details"]
    ]
    if builds:
        lines += ["", "### Building the ONNX artefacts (once per model identity)", ""]
        lines += ["| model | path | export + quantize s | disk MB |", "|---|---|---:|---:|"]
        for kind, path, det in builds:
            lines.append(
                f"| {kind} | {path} | {det['build_seconds']:.0f} | {det['disk_bytes'] / 1e6:.0f} |"
            )
    best_embed = max(emb["paths"], key=lambda p: emb["paths"][p]["tokens_per_s"])
    n = str(max(rr["counts"]))
    best_rerank = max(rr["paths"], key=lambda p: rr["paths"][p][n]["pairs_per_s"])
    rerank_gain = (
        rr["paths"][best_rerank][n]["pairs_per_s"] / rr["paths"]["exact"][n]["pairs_per_s"]
    )
    lines += [
        "",
        f"Fastest here: embedding `{best_embed}` "
        f"({emb['paths'][best_embed]['tokens_per_s'] / base:.2f}x float32), reranking {n} "
        f"candidates `{best_rerank}` ({rerank_gain:.2f}x).",
    ]
    fast = emb["paths"]["fast"]
    rows = [
        _ratio_row("embedding: fast >= 2.5x float32", fast["tokens_per_s"] / base, 2.5),
        f"| embedding: fast min cosine >= 0.995 | {fast['min_cosine']:.5f} | "
        f"{'met' if fast['min_cosine'] >= 0.995 else '**missed**'} |",
    ]
    if peer_rate:
        rows.append(
            _ratio_row(
                "embedding: fast >= 1.2x sentence-transformers' best quantized backend",
                fast["tokens_per_s"] / peer_rate,
                1.2,
            )
        )
    for n in rr["counts"]:
        f, e = rr["paths"]["fast"][str(n)], rr["paths"]["exact"][str(n)]
        rows.append(
            _ratio_row(f"rerank {n}: fast >= 2x float32", f["pairs_per_s"] / e["pairs_per_s"], 2)
        )
        rows.append(
            f"| rerank {n}: fast score diff <= 0.02 | {f['max_score_diff']:.4f} | "
            f"{'met' if f['max_score_diff'] <= 0.02 else '**missed**'} |"
        )
    if d.get("e2e"):
        ix, qa = d["e2e"]["indexing"]["paths"], d["e2e"]["questions"]["p50_s"]
        ours = ix["qwen3-rag index"]["seconds"]
        for peer in ("LangChain", "LlamaIndex"):
            rows.append(_ratio_row(f"indexing (fast) >= 2x {peer}", ix[peer]["seconds"] / ours, 2))
        for ours_name, peer in (
            ("ours (LangChain)", "LangChain CrossEncoderReranker"),
            ("ours (LlamaIndex)", "LlamaIndex SentenceTransformerRerank"),
        ):
            rows.append(
                _ratio_row(
                    f"question p50 (fast): {ours_name} >= 2x {peer}", qa[peer] / qa[ours_name], 2
                )
            )
    lines += ["", "### Targets", "", "| target | measured | |", "|---|---:|---|", *rows, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.precision", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--texts", type=int, default=24)
    parser.add_argument("--candidates", default="20,100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument(
        "--peers-python",
        help="python of an environment with sentence-transformers[onnx,openvino] "
        "(default: $QWEN3_RAG_PEERS_PYTHON)",
    )
    parser.add_argument("--e2e", action="store_true", help="also run benchmarks.e2e on 'fast'")
    parser.add_argument("--fresh", action="store_true", help="rebuild the ONNX artefacts")
    parser.add_argument("--cache", type=Path, default=models.CACHE)
    parser.add_argument("--output", type=Path, help="also write the section (and .json) here")
    parser.add_argument("--results", type=Path, help="replace (or append) the section here")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import onnxruntime  # type: ignore[import-untyped]
    import torch
    import transformers

    from qwen3_rag import tune_cpu_threads
    from qwen3_rag.fidelity import ENGINE_CACHE_ENV

    engines = args.cache / ("engines-tiny" if args.tiny else "engines")
    os.environ[ENGINE_CACHE_ENV] = str(engines)
    if args.fresh:
        shutil.rmtree(engines, ignore_errors=True)
    tune_cpu_threads()
    shape, tag = (models.TINY, "tiny") if args.tiny else (models.QWEN3_06B, "0.6b")
    emb_dir = models.build(args.cache / f"embedding-{tag}", "embedding", shape=shape)
    rr_dir = models.build(args.cache / f"reranker-{tag}", "reranker", shape=shape, seed=1)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if "exact" not in paths or "fast" not in paths:
        parser.error("--paths must include exact and fast (the ratios are against exact)")
    paths.remove("exact")
    paths.insert(0, "exact")
    started = time.perf_counter()
    texts = corpus(args.texts)
    emb = embedding(emb_dir, texts, paths, args.repeats)
    reference = emb.pop("reference")
    data: dict[str, Any] = {"embedding": emb, "repeats": args.repeats}
    python = args.peers_python or os.environ.get("QWEN3_RAG_PEERS_PYTHON")
    if python:
        data["peers"] = peers(python, emb_dir, args.cache, texts, reference, args.repeats)
    counts = [int(c) for c in args.candidates.split(",")]
    data["reranking"] = reranking(rr_dir, counts, paths, args.repeats)
    if args.e2e:
        data["e2e"] = end_to_end(args.cache)
    data["seconds"] = time.perf_counter() - started
    data["machine"] = machine()
    data["versions"] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    text = report(data)
    sys.stdout.write(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        args.output.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    if args.results:
        write_section(args.results, text, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
