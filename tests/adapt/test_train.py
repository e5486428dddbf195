"""Training runs the inference recipe exactly, resumes exactly, and refuses what it cannot train."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from qwen3_rag import Embedder, Reranker
from qwen3_rag.adapt.data import Triplet
from qwen3_rag.adapt.losses import info_nce
from qwen3_rag.adapt.train import AdaptedModel, TrainConfig, require_peft, train_embedder
from tests.adapt.fakes import documents

DOCS = documents(20, seed=5)
QUERIES = [" ".join(d.split()[0:7:3]) for d in DOCS]  # three topic words of each document


def triplets(n: int = 16) -> list[Triplet]:
    rng = random.Random(0)
    out = []
    for i in range(n):
        negs = rng.sample([j for j in range(len(DOCS)) if j != i], 2)
        out.append(
            Triplet(
                "train",
                f"q{i}",
                QUERIES[i],
                f"d{i}",
                DOCS[i],
                tuple(f"d{j}" for j in negs),
                tuple(DOCS[j] for j in negs),
            )
        )
    return out


CONFIG = TrainConfig(
    epochs=2, batch_size=4, learning_rate=5e-3, lora_r=4, lora_alpha=8, negatives=2, max_length=64
)


def test_training_forward_equals_the_embedder(tiny_embedding_dir: Path) -> None:
    model = AdaptedModel(
        "embedding", str(tiny_embedding_dir), instruction="question_answering", max_length=64
    )
    model.add_lora(CONFIG)  # LoRA B starts at zero: the model's function is unchanged
    model.peft_model.eval()
    core = Embedder(str(tiny_embedding_dir), instruction="question_answering", max_length=64)
    with torch.no_grad():
        q, _ = model.embed(model.formatter.query_inputs(QUERIES[:6]))
        d, _ = model.embed(model.formatter.document_inputs(DOCS[:6]))
    assert np.abs(q.numpy() - core.embed_queries(QUERIES[:6])).max() <= 1e-5
    assert np.abs(d.numpy() - core.embed_documents(DOCS[:6])).max() <= 1e-5
    long = [" ".join(DOCS)]  # truncated the same way: max_length - 1 tokens, then the end token
    with torch.no_grad():
        v, tokens = model.embed(long)
    assert tokens == 64
    assert np.abs(v.numpy() - core.embed_documents(long)).max() <= 1e-5


def test_reranker_training_forward_equals_the_reranker(tiny_reranker_dir: Path) -> None:
    model = AdaptedModel("reranker", str(tiny_reranker_dir), max_length=96)
    model.add_lora(CONFIG)
    model.peft_model.eval()
    pairs = [(QUERIES[i], DOCS[j]) for i in range(3) for j in range(3)]
    with torch.no_grad():
        margin, _ = model.yes_minus_no(pairs)
    want = Reranker(str(tiny_reranker_dir), max_length=96).score_pairs(pairs)
    assert np.abs(torch.sigmoid(margin).numpy() - np.array(want)).max() <= 1e-5


def test_gradient_checkpointing_changes_nothing_but_memory(tiny_embedding_dir: Path) -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = AdaptedModel("embedding", str(tiny_embedding_dir), max_length=64)
        model.add_lora(TrainConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0))
        with torch.no_grad():  # move B off zero so A gets gradients too
            for p in model.peft_model.parameters():
                if p.requires_grad:
                    p.add_(0.05)
        if checkpointing:
            model.enable_checkpointing()
        q, _ = model.embed(model.formatter.query_inputs(QUERIES[:4]))
        d, _ = model.embed(model.formatter.document_inputs(DOCS[:4]))
        loss = info_nce(q, d, None)
        calls: list[int] = []  # a layer's forward run again during backward: recomputation
        hook = model.decoder.layers[0].self_attn.o_proj.register_forward_hook(
            lambda *_, seen=calls: seen.append(1)
        )
        loss.backward()
        hook.remove()
        assert len(calls) == (2 if checkpointing else 0)  # once per embed call, recomputed
        grads.append(
            (
                loss.item(),
                [p.grad.clone() for p in model.peft_model.parameters() if p.requires_grad],
            )
        )
    (l0, g0), (l1, g1) = grads
    assert l0 == pytest.approx(l1, abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1, strict=True))


def adapter(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_interrupted_training_resumes_to_the_same_weights(
    tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    data = triplets()
    whole = train_embedder(
        str(tiny_embedding_dir), data, tmp_path / "whole", config=CONFIG, dev=data[:4]
    )
    assert [e.epoch for e in whole.epochs] == [1, 2] and len(whole.checkpoints) == 2

    def stop(epoch: int, step: int, loss: float) -> None:
        if epoch == 2 and step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_embedder(
            str(tiny_embedding_dir),
            data,
            tmp_path / "cut",
            config=CONFIG,
            dev=data[:4],
            on_step=stop,
        )
    assert [p.name for p in (tmp_path / "cut").iterdir() if not p.name.startswith(".")] == [
        "epoch-001"
    ]
    resumed = train_embedder(
        str(tiny_embedding_dir), data, tmp_path / "cut", config=CONFIG, dev=data[:4]
    )
    assert resumed.resumed_from == 1
    assert [e.loss for e in resumed.epochs] == pytest.approx(
        [e.loss for e in whole.epochs], abs=1e-6
    )
    a, b = adapter(whole.checkpoints[-1]), adapter(resumed.checkpoints[-1])
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    state = json.loads((resumed.checkpoints[-1] / "state.json").read_text())
    assert state["epoch"] == 2 and state["instruction"] == Embedder("x").instruction

    # the same folder with other settings is refused, not silently mixed
    with pytest.raises(ValueError, match="another training run"):
        train_embedder(
            str(tiny_embedding_dir),
            data,
            tmp_path / "cut",
            config=TrainConfig(**{**CONFIG.to_dict(), "learning_rate": 1e-3}),
        )


def test_not_a_qwen3_model(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not Qwen3"):
        train_embedder(str(folder), triplets(), tmp_path / "out", config=CONFIG)


def test_missing_peft_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(ImportError, match=r'pip install "qwen3-rag\[adapt\]"'):
        require_peft()


def test_bad_settings() -> None:
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig(learning_rate=-1.0)
    with pytest.raises(ValueError, match="warmup"):
        TrainConfig(warmup=1.5)


def reciprocal_rank(queries: np.ndarray, docs: np.ndarray) -> float:
    """Mean reciprocal rank of document i for query i, by dot product (written out)."""
    ranks = []
    for i, q in enumerate(queries):
        scores = docs @ q
        ranks.append(1 + int(np.sum(scores > scores[i])))
    return float(np.mean([1 / r for r in ranks]))


def test_queries_only_training_moves_queries_and_leaves_documents_to_the_base(
    tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    from qwen3_rag.adapt.merge import merge_checkpoints

    base = str(tiny_embedding_dir)
    data = triplets()
    config = TrainConfig(**{**CONFIG.to_dict(), "epochs": 6, "learning_rate": 5e-3})
    report = train_embedder(base, data, tmp_path / "train", config=config, queries_only=True)
    assert report.epochs[-1].loss < report.epochs[0].loss
    # only the queries went through the model: fewer tokens than queries and passages
    full = train_embedder(base, data, tmp_path / "full", config=CONFIG)
    assert report.epochs[0].tokens < full.epochs[0].tokens / 2
    merged = merge_checkpoints(
        base, report.checkpoints[-1:], tmp_path / "queries", probes=(QUERIES[:4], DOCS[:4])
    ).folder

    pair = Embedder(base, query_model=str(merged))
    plain = Embedder(base)
    assert pair.embed_documents(DOCS).tobytes() == plain.embed_documents(DOCS).tobytes()
    before = reciprocal_rank(plain.embed_queries(QUERIES[:16]), plain.embed_documents(DOCS[:16]))
    after = reciprocal_rank(pair.embed_queries(QUERIES[:16]), plain.embed_documents(DOCS[:16]))
    assert after > before + 0.05, (before, after)

    # resuming it as a full run is refused, not silently mixed
    with pytest.raises(ValueError, match="another training run"):
        train_embedder(base, data, tmp_path / "train", config=config)
