"""sentence-transformers' own CPU backends on the same texts: the peer of ``benchmarks.precision``.

Runs in its own environment (``--peers-python`` of ``python -m benchmarks.precision``):
sentence-transformers' ONNX and OpenVINO backends need ``optimum-onnx`` / ``optimum-intel``,
which pin ``transformers<4.58``, while this package runs on transformers 5. It imports
nothing from qwen3-rag. Each backend is set up the way the sentence-transformers efficiency
documentation shows (``backend="onnx"`` with ``export_dynamic_quantized_onnx_model``;
``backend="openvino"``, with ``quantization_config`` for int8 weights), on a folder laid out
as the published Qwen3-Embedding repository ships it (last-token pooling, normalisation),
and embeds the texts as documents (no prompt), best of ``--repeats``.

Usage (what ``benchmarks.precision`` runs)::

    PEERS/bin/python -m benchmarks.st_backends ST_FOLDER TEXTS.json OUT_FOLDER --repeats 3

Writes ``OUT_FOLDER/<backend>.npy`` (the vectors) and ``OUT_FOLDER/results.json``
(``{backend: {"seconds", "setup_seconds"} or {"error"}}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _onnx_qint8(folder: str) -> Any:
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    model = SentenceTransformer(folder, backend="onnx", device="cpu")
    export_dynamic_quantized_onnx_model(model, "avx512_vnni", folder)
    return SentenceTransformer(
        folder,
        backend="onnx",
        device="cpu",
        model_kwargs={"file_name": "onnx/model_qint8_avx512_vnni.onnx"},
    )


def _openvino(folder: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, backend="openvino", device="cpu")


def _openvino_int8(folder: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        folder,
        backend="openvino",
        device="cpu",
        model_kwargs={"quantization_config": {"bits": 8}},
    )


#: The backends measured, by name.
BACKENDS: dict[str, Callable[[str], Any]] = {
    "onnx dynamic int8 (avx512_vnni)": _onnx_qint8,
    "openvino float32": _openvino,
    "openvino int8 weights": _openvino_int8,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.st_backends")
    parser.add_argument("folder")
    parser.add_argument("texts", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    texts: list[str] = json.loads(args.texts.read_text(encoding="utf-8"))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for i, (name, setup) in enumerate(BACKENDS.items()):
        try:
            start = time.perf_counter()
            model = setup(args.folder)
            setup_seconds = time.perf_counter() - start
            model.encode(texts[:2], batch_size=32)  # warm-up
            best = float("inf")
            vectors = None
            for _ in range(args.repeats):
                start = time.perf_counter()
                vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
                best = min(best, time.perf_counter() - start)
            np.save(args.out / f"{i}.npy", np.asarray(vectors, dtype=np.float32))
            results[name] = {"seconds": best, "setup_seconds": setup_seconds, "file": f"{i}.npy"}
        except Exception as exc:  # a backend that cannot run this model is reported, not fatal
            traceback.print_exc(file=sys.stderr)
            results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        sys.stderr.write(f"{name}: {results[name]}\n")
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
