"""``benchmarks.precision``'s report: ratios against float32 and target verdicts, from data."""

from __future__ import annotations

from typing import Any

from benchmarks.precision import report


def _probe(value: float) -> dict[str, Any]:
    return {"value": value, "details": {"build_seconds": 90.0, "disk_bytes": 600e6}}


def test_report_computes_ratios_and_verdicts() -> None:
    paths = {
        "exact": {"identity": "w (torch, float32)", "tokens_per_s": 100.0, "min_cosine": 1.0,
                  "probe": None},
        "onnx-int8": {"identity": "w (onnx, int8)", "tokens_per_s": 210.0, "min_cosine": 0.997,
                      "probe": _probe(0.998)},
        "fast": {"identity": "w (torch, bfloat16)", "tokens_per_s": 260.0, "min_cosine": 0.9999,
                 "probe": _probe(0.9999)},
    }  # fmt: skip
    rerank = {
        "exact": {"identity": "w (torch, float32)", "20": {"pairs_per_s": 2.0,
                  "max_score_diff": 0.0}, "probe": None},
        "onnx-int8": {"identity": "w (onnx, int8)", "20": {"pairs_per_s": 2.2,
                      "max_score_diff": 0.016}, "probe": _probe(0.016)},
        "fast": {"identity": "w (torch, bfloat16)", "20": {"pairs_per_s": 4.6,
                 "max_score_diff": 0.03}, "probe": _probe(0.003)},
    }  # fmt: skip
    data = {
        "embedding": {"texts": 24, "tokens": 1200, "paths": paths},
        "reranking": {"counts": [20], "paths": rerank},
        "peers": {"openvino": {"seconds": 12.0, "min_cosine": 0.94}, "onnx": {"error": "boom"}},
        "repeats": 3,
        "machine": "a CPU (avx2)",
        "versions": {"torch": "2.13"},
    }
    text = report(data)
    assert "| fast | (torch, bfloat16) | 260 | 2.60x | 0.99990 | 0.99990 |" in text
    assert "| embedding: fast >= 2.5x float32 | 2.60 | met |" in text
    # the peer ran 1200 tokens in 12 s: 100 tok/s, so fast is 2.6x its best
    assert (
        "| embedding: fast >= 1.2x sentence-transformers' best quantized backend | 2.60 | met |"
        in text
    )
    assert "| onnx | failed: boom | | |" in text
    assert "| rerank 20: fast >= 2x float32 | 2.30 | met |" in text
    assert "| rerank 20: fast score diff <= 0.02 | 0.0300 | **missed** |" in text
    assert "| embedder | onnx-int8 | 90 | 600 |" in text
    assert (
        "Fastest here: embedding `fast` (2.60x float32), reranking 20 candidates `fast` (2.30x)"
        in text
    )
    assert "a CPU (avx2)" in text
