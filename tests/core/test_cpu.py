"""precision="fast": the CPU's instructions choose the path, and the choice is said and kept."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, clear_cache, cpu
from qwen3_rag import _model as model_module
from qwen3_rag.cpu import CpuFeatures, choose_fast

AVX2 = CpuFeatures("x86_64", frozenset({"sse2", "avx", "avx2", "fma"}))
VNNI = CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))
BF16 = CpuFeatures("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}))
AMX = CpuFeatures("x86_64", frozenset({"avx2", "amx_tile", "amx_int8", "amx_bf16"}))
ARM = CpuFeatures("aarch64", frozenset({"asimd", "asimddp", "i8mm", "bf16"}))
OLD_ARM = CpuFeatures("aarch64", frozenset({"asimd"}))


@pytest.mark.parametrize(
    ("features", "onnx", "torch_int8", "expected"),
    [
        (AVX2, True, False, ("onnx", "float32", "int8")),  # PyTorch's int8/bf16: 30-80x slower
        (AVX2, False, False, ("torch", "float32", None)),  # nothing faster: float32, said why
        (VNNI, True, True, ("onnx", "float32", "int8")),
        (VNNI, False, True, ("torch", "float32", "int8")),  # PyTorch int8 on VNNI
        (BF16, True, True, ("torch", "bfloat16", None)),
        (AMX, False, True, ("torch", "bfloat16", None)),
        (ARM, True, False, ("onnx", "float32", "int8")),  # bf16 on ARM unmeasured: not chosen
        (OLD_ARM, False, False, ("torch", "float32", None)),
    ],
)
def test_fast_choice_follows_the_instructions(
    features: CpuFeatures, onnx: bool, torch_int8: bool, expected: tuple[str, str, str | None]
) -> None:
    choice = choose_fast("cpu", features, onnx_available=onnx, torch_int8=torch_int8)
    assert (choice.engine, choice.dtype, choice.quantize) == expected
    assert features.summary().split(": ", 1)[1] in choice.reason  # the flags it read, said
    if expected == ("torch", "float32", None):
        assert 'pip install "qwen3-rag[onnx]"' in choice.reason


def test_fast_on_accelerators_is_their_half_precision() -> None:
    assert choose_fast("cuda").dtype == "bfloat16"
    assert choose_fast("mps").dtype == "float16"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
def test_cpu_features_are_the_kernels_flags() -> None:
    line = next(
        x
        for x in Path("/proc/cpuinfo").read_text().splitlines()
        if x.startswith(("flags", "Features"))
    )
    assert cpu.cpu_features().flags == frozenset(line.split(":", 1)[1].split())


@pytest.mark.parametrize(
    ("features", "engine", "precision"),
    [(AVX2, "onnx", "int8"), (BF16, "torch", "bfloat16")],
)
def test_fast_runs_what_it_chose_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tiny_embedding_dir: Path,
    features: CpuFeatures,
    engine: str,
    precision: str,
) -> None:
    if engine == "onnx":
        pytest.importorskip("onnxruntime")
    monkeypatch.setattr(cpu, "cpu_features", lambda: features)
    monkeypatch.setattr(model_module, "fast_int8_cpu", lambda: features is not AVX2)
    clear_cache()
    emb = Embedder(str(tiny_embedding_dir), device="cpu", precision="fast")
    exact = Embedder(str(tiny_embedding_dir), device="cpu")
    docs = ["The capital of China is Beijing.", "Gravity is a force."]
    with caplog.at_level(logging.INFO, logger="qwen3_rag"):
        vectors = emb.embed_documents(docs)
    said = [r.getMessage() for r in caplog.records if "precision='fast' runs" in r.getMessage()]
    assert len(said) == 1 and f"{engine} {precision}" in said[0], said
    assert features.summary().split(": ", 1)[1] in said[0]
    identity = emb.identity()
    assert (identity.engine, identity.precision) == (engine, precision)
    assert identity.changes(exact.identity())  # never mixed with float32 vectors
    reference = exact.embed_documents(docs)
    assert float((vectors * reference).sum(axis=1).min()) >= 0.99
    clear_cache()


def test_fast_with_nothing_faster_warns_and_stays_exact(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_reranker_dir: Path
) -> None:
    monkeypatch.setattr(cpu, "cpu_features", lambda: AVX2)
    monkeypatch.setattr(cpu, "onnx_ready", lambda: False)
    monkeypatch.setattr(model_module, "fast_int8_cpu", lambda: False)
    clear_cache()
    rr = Reranker(str(tiny_reranker_dir), device="cpu", precision="fast")
    with caplog.at_level(logging.INFO, logger="qwen3_rag"):
        fast = rr.score("capital of China?", ["Beijing is China's capital.", "Gravity."])
    warned = [r for r in caplog.records if "precision='fast' runs torch float32" in r.getMessage()]
    assert warned and warned[0].levelno == logging.WARNING
    assert "qwen3-rag[onnx]" in warned[0].getMessage()
    assert rr.exact and rr.fidelity() is None
    exact = Reranker(str(tiny_reranker_dir), device="cpu").score(
        "capital of China?", ["Beijing is China's capital.", "Gravity."]
    )
    np.testing.assert_array_equal(fast, exact)
    clear_cache()


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"precision": "fast", "dtype": "bfloat16"}, "precision='fast'"),
        ({"precision": "fast", "quantize": "int8"}, "precision='fast'"),
        ({"precision": "fastest"}, "precision="),
        ({"engine": "tensorrt"}, "engine="),
        ({"engine": "onnx", "dtype": "bfloat16"}, "engine='onnx'"),
    ],
)
def test_bad_path_settings_name_the_argument(kwargs: dict[str, str], names: str) -> None:
    with pytest.raises(ValueError, match=names):
        Embedder("some/model", device="cpu", **kwargs)  # type: ignore[arg-type]
