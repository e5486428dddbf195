"""Fidelity of the non-exact paths: measured beside float32 once, stored, shown, and enforced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import Embedder, Reranker, clear_cache, fidelity
from qwen3_rag._model import ModelBase
from qwen3_rag.errors import FidelityError, Qwen3RagError
from qwen3_rag.identity import ModelIdentity


def test_min_cosine_is_the_smallest_row_cosine() -> None:
    reference = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    outputs = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    f = fidelity.measure("embedder", "w (onnx, int8)", reference, outputs, seconds=1.0,
                         reference_seconds=3.0)  # fmt: skip
    assert f.metric == "min_cosine" and f.value == pytest.approx(1 / np.sqrt(2))  # row 0
    assert not f.ok and f.floor == fidelity.MIN_COSINE
    assert f.speedup == pytest.approx(3.0)


def test_score_difference_is_the_largest_absolute_one() -> None:
    reference, outputs = np.array([0.9, 0.1, 0.5]), np.array([0.88, 0.16, 0.5])
    f = fidelity.measure(
        "reranker", "w (torch, int8)", reference, outputs, seconds=1.0, reference_seconds=1.0
    )
    assert f.metric == "max_score_diff" and f.value == pytest.approx(0.06)
    assert not f.ok  # above 0.05


def test_a_nan_output_is_never_a_pass() -> None:
    ref = np.ones((2, 4))
    out = ref.copy()
    out[1, 2] = np.nan
    assert not fidelity.measure("embedder", "x", ref, out, seconds=1, reference_seconds=1).ok
    scores = fidelity.measure("reranker", "x", np.array([0.5]), np.array([np.nan]), seconds=1,
                              reference_seconds=1)  # fmt: skip
    assert not scores.ok


def test_check_refuses_with_what_was_measured() -> None:
    bad = fidelity.measure("embedder", "sha256:ab (onnx, int8)", np.eye(2), np.eye(2)[::-1],
                           seconds=1, reference_seconds=1)  # fmt: skip
    with pytest.raises(FidelityError) as raised:
        fidelity.check(bad)
    message = str(raised.value)
    assert "min_cosine 0.00000" in message and str(fidelity.MIN_COSINE) in message
    assert "precision='exact'" in message
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, Qwen3RagError)
    assert raised.value.fidelity is bad


def test_records_round_trip_and_unreadable_ones_count_as_missing(engine_cache: Path) -> None:
    folder = fidelity.artefact_folder("reranker", ModelIdentity("sha256:ab", "torch", "int8"))
    assert folder.parent == engine_cache and "reranker-torch-int8-" in folder.name
    f = fidelity.measure("reranker", "x", np.array([0.5]), np.array([0.51]), seconds=2,
                         reference_seconds=4)  # fmt: skip
    fidelity.write(folder, f, np.array([0.5]))
    record, reference = fidelity.read(folder)
    assert record == f and reference is not None and reference.tolist() == [0.5]
    assert fidelity.records() == [f]
    (folder / fidelity.RECORD).write_text("{not json")
    assert fidelity.read(folder)[0] is None


def test_artefact_folders_differ_by_weights_engine_and_precision() -> None:
    names = {
        fidelity.artefact_folder("embedder", ModelIdentity(w, e, p)).name
        for w in ("sha256:a", "sha256:b")
        for e, p in (("torch", "bfloat16"), ("torch", "int8"), ("onnx", "int8"))
    }
    assert len(names) == 6


def test_exact_paths_have_no_fidelity(tiny_embedding_dir: Path) -> None:
    emb = Embedder(str(tiny_embedding_dir), device="cpu")
    assert emb.exact and emb.fidelity() is None


def test_bfloat16_is_probed_once_per_identity(
    engine_cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_embedding_dir: Path
) -> None:
    emb = Embedder(str(tiny_embedding_dir), device="cpu", dtype="bfloat16")
    assert not emb.exact
    record = emb.fidelity()
    assert record is not None and record.ok and record.metric == "min_cosine"
    assert record.identity == str(emb.identity()) and record.value >= 0.999
    stored = json.loads(
        next(engine_cache.glob("embedder-torch-bfloat16-*/fidelity.json")).read_text()
    )
    assert stored["value"] == record.value and "cpu" in stored["details"]
    clear_cache()

    def no_reference(self: object) -> None:
        raise AssertionError("measured again")

    monkeypatch.setattr(ModelBase, "_reference", no_reference)
    again = Embedder(str(tiny_embedding_dir), device="cpu", dtype="bfloat16")
    assert again.fidelity() == record  # read back, not measured


def test_a_torch_path_below_the_floor_is_refused(
    engine_cache: Path, monkeypatch: pytest.MonkeyPatch, tiny_reranker_dir: Path
) -> None:
    monkeypatch.setattr(fidelity, "MAX_SCORE_DIFF", 0.0)  # bfloat16 always differs a little
    rr = Reranker(str(tiny_reranker_dir), device="cpu", dtype="bfloat16")
    with pytest.raises(FidelityError, match="max_score_diff"):
        rr.score("q", ["d"])
    (record,) = fidelity.records()
    assert not record.ok and "(torch, bfloat16)" in record.identity
