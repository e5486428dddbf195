"""The lean forward checks itself: unknown layouts and changed semantics fall back, loudly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from qwen3_rag import Embedder, Reranker, _forward, clear_cache
from tests.models import load_reference

TEXTS = ["The capital of China is Beijing.", "Gravity.", "", "Paris is in France. " * 5]


def _literal(folder: Path, texts: list[str]) -> np.ndarray:
    """Document vectors through transformers' own forward, batch 1 (the recipe, literally)."""
    from tokenizers import Tokenizer
    from transformers import Qwen3Model

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    model = load_reference(Qwen3Model, folder, torch.float32)
    eos = tok.token_to_id("<|endoftext|>")
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = [*tok.encode(text, add_special_tokens=False).ids, eos]
            h = model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1]
            out.append(torch.nn.functional.normalize(h, dim=-1).numpy())
    return np.stack(out)


def test_supports_checks_every_attribute_it_reads(tiny_embedding_dir: Path) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    assert _forward.supports(model)
    attn = model.layers[1].self_attn
    scaling = attn.scaling
    del attn.scaling
    assert not _forward.supports(model)
    attn.scaling = scaling
    head_dim = attn.head_dim
    attn.head_dim = None
    assert not _forward.supports(model)
    attn.head_dim = head_dim
    forward = model.rotary_emb.forward
    model.rotary_emb.forward = lambda positions, x: forward(x, positions)  # a new signature
    assert not _forward.supports(model)
    del model.rotary_emb.forward
    assert _forward.supports(model)
    model.config.use_sliding_window = True
    assert not _forward.supports(model)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_self_check_passes_on_qwen3(tiny_embedding_dir: Path, dtype: torch.dtype) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, dtype)
    assert _forward.self_check(model, pad_id=0) <= _forward.tolerance(dtype)


def test_changed_semantics_fall_back_to_the_models_forward(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_embedding_dir: Path
) -> None:
    """A transformers release that changes what a module computes is caught at load time."""
    clear_cache()
    # the lean path's rotary turned the wrong way: what a changed layout would look like
    monkeypatch.setattr(_forward, "_rope", lambda x, cos, sin: x * cos - x.flip(-1) * sin)
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        emb = Embedder(str(tiny_embedding_dir), device="cpu")
        got = emb.embed_documents(TEXTS)
        emb.embed_documents(TEXTS)
    assert not emb._runtime().fast
    warnings = [r for r in caplog.records if "lean forward differs" in r.getMessage()]
    assert len(warnings) == 1  # one warning, at load
    assert np.abs(got - _literal(tiny_embedding_dir, TEXTS)).max() <= 1e-5  # still exact
    clear_cache()


def test_unknown_layout_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tiny_reranker_dir: Path
) -> None:
    clear_cache()
    pairs = [("capital of China?", t) for t in TEXTS]
    with caplog.at_level(logging.WARNING, logger="qwen3_rag"):
        lean = Reranker(str(tiny_reranker_dir), device="cpu").score_pairs(pairs)
        assert not caplog.records
        clear_cache()
        monkeypatch.setattr(_forward, "supports", lambda model: False)
        fallback = Reranker(str(tiny_reranker_dir), device="cpu")
        scores = fallback.score_pairs(pairs)
    assert not fallback._runtime().fast
    assert ["lays out the Qwen3 model differently" in r.getMessage() for r in caplog.records] == [
        True
    ]
    assert np.abs(np.array(scores) - np.array(lean)).max() <= 1e-5
    clear_cache()


def test_self_check_reports_a_crashing_lean_path(
    monkeypatch: pytest.MonkeyPatch, tiny_embedding_dir: Path
) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)

    def broken(*args: object) -> torch.Tensor:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(_forward._Pass, "last_layer", broken)
    assert _forward.self_check(model, pad_id=0) == float("inf")


def _reference_last(model: torch.nn.Module, seqs: list[list[int]]) -> torch.Tensor:
    """transformers' own forward, one sequence at a time: the last position's hidden state."""
    return torch.stack([model(input_ids=torch.tensor([s])).last_hidden_state[0, -1] for s in seqs])


