"""Slerp against the literal formula; merged folders load everywhere and are verified."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from qwen3_rag import Embedder, clear_cache
from qwen3_rag.adapt.merge import (
    MergeError,
    merge_checkpoints,
    slerp,
    spherical_mean_weights,
    verify_model_folder,
)
from qwen3_rag.adapt.train import checkpoints


def literal_slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Shoemake's formula on the flattened tensors."""
    x, y = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    omega = math.acos(float(x @ y) / (np.linalg.norm(x) * np.linalg.norm(y)))
    out = (
        math.sin((1 - t) * omega) / math.sin(omega) * x + math.sin(t * omega) / math.sin(omega) * y
    )
    return out.reshape(a.shape)


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.9])
def test_slerp_equals_the_literal_formula(t: float) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g) * 2.5
    want = literal_slerp(a.numpy(), b.numpy(), t)
    assert np.allclose(slerp(a, b, t).numpy(), want, atol=1e-6)


def test_slerp_edge_cases() -> None:
    a = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: linear interpolation
    assert torch.allclose(slerp(a, torch.zeros(3), 0.5), 0.5 * a)  # a zero update
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    mid = slerp(e1, e2, 0.5)
    assert mid.norm().item() == pytest.approx(1.0)  # stays on the sphere, unlike the mean


def test_several_checkpoints_fold_in_one_by_one() -> None:
    g = torch.Generator().manual_seed(1)
    ds = [torch.randn(4, 3, generator=g) for _ in range(3)]
    c = spherical_mean_weights(ds)
    got = sum(ci * d.double() for ci, d in zip(c, ds, strict=True))
    m = literal_slerp(ds[0].numpy(), ds[1].numpy(), 1 / 2)
    m = literal_slerp(m, ds[2].numpy(), 1 / 3)
    assert np.allclose(got.numpy(), m, atol=1e-9)
    with pytest.raises(ValueError, match="two"):
        spherical_mean_weights(ds, t=0.3)


