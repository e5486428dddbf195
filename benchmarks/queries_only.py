"""Query-only adaptation against full adaptation: training throughput and peak memory.

``python -m benchmarks.queries_only`` trains the same LoRA adapter (rank 16, every linear
layer, float32 on the CPU) on the same triplets (a query of ~10 words, a passage and one
negative of up to 128 tokens: queries ~8x shorter than passages) with
:func:`qwen3_rag.adapt.train_embedder`, once as today (queries, passages and negatives run
through the model, forward and backward) and once with ``queries_only=True`` (the frozen base
embeds the passages and negatives once, then only the queries run). Each mode runs in its own
process, so its peak resident memory (``VmHWM``) is its own. Throughput counts timed steps
after ``--warmup`` untimed ones; the one-off passage embedding of the query-only mode is
reported beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import models
from benchmarks.adapt import ours, triplets
from benchmarks.host import machine

logger = logging.getLogger(__name__)


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(folder: Path, queries_only: bool, batch: int, steps: int, warmup: int) -> dict[str, Any]:
    """One mode in this process: seconds per timed step, the first step, peak memory."""
    data = triplets(batch * (steps + warmup))
    began = time.perf_counter()
    result = ours(folder, data, batch, warmup, queries_only=queries_only)
    stamps = result["stamps"]
    timed = stamps[1 + warmup :]
    per_step = (timed[-1] - stamps[warmup]) / len(timed)
    return {
        "queries_only": queries_only,
        "seconds_per_step": per_step,
        "examples_per_second": batch / per_step,
        "first_step_seconds": stamps[1] - began,
        "peak_mb": _peak_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queries_only", description=__doc__)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode (3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps (1)")
    parser.add_argument("--batch", type=int, default=4, help="queries per step (4)")
    parser.add_argument("--cache", type=Path, default=models.CACHE, help="model folder cache")
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["full", "queries"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from qwen3_rag import tune_cpu_threads

    tune_cpu_threads()
    shape, tag = (models.TINY, "tiny") if args.tiny else (models.QWEN3_06B, "0.6b")
    folder = models.build(args.cache / f"embedding-{tag}", "embedding", shape=shape)
    if args.mode is not None:  # the child: one mode, its result as the last line
        result = one(folder, args.mode == "queries", args.batch, args.steps, args.warmup)
        print(json.dumps(result))
        return 0
    rows = {}
    for mode in ("full", "queries"):
        command = [sys.executable, "-m", "benchmarks.queries_only", "--mode", mode]
        command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
        command += ["--batch", str(args.batch), "--cache", str(args.cache)]
        command += ["--tiny"] if args.tiny else []
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    full, queries = rows["full"], rows["queries"]
    ratio = queries["examples_per_second"] / full["examples_per_second"]
    lines = [
        f"# Query-only adaptation (issue 19)\n\nLoRA training, {tag} shapes (random weights), "
        f"float32 CPU; batch {args.batch} (query + passage + 1 negative, at most 128 tokens); "
        f"{args.steps} timed steps after {args.warmup}; {machine()}\n",
        "| mode | s/step | examples/s | first step (s) | peak memory (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in (("full (queries + passages)", full), ("queries only", queries)):
        lines.append(
            f"| {name} | {r['seconds_per_step']:.2f} | {r['examples_per_second']:.2f} | "
            f"{r['first_step_seconds']:.1f} | {r['peak_mb']:.0f} |"
        )
    target = "met" if ratio >= 3 else "**missed**"
    memory = queries["peak_mb"] / full["peak_mb"]
    lines.append(
        f"\nqueries only: {ratio:.1f}x the examples/s of full training (target >= 3x: "
        f"{target}); peak memory {memory:.2f}x."
    )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
