"""Reranking long documents: windows (``long_documents="max"``) against truncation.

``python -m benchmarks.rerank_windows`` reranks candidates of ~4,000 tokens each against one
query at ``max_length=512`` with the random-weight 0.6B-shaped reranker (``benchmarks.models``,
fp32 on CPU), once truncating (the official recipe: 512 tokens of each pair read) and once by
windows (every token read, in overlapping 512-token pairs), each in a fresh process so that
each peak is its own. It reports documents (query-document pairs) per second, tokens read per
second, the windows scored, and the peak resident memory over the loaded model (``VmHWM``
after a reset, as the memory probes of ``python -m benchmarks`` measure it).

The default is 5 candidates, so that the windowed run stays within a few minutes on two
cores (20 candidates of 4,000 tokens are ~220 windows, ~86k tokens: ~11 minutes there);
``--candidates 20`` runs the issue's full case. The report goes to stdout, to ``--output``
if given, and with ``--results`` into that file's section of the same heading (replaced,
or appended).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.host import machine, write_section
from benchmarks.models import CACHE, QWEN3_06B, TINY, build
from benchmarks.run import _PROBE_HELPERS

logger = logging.getLogger(__name__)

HEADING = "## Reranking long documents: windows vs truncation"
QUERY = "Which paragraph explains how the garden furniture is returned?"

#: The child: load, build the documents, reset the high-water mark, rank, report. The windows
#: scored are counted from the reranker's own log line ("... scored by N windows").
_CHILD = """
import logging, time
from tokenizers import Tokenizer
from qwen3_rag import Reranker, tune_cpu_threads
from benchmarks.rerank_windows import documents
tune_cpu_threads()
folder, mode, n, tokens, max_length = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
rr = Reranker(folder, device='cpu', max_length=max_length, long_documents=mode).load()
tok = Tokenizer.from_file(folder + '/tokenizer.json')
docs = documents(tok, n, tokens)
rr.rank(sys.argv[6], docs[:1])  # warm up (one document)
windows = []
class Count(logging.Handler):
    def emit(self, record):
        if 'windows' in record.msg:
            windows.append(record.args[3])
log = logging.getLogger('qwen3_rag.reranker')
log.setLevel(logging.INFO)
log.addHandler(Count())
base = reset()
start = time.perf_counter()
rr.rank(sys.argv[6], docs)
seconds = time.perf_counter() - start
print(sum(len(tok.encode(d, add_special_tokens=False).ids) for d in docs), sum(windows) or n)
print(base, peak(), seconds)
"""


def documents(tokenizer: Any, n: int, tokens: int) -> list[str]:
    """``n`` varied documents of ``tokens`` tokens each (words drawn at random, seeded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    vocab = [
        "garden", "furniture", "oak", "returned", "receipt", "days", "shop", "table", "chair",
        "delivery", "the", "a", "of", "and", "is", "within", "customer", "paragraph", "\n",
    ] + [f"w{i}" for i in range(200)]  # fmt: skip
    out = []
    for _ in range(n):
        text = " ".join(rng.choice(vocab, size=tokens))
        ids = tokenizer.encode(text, add_special_tokens=False).ids[:tokens]
        out.append(tokenizer.decode(ids))
    return out


def probe(folder: Path, mode: str, n: int, tokens: int, max_length: int) -> dict[str, float]:
    """One fresh process ranking ``n`` documents in ``mode``."""
    args = [folder, mode, n, tokens, max_length, QUERY]
    out = subprocess.run(
        [sys.executable, "-c", _PROBE_HELPERS + _CHILD, *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout.split()
    read, windows, base, top, seconds = (float(x) for x in out[-5:])
    return {
        "tokens": read,
        "windows": windows,
        "loaded_mb": base,
        "peak_mb": top,
        "seconds": seconds,
    }


def report(results: dict[str, dict[str, float]], args: argparse.Namespace, shape: str) -> str:
    """The markdown section."""
    trunc, win = results["truncate"], results["max"]
    lines = [
        HEADING,
        "",
        f"`python -m benchmarks.rerank_windows{' --tiny' if args.tiny else ''} "
        f"--candidates {args.candidates}`: {args.candidates} candidates of {args.tokens} "
        f"tokens, one query, `max_length={args.max_length}`, {shape}, fp32, each mode in a "
        f"fresh process (windows: default `window_overlap=64`, no `max_windows`).",
        "",
        "| mode | model pairs | documents/s | model pairs/s | seconds | peak over loaded model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("truncate", trunc), ("max (windows)", win)):
        lines.append(
            f"| {name} | {r['windows']:.0f} | {args.candidates / r['seconds']:.3f} | "
            f"{r['windows'] / r['seconds']:.2f} | {r['seconds']:.1f} | "
            f"+{r['peak_mb'] - r['loaded_mb']:.0f} MB |"
        )
    lines += [
        "",
        f"Windows read all {win['tokens']:.0f} document tokens in {win['windows']:.0f} pairs "
        f"({win['windows'] / args.candidates:.1f} per document) and took "
        f"{win['seconds'] / trunc['seconds']:.1f}x the time of truncation, which reads only "
        f"the first {args.max_length}-token pair of each document; per model pair they ran "
        f"{(win['windows'] / win['seconds']) / (trunc['windows'] / trunc['seconds']):.1f}x "
        f"as fast (the query prefix computed once, fuller batches). Peak memory is bounded by "
        f"one batch (at most `batch_size=16` pairs and `max_batch_tokens=16384` tokens), not "
        f"by the number of windows: +{win['peak_mb'] - win['loaded_mb']:.0f} MB with windows "
        f"(batches of 16 pairs) against +{trunc['peak_mb'] - trunc['loaded_mb']:.0f} MB for "
        f"truncation's one batch of {args.candidates} pairs.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rerank_windows", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--output", type=Path, help="also write the markdown section here")
    parser.add_argument("--results", type=Path, help="replace (or append) the section in this file")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # smoke test
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    shape, tag = (TINY, "tiny") if args.tiny else (QWEN3_06B, "0.6b")
    folder = build(args.cache / f"reranker-{tag}", "reranker", shape=shape, seed=1)
    described = (
        "a tiny random Qwen3 (real tokenizer)"
        if args.tiny
        else ("random weights with the Qwen3-Reranker-0.6B shapes and the real tokenizer")
    )
    results = {}
    for mode in ("truncate", "max"):
        logger.info("ranking %d documents, long_documents=%r", args.candidates, mode)
        results[mode] = probe(folder, mode, args.candidates, args.tokens, args.max_length)
    text = report(results, args, described)
    sys.stdout.write(text)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    if args.results:
        write_section(args.results, text, HEADING)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