def deltas(checkpoint: Path) -> dict[str, np.ndarray]:
    """Each LoRA update of a checkpoint, (alpha / r) * B @ A, from its files."""
    config = json.loads((checkpoint / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    w = load_file(str(checkpoint / "adapter_model.safetensors"))
    out = {}
    for key in w:
        if ".lora_A." in key:
            name = key.replace("base_model.model.", "").replace(".lora_A.weight", ".weight")
            b = w[key.replace("lora_A", "lora_B")].double().numpy()
            out[name] = scale * b @ w[key].double().numpy()
    return out


def test_merged_weights_are_base_plus_slerp_of_the_updates(
    adapted: Any, tiny_embedding_dir: Path
) -> None:
    _, out, _ = adapted
    found = checkpoints(out / "train")
    assert len(found) == 5
    merged = load_file(str(out / "model" / "model.safetensors"))
    base = {
        k: v.float() for k, v in load_file(str(tiny_embedding_dir / "model.safetensors")).items()
    }
    per_checkpoint = [deltas(c) for c in found]
    names = sorted(per_checkpoint[0])
    assert len(names) == 2 * 7  # every linear layer of both decoder layers
    for name in names:
        m = per_checkpoint[0][name]
        for k in range(1, 5):
            m = literal_slerp(m, per_checkpoint[k][name], 1 / (k + 1))
        assert np.allclose(
            merged[name].double().numpy(), base[name].double().numpy() + m, atol=2e-6
        ), name
    untouched = [k for k in base if k not in names]
    assert untouched and all(torch.equal(merged[k], base[k]) for k in untouched)
    assert merged[names[0]].dtype == torch.float32  # the update is not rounded to bf16


def test_merged_folder_is_a_normal_model_folder_every_class_loads(adapted: Any) -> None:
    from langchain_qwen3 import Qwen3Embeddings
    from llamaindex_qwen3 import Qwen3Embedding

    _, out, _ = adapted
    folder = out / "model"
    files = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "qwen3_rag_adapt.json"} <= files
    info = json.loads((folder / "qwen3_rag_adapt.json").read_text())
    assert {"base_model", "instruction", "data", "merge", "evaluation"} <= set(info)
    assert info["merge"]["max_gap_to_adapter"] <= 1e-4
    queries, docs = (
        ["Gra ity ls", "query pro"],
        ["ity of ls yes Gra the.", "query that lar of pro."],
    )
    core = Embedder(str(folder))
    want_q, want_d = core.embed_queries(queries), core.embed_documents(docs)
    lc = Qwen3Embeddings(model=str(folder))
    li = Qwen3Embedding(str(folder))
    assert np.allclose(lc.embed_documents(docs), want_d, atol=1e-6)
    assert np.allclose(lc.embed_query(queries[0]), want_q[0], atol=1e-6)
    assert np.allclose(li.get_text_embedding_batch(docs), want_d, atol=1e-6)
    assert np.allclose(li.get_query_embedding(queries[1]), want_q[1], atol=1e-6)
    base = Embedder(info["base_model"]).embed_documents(docs)
    assert np.abs(base - want_d).max() > 1e-2  # and it is not the base model


def probes() -> tuple[list[str], list[str]]:
    return ["Gra ity ls", "query pro", "ire ee"], [
        "ity of ls yes Gra.",
        "query that lar.",
        "re dat.",
    ]


TASK = "Given a web search query, retrieve relevant passages that answer the query"


def literal_embed(model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """The README recipe with transformers' own forward: one text at a time, no padding."""
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")  # not eos_token (<|im_end|>)
    rows = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        if not ids or ids[-1] != eos:
            ids = [*ids, eos]
        with torch.no_grad():
            rows.append(model(input_ids=torch.tensor([ids])).last_hidden_state[0, -1])
    return torch.nn.functional.normalize(torch.stack(rows).float(), dim=-1).numpy()


def test_adapted_vectors_equal_a_plain_transformers_forward(
    adapted: Any, tiny_embedding_dir: Path
) -> None:
    """The lean forward, with the merged weights or with a LoRA adapter in place, is exact."""
    from peft import PeftModel
    from transformers import AutoTokenizer, Qwen3Model

    from qwen3_rag.adapt.train import AdaptedModel
    from tests.models import load_reference

    _, out, _ = adapted
    queries, docs = probes()
    texts = [f"Instruct: {TASK}\nQuery:{q}" for q in queries] + docs
    tokenizer = AutoTokenizer.from_pretrained(tiny_embedding_dir)
    # the merged folder through the inference path (Embedder) ...
    merged = Embedder(str(out / "model"))
    got = np.concatenate([merged.embed_queries(queries), merged.embed_documents(docs)])
    want = literal_embed(load_reference(Qwen3Model, out / "model"), tokenizer, texts)
    assert np.abs(got - want).max() <= 1e-5
    # ... and a trained adapter in place through the training path (what the loss sees)
    last = checkpoints(out / "train")[-1]
    model = AdaptedModel("embedding", str(tiny_embedding_dir), max_length=128)
    model.load_adapters([last])
    with torch.no_grad():
        inputs = model.formatter.query_inputs(queries) + model.formatter.document_inputs(docs)
        trained, _ = model.embed(inputs)
    assert inputs == texts
    plain = PeftModel.from_pretrained(load_reference(Qwen3Model, tiny_embedding_dir), str(last))
    want = literal_embed(plain.eval(), tokenizer, texts)
    assert np.abs(trained.numpy() - want).max() <= 1e-5
    base = literal_embed(load_reference(Qwen3Model, tiny_embedding_dir), tokenizer, texts)
    assert np.abs(base - want).max() > 1e-2  # the adapter does change the vectors


def test_verification_fails_on_an_unmerged_folder(
    adapted: Any, tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    _, out, _ = adapted
    queries, docs = probes()
    merged = Embedder(str(out / "model"))
    reference = np.concatenate([merged.embed_queries(queries), merged.embed_documents(docs)])
    # the folder verifies against the adapter's outputs ...
    gap, change = verify_model_folder(
        out / "model",
        base_model=str(tiny_embedding_dir),
        reference=reference,
        probes=(queries, docs),
    )
    assert gap <= 1e-5 and change > 1e-2
    # ... a folder holding the base weights (the LoRA never merged) does not
    unmerged = tmp_path / "unmerged"
    shutil.copytree(tiny_embedding_dir, unmerged)
    with pytest.raises(MergeError, match="does not reproduce the adapter-in-place model"):
        verify_model_folder(
            unmerged,
            base_model=str(tiny_embedding_dir),
            reference=reference,
            probes=(queries, docs),
        )
    # ... nor does one whose outputs are the base model's, even if that is the reference
    base = Embedder(str(tiny_embedding_dir))
    same = np.concatenate([base.embed_queries(queries), base.embed_documents(docs)])
    with pytest.raises(MergeError, match="base model's outputs"):
        verify_model_folder(
            unmerged, base_model=str(tiny_embedding_dir), reference=same, probes=(queries, docs)
        )


def test_a_merge_that_leaves_the_weights_unchanged_writes_nothing(
    adapted: Any, tiny_embedding_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classic trap: the adapter is dropped instead of merged; the folder is refused."""
    from peft.tuners.lora import LoraModel

    _, out, _ = adapted
    monkeypatch.setattr(LoraModel, "merge_and_unload", lambda self, **kw: self.unload())
    target = tmp_path / "model"
    with pytest.raises(MergeError, match="does not reproduce"):
        merge_checkpoints(
            str(tiny_embedding_dir), checkpoints(out / "train")[-1:], target, probes=probes()
        )
    assert not target.exists() and not any(tmp_path.iterdir())
    clear_cache()


def test_merge_refuses_an_existing_folder(adapted: Any, tiny_embedding_dir: Path) -> None:
    _, out, _ = adapted
    with pytest.raises(FileExistsError, match="overwrite"):
        merge_checkpoints(
            str(tiny_embedding_dir), checkpoints(out / "train"), out / "model", probes=probes()
        )
