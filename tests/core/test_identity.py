"""Which weights made a vector: a folder's or hub snapshot's identity, and the checkpoint kind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import pytest
import torch

from qwen3_rag import Embedder, ModelKindError, Reranker
from qwen3_rag.identity import ModelIdentity, folder_fingerprint, inspect_checkpoint
from qwen3_rag.loading import ModelSource
from tests.models import build_model, tiny_config


def copy_model(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def rewrite_weights(folder: Path, tokenizer_dir: Path, *, kind: str, seed: int) -> None:
    """New weights of the same shapes under the same folder, as `adapt --overwrite` does."""
    tmp = folder.with_name(folder.name + "-new")
    build_model(tmp, tokenizer_dir, kind=kind, seed=seed)
    shutil.copy(tmp / "model.safetensors", folder / "model.safetensors")


def literal_tensor_bytes(path: Path) -> dict[str, bytes]:
    """Each tensor's raw bytes, read with nothing but the safetensors format spec."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    start = 8 + size
    return {
        name: data[start + info["data_offsets"][0] : start + info["data_offsets"][1]]
        for name, info in header.items()
        if name != "__metadata__"
    }


# -- the fingerprint of a folder -------------------------------------------------------------


def test_a_copied_or_touched_folder_keeps_its_identity(
    tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    copy = copy_model(tiny_embedding_dir, tmp_path / "elsewhere")
    os.utime(copy / "model.safetensors", (1, 1))  # file times are not content
    assert folder_fingerprint(copy) == folder_fingerprint(tiny_embedding_dir)
    assert Embedder(str(copy)).identity() == Embedder(str(tiny_embedding_dir)).identity()


def test_new_weights_of_the_same_shapes_change_the_identity(
    tiny_embedding_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    folder = copy_model(tiny_embedding_dir, tmp_path / "model")
    before = Embedder(str(folder)).identity()
    old = literal_tensor_bytes(folder / "model.safetensors")
    rewrite_weights(folder, tiny_tokenizer_dir, kind="embedding", seed=7)
    new = literal_tensor_bytes(folder / "model.safetensors")
    assert old.keys() == new.keys() and all(len(old[k]) == len(new[k]) for k in old)
    assert (folder / "model.safetensors").stat().st_size == (
        tiny_embedding_dir / "model.safetensors"
    ).stat().st_size  # same size, same header: only the values moved
    after = Embedder(str(folder)).identity()
    assert after.weights != before.weights
    assert before.changes(after) == [f"weights {before.weights} -> {after.weights}"]


def test_one_changed_tensor_changes_the_identity(tiny_embedding_dir: Path, tmp_path: Path) -> None:
    """A LoRA merged into one projection of one layer still shows."""
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_embedding_dir, tmp_path / "model")
    tensors = load_file(folder / "model.safetensors")
    name = "layers.1.self_attn.k_proj.weight"
    tensors[name] = tensors[name] + 0.01 * torch.ones_like(tensors[name])
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    assert folder_fingerprint(folder) != folder_fingerprint(tiny_embedding_dir)


def test_the_tokenizer_and_config_are_part_of_the_identity(
    tiny_embedding_dir: Path, tmp_path: Path
) -> None:
    folder = copy_model(tiny_embedding_dir, tmp_path / "model")
    text = (folder / "tokenizer.json").read_text()
    (folder / "tokenizer.json").write_text(text.replace('"<|im_end|>"', '"<|im_end|> "', 1))
    assert folder_fingerprint(folder) != folder_fingerprint(tiny_embedding_dir)
    folder2 = copy_model(tiny_embedding_dir, tmp_path / "model2")
    config = json.loads((folder2 / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (folder2 / "config.json").write_text(json.dumps(config))
    assert folder_fingerprint(folder2) != folder_fingerprint(tiny_embedding_dir)


def test_precision_and_engine_are_part_of_the_identity(tiny_embedding_dir: Path) -> None:
    exact = Embedder(str(tiny_embedding_dir), device="cpu").identity()
    bf16 = Embedder(str(tiny_embedding_dir), device="cpu", dtype="bfloat16").identity()
    assert (exact.engine, exact.precision) == ("torch", "float32")
    assert bf16.precision == "bfloat16" and bf16.weights == exact.weights
    assert exact.changes(bf16) == ["precision float32 -> bfloat16"]
    served = Embedder(str(tiny_embedding_dir), base_url="http://127.0.0.1:9").identity()
    assert (served.engine, served.precision) == ("server", "unknown")
    assert exact.changes(served) == []  # a server runs the same recipe; its precision unknown


def test_a_hub_id_is_its_resolved_snapshot_commit(tiny_embedding_dir: Path, tmp_path: Path) -> None:
    """The hub cache's own layout: refs/main names the snapshot folder the loader reads."""
    repo = tmp_path / "hub" / "models--org--tiny-embedding"
    first, second = "a" * 40, "b" * 40
    for commit in (first, second):
        shutil.copytree(tiny_embedding_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(first)
    emb = Embedder("org/tiny-embedding", cache_dir=str(tmp_path / "hub"), local_files_only=True)
    assert emb.identity().weights == f"hub:{first}"
    (repo / "refs" / "main").write_text(second)  # `main` moved to a new snapshot
    assert emb.identity().weights == f"hub:{second}"
    pinned = Embedder(
        "org/tiny-embedding", revision=first, cache_dir=str(tmp_path / "hub"), local_files_only=True
    )
    assert pinned.identity().weights == f"hub:{first}"


def test_the_identity_costs_milliseconds_not_a_full_read(
    tiny_embedding_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only headers and samples are read: hashing never sees a whole large tensor."""
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_embedding_dir, tmp_path / "model")
    tensors = load_file(folder / "model.safetensors")
    tensors["big.weight"] = torch.zeros(1024, 1024)  # 4 MiB
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    seen: list[int] = []
    real = hashlib.sha256

    class Counting:
        def __init__(self, data: bytes = b"") -> None:
            self._h = real(data)
            seen.append(len(data))

        def update(self, data: bytes) -> None:
            seen.append(len(data))
            self._h.update(data)

        def hexdigest(self) -> str:
            return self._h.hexdigest()

        def digest(self) -> bytes:
            return self._h.digest()

    monkeypatch.setattr("qwen3_rag.identity.hashlib.sha256", Counting)
    folder_fingerprint(folder)
    size = (folder / "model.safetensors").stat().st_size
    weight_reads = sum(seen) - sum(
        p.stat().st_size for p in folder.iterdir() if p.suffix != ".safetensors"
    )
    assert weight_reads < size / 4  # the 4 MiB tensor is sampled, not read


# -- the kind of checkpoint ------------------------------------------------------------------


def test_the_tests_models_are_what_they_claim(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    assert inspect_checkpoint(ModelSource(str(tiny_embedding_dir))).kind == "embedding"
    found = inspect_checkpoint(ModelSource(str(tiny_reranker_dir)))
    assert (found.kind, found.lm_head) == ("causal-lm", True)  # tied to the embeddings


def test_a_reranker_given_to_the_embedder_is_refused(tiny_reranker_dir: Path) -> None:
    with pytest.raises(ModelKindError, match=r"not an embedding model.*swapped") as info:
        Embedder(str(tiny_reranker_dir)).embed_queries(["hello"])
    assert str(tiny_reranker_dir) in str(info.value)
    assert "Qwen3-Embedding" in str(info.value)  # names the model it needs
    assert (info.value.expected, info.value.found) == ("embedding", "reranker")
    assert isinstance(info.value, OSError)  # a ModelLoadError, as before


def test_an_embedding_model_given_to_the_reranker_is_refused(tiny_embedding_dir: Path) -> None:
    with pytest.raises(ModelKindError, match=r"no LM head.*not a reranker.*swapped"):
        Reranker(str(tiny_embedding_dir)).score("q", ["d"])
    with pytest.raises(ModelKindError):
        Reranker(str(tiny_embedding_dir)).identity()


def test_an_untied_causal_lm_without_its_head_is_refused(
    tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    """An untied head that is not stored would be initialised at random: never scored."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    folder = build_model(
        tmp_path / "untied",
        tiny_tokenizer_dir,
        kind="reranker",
        config=tiny_config(vocab, tie=False),
    )
    assert inspect_checkpoint(ModelSource(str(folder))).lm_head  # stored: fine
    tensors = load_file(folder / "model.safetensors")
    del tensors["lm_head.weight"]
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelKindError, match="yes/no rows would be random"):
        Reranker(str(folder)).score("q", ["d"])


def test_sequence_classification_heads_other_than_one_row_are_refused_clearly(
    tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    """One row (the published conversions) is read; two rows, or a bias, cannot be."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer, Qwen3ForSequenceClassification

    vocab = len(AutoTokenizer.from_pretrained(tiny_tokenizer_dir))
    folders = {}
    for labels in (1, 2):
        config = tiny_config(vocab, tie=False)
        config.num_labels = labels
        folder = folders[labels] = tmp_path / f"seq-cls-{labels}"
        Qwen3ForSequenceClassification(config).save_pretrained(folder)
        shutil.copy(tiny_tokenizer_dir / "tokenizer.json", folder / "tokenizer.json")
    found = inspect_checkpoint(ModelSource(str(folders[1])))
    assert (found.kind, found.score_rows) == ("sequence-classification", 1)
    Reranker(str(folders[1])).identity()  # readable: no error
    with pytest.raises(ModelKindError, match=r"2-row score head.*one-row score head") as info:
        Reranker(str(folders[2])).identity()
    assert "Qwen3ForSequenceClassification" in str(info.value)
    with pytest.raises(ModelKindError, match="2-row score head"):
        Reranker(str(folders[2])).score("q", ["d"])
    with pytest.raises(ModelKindError, match="not an embedding model"):
        Embedder(str(folders[1])).identity()
    tensors = load_file(folders[1] / "model.safetensors")
    tensors["score.bias"] = torch.zeros(1)
    save_file(tensors, folders[1] / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelKindError, match="one-row score head"):
        Reranker(str(folders[1])).score("q", ["d"])


def test_identity_round_trips_and_rejects_a_malformed_record() -> None:
    a = ModelIdentity("sha256:00", "torch", "int8")
    assert ModelIdentity.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    with pytest.raises(ValueError, match="lacks weights"):
        ModelIdentity.from_dict({"engine": "torch", "precision": "float32"})
