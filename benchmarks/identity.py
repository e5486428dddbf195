"""What the model identity costs: :func:`qwen3_rag.identity.folder_fingerprint` on the 0.6B shapes.

``python -m benchmarks.identity`` builds (or reuses, under ``benchmarks/.cache``) random
weights with the exact Qwen3-Embedding-0.6B shapes and tokenizer, and times the fingerprint
that every index run, collection open and cache lookup computes, warm (the files in the page
cache, as after any load), with the bytes it reads beside the folder's size.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

from benchmarks import models
from benchmarks.host import machine
from qwen3_rag.identity import SAMPLE_BYTES, folder_fingerprint

logger = logging.getLogger("benchmarks.identity")


def measure(folder: Path, repeats: int = 7) -> dict[str, float]:
    """Milliseconds per fingerprint (median and best of ``repeats``) and the bytes read."""
    folder_fingerprint(folder)  # warm the page cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        folder_fingerprint(folder)
        times.append((time.perf_counter() - start) * 1000)
    weights = sorted(folder.glob("*.safetensors"))
    tensors = 0
    for path in weights:
        with path.open("rb") as f:
            size = int.from_bytes(f.read(8), "little")
            tensors += len([k for k in json.loads(f.read(size)) if k != "__metadata__"])
    small = sum(p.stat().st_size for p in folder.iterdir() if p.suffix != ".safetensors")
    return {
        "median_ms": statistics.median(times),
        "best_ms": min(times),
        "tensors": tensors,
        "sampled_mb": (tensors * 3 * SAMPLE_BYTES + small) / 2**20,
        "folder_mb": sum(p.stat().st_size for p in folder.iterdir()) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.identity", description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, help="also write the result to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folder = models.build(models.CACHE / "embedding-0.6b", "embedding")
    r = measure(folder, args.repeats)
    text = (
        f"folder_fingerprint, Qwen3-Embedding-0.6B shapes ({r['folder_mb']:.0f} MB, "
        f"{r['tensors']:.0f} tensors): median {r['median_ms']:.1f} ms, best "
        f"{r['best_ms']:.1f} ms, reads ~{r['sampled_mb']:.1f} MB (tokenizer and config whole); "
        f"warm page cache; {machine()}"
    )
    print(text)
    if args.output is not None:
        args.output.write_text(f"# Model identity cost\n\n{text}\n", encoding="utf-8")


if __name__ == "__main__":
    main()
