"""Speed and memory of the evaluation harness: ``python -m benchmarks.evaluation``.

1,000 queries over 100,000 random unit vectors of 1,024 dimensions (issue 11):
``qwen3_rag.evaluation.evaluate_vectors`` (blocked exact search, the run, and every default
metric through ``trec_eval``) against a bare ``torch`` matmul + top-k over the same arrays.
Times are interleaved round by round in one process (contention hits both alike) and each
side's best round counts; the extra peak memory of each side over the loaded arrays is measured
in a fresh process (VmHWM, reset after the arrays are built).
"""

from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qwen3_rag.evaluation import (
    DEFAULT_BLOCK_SIZE,
    DEFAULT_METRICS,
    evaluate_vectors,
    score_run,
)

MB = 2**20


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random unit vectors, built in place in chunks (no full-size temporaries)."""
    out = rng.standard_normal((n, dim), dtype=np.float32)
    for start in range(0, n, 8192):
        block = out[start : start + 8192]
        block /= np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
    return out


def make_data(queries: int, docs: int, dim: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    q = unit_vectors(queries, dim, rng)
    d = unit_vectors(docs, dim, rng)
    qids = [f"q{i}" for i in range(queries)]
    dids = [f"d{i:07d}" for i in range(docs)]
    qrels = {
        qid: {dids[j]: int(rng.integers(1, 3)) for j in rng.choice(docs, 3, replace=False)}
        for qid in qids
    }
    return {"q": q, "d": d, "qids": qids, "dids": dids, "qrels": qrels}


def bare(data: dict[str, Any], k: int, block_size: int) -> Any:
    """The floor: one full score matrix, one top-k."""
    with torch.inference_mode():
        scores = torch.from_numpy(data["q"]) @ torch.from_numpy(data["d"]).T
        return torch.topk(scores, k, dim=1)


def ours(data: dict[str, Any], k: int, block_size: int) -> Any:
    """The harness: blocked exact search + the run + every default metric (trec_eval)."""
    return evaluate_vectors(
        data["q"], data["d"], data["qids"], data["dids"], data["qrels"], k=k,
        block_size=block_size,
    )  # fmt: skip


METHODS: dict[str, Callable[[dict[str, Any], int, int], Any]] = {
    "bare": bare,
    "ours": ours,
}


def _status(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"no {field} in /proc/self/status")


def probe(args: argparse.Namespace) -> None:
    """In a fresh process: the peak memory one method adds over the loaded arrays (MB)."""
    import importlib

    for module in ("pytrec_eval", "scipy.stats"):  # libraries loaded before the baseline
        importlib.import_module(module)

    data = make_data(args.queries, args.docs, args.dim)
    tiny = make_data(4, 64, args.dim, seed=1)  # warm the code paths (allocator, trec_eval)
    METHODS[args.probe](tiny, 10, 16)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _status("VmRSS")
    except OSError:
        base = _status("VmHWM")
    METHODS[args.probe](data, args.k, args.block_size)
    print(json.dumps({"base_mb": base, "peak_mb": _status("VmHWM")}))


def measure_memory(args: argparse.Namespace, method: str, block_size: int) -> float:
    cmd = [
        sys.executable, "-m", "benchmarks.evaluation", "--probe", method,
        "--queries", str(args.queries), "--docs", str(args.docs), "--dim", str(args.dim),
        "--k", str(args.k), "--block-size", str(block_size),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return float(result["peak_mb"] - result["base_mb"])


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run(args: argparse.Namespace) -> str:
    data = make_data(args.queries, args.docs, args.dim)
    small = max(1024, args.block_size // 4)
    best: dict[str, float] = {}
    parts: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, fn, block in (
            ("bare", bare, args.block_size),
            ("ours", ours, args.block_size),
            ("ours_small", ours, small),
        ):
            seconds, out = timed(functools.partial(fn, data, args.k, block))
            best[name] = min(best.get(name, float("inf")), seconds)
            if name == "ours":
                run_, _ = out
                t_metrics, _ = timed(functools.partial(score_run, data["qrels"], run_))
                parts["metrics"] = min(parts.get("metrics", float("inf")), t_metrics)

    memory = {
        "bare": measure_memory(args, "bare", args.block_size),
        "ours": measure_memory(args, "ours", args.block_size),
        "ours_small": measure_memory(args, "ours", small),
    }
    score_matrix = args.queries * args.docs * 4 / MB
    buffer = min(1024, args.queries) * min(args.block_size, args.docs) * 4 / MB
    ratio = best["ours"] / best["bare"]
    ratio_small = best["ours_small"] / best["bare"]
    bounded = memory["ours"] < score_matrix / 2 and memory["ours_small"] < memory["ours"]
    from benchmarks.host import machine

    lines = [
        f"## Exact search + metrics: {args.queries:,} queries x {args.docs:,} documents x "
        f"{args.dim:,} dimensions, k={args.k}",
        "",
        f"{machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; best of "
        f"{args.rounds} interleaved rounds. Metrics: {', '.join(DEFAULT_METRICS)}.",
        "",
        "| | time | vs bare | extra peak memory |",
        "|---|---:|---:|---:|",
        f"| bare torch matmul + top-k | {best['bare']:.2f} s | 1.00x | {memory['bare']:,.0f} MB |",
        f"| `evaluate_vectors`, block {args.block_size:,} (search + run + metrics) | "
        f"{best['ours']:.2f} s | {ratio:.2f}x | {memory['ours']:,.0f} MB |",
        f"| &nbsp;&nbsp;of which the metrics (`score_run`, trec_eval) | {parts['metrics']:.2f} s "
        f"| | |",
        f"| `evaluate_vectors`, block {small:,} | {best['ours_small']:.2f} s | "
        f"{ratio_small:.2f}x | {memory['ours_small']:,.0f} MB |",
        "",
        f"The full score matrix is {score_matrix:,.0f} MB; the harness's score buffer is "
        f"{buffer:,.0f} MB at block {args.block_size:,}.",
        "",
        "Targets (issue 11):",
        f"- search + metrics within 1.5x of the bare matmul + top-k: "
        f"{'met' if ratio <= 1.5 else '**missed**'} ({ratio:.2f}x)",
        f"- peak memory bounded by the block size, not queries x documents: "
        f"{'met' if bounded else '**missed**'} ({memory['ours']:,.0f} MB at block "
        f"{args.block_size:,}, {memory['ours_small']:,.0f} MB at {small:,}; the score matrix "
        f"alone is {score_matrix:,.0f} MB)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluation", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument("--probe", choices=sorted(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test
    args = parser.parse_args(argv)
    if args.tiny:
        args.queries, args.docs, args.dim, args.k, args.rounds = 20, 3000, 64, 10, 1
        args.block_size = 1024
    if args.probe:
        probe(args)
        return 0
    text = run(args)
    sys.stdout.write(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