SEQS = [[5, 6, 7, 8, 9, 10, 11], [12], [13, 14, 15], [16, 17]]


@pytest.mark.parametrize("per_sequence", [True, False], ids=["per-sequence", "padded-grid"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "separate"])
def test_both_attention_layouts_and_fusion_equal_transformers(
    tiny_embedding_dir: Path, per_sequence: bool, fused: bool
) -> None:
    from transformers import Qwen3Model

    from qwen3_rag.batching import right_pad

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    with torch.inference_mode():
        before = _reference_last(model, SEQS)
        if fused:
            assert _forward.fuse_projections(model) == 2 * len(model.layers)
            # the model's own forward computes what it did: the weights only moved
            assert (_reference_last(model, SEQS) - before).abs().max().item() == 0.0
        ids, lengths = right_pad(SEQS, 0, torch.device("cpu"))
        got = _forward.last_hidden(model, ids, lengths, per_sequence=per_sequence)
        assert (got - before).abs().max().item() <= 1e-5
        past = _forward.prefix_kv(model, [1, 2, 3], torch.device("cpu"))
        got = _forward.last_hidden(model, ids, lengths, past, per_sequence=per_sequence)
        ref = _reference_last(model, [[1, 2, 3, *s] for s in SEQS])
        assert (got - ref).abs().max().item() <= 1e-5


def test_fusion_keeps_no_second_copy_of_the_weights(tiny_embedding_dir: Path) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    before = sum(p.numel() for p in model.parameters())
    _forward.fuse_projections(model)
    attn, mlp = model.layers[0].self_attn, model.layers[0].mlp
    q, k, v = attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight
    assert q.untyped_storage().data_ptr() == v.untyped_storage().data_ptr()
    assert k.data_ptr() == q.data_ptr() + q.numel() * q.element_size()
    assert mlp.gate_proj.weight.untyped_storage().data_ptr() == (
        mlp.up_proj.weight.untyped_storage().data_ptr()
    )
    assert sum(p.numel() for p in model.parameters()) == before
    assert _forward.fuse_projections(model) == 2 * len(model.layers)  # idempotent


def test_a_replaced_or_wrapped_projection_is_read_through_its_module(
    tiny_embedding_dir: Path,
) -> None:
    """After fusion, a module whose weight moved (or that computes more) is called, not skipped."""
    from transformers import Qwen3Model

    from qwen3_rag.batching import right_pad

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    _forward.fuse_projections(model)
    attn = model.layers[0].self_attn
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a new key weight, no longer inside the fused block
        attn.k_proj.weight = torch.nn.Parameter(
            torch.randn(attn.k_proj.weight.shape, generator=gen)
        )

    class Scaled(torch.nn.Linear):  # e.g. an adapter: computes more than x @ W.T
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(x)

    mlp = model.layers[1].mlp
    scaled = Scaled(mlp.up_proj.in_features, mlp.up_proj.out_features, bias=False)
    scaled.weight = mlp.up_proj.weight  # still inside the fused block
    mlp.up_proj = scaled
    with torch.inference_mode():
        ids, lengths = right_pad(SEQS, 0, torch.device("cpu"))
        got = _forward.last_hidden(model, ids, lengths)
        ref = _reference_last(model, SEQS)
    assert (got - ref).abs().max().item() <= 1e-5
    assert _forward.self_check(model, pad_id=0) <= _forward.tolerance(torch.float32)


def test_supports_checks_the_norms_it_reads(tiny_embedding_dir: Path) -> None:
    from transformers import Qwen3Model

    model = load_reference(Qwen3Model, tiny_embedding_dir, torch.float32)
    norm = model.layers[0].self_attn.k_norm
    eps = norm.variance_epsilon
    del norm.variance_epsilon
    assert not _forward.supports(model)
    norm.variance_epsilon = eps
    assert _forward.supports(model)
