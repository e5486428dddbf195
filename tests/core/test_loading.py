from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from qwen3_rag import Embedder, ModelLoadError, Reranker
from qwen3_rag.loading import ModelSource, resolve_device, resolve_dtype


def test_default_dtype_is_float32_on_cpu_and_bfloat16_on_cuda() -> None:
    assert resolve_dtype(None, torch.device("cpu")) is torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) is torch.float32
    assert resolve_dtype(None, torch.device("cuda")) is torch.bfloat16
    assert resolve_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_dtype("torch.float16", torch.device("cpu")) is torch.float16
    assert resolve_dtype(torch.float32, torch.device("cpu")) is torch.float32


@pytest.mark.parametrize("bad", ["int8", "float64x", torch.int8, "fp8"])
def test_unknown_dtype_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype(bad, torch.device("cpu"))  # type: ignore[arg-type]


def test_device_choice() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None and not (torch.backends.mps.is_available()):
        assert resolve_device(None) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "cuda:x", "xla"])
def test_unknown_device_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="device"):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        Embedder("Qwen/Qwen3-Embedding-0.6B", device="cuda")


def test_constructing_loads_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "not-there"
    emb = Embedder(str(missing))  # no error: nothing is read until first use
    rr = Reranker(str(missing))
    with pytest.raises(ModelLoadError, match=r"not-there.*no such folder"):
        emb.embed_queries(["x"])
    with pytest.raises(ModelLoadError, match="no such folder"):
        rr.score("q", ["d"])


def test_model_missing_from_the_cache_names_the_model_and_suggests_options(
    tmp_path: Path,
) -> None:
    emb = Embedder("Qwen/Qwen3-Embedding-0.6B", cache_dir=str(tmp_path), local_files_only=True)
    with pytest.raises(ModelLoadError) as info:
        emb.embed_queries(["x"])
    message = str(info.value)
    assert "Qwen/Qwen3-Embedding-0.6B" in message
    assert "local_files_only=True" in message and "cache_dir" in message
    assert "local folder" in message


def test_unreachable_hub_message_suggests_local_files_only() -> None:
    # the wording used when the hub cannot be reached (no network is touched here)
    error = ModelSource("Qwen/Qwen3-Reranker-0.6B").describe_failure("weights", OSError("boom"))
    message = str(error)
    assert "Qwen/Qwen3-Reranker-0.6B" in message
    assert "local_files_only=True" in message and "cache_dir" in message


def test_pickle_only_folder_is_refused(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_embedding_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(ValueError, match=r"pickle.*safetensors"):
        Embedder(str(folder), device="cpu").embed_documents(["x"])


def test_objects_with_the_same_key_share_one_model(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    a = Embedder(str(tiny_embedding_dir), device="cpu", dimensions=32)
    b = Embedder(str(tiny_embedding_dir), device="cpu", instruction="clustering")
    assert a._runtime() is b._runtime()
    c = Embedder(str(tiny_embedding_dir), device="cpu", dtype="bfloat16")
    assert c._runtime() is not a._runtime()
    assert c._runtime().model.dtype == torch.bfloat16
    assert a._runtime().model.dtype == torch.float32
    r1, r2 = Reranker(str(tiny_reranker_dir), device="cpu"), Reranker(str(tiny_reranker_dir))
    if r2.device.type == "cpu":
        assert r1._runtime() is r2._runtime()


def test_model_source_is_local_or_hub(tmp_path: Path) -> None:
    assert ModelSource(str(tmp_path)).is_local
    assert ModelSource("./models/x").is_local
    assert ModelSource("a/b/c").is_local
    assert not ModelSource("Qwen/Qwen3-Embedding-0.6B").is_local
    with pytest.raises(TypeError, match="model"):
        ModelSource("")


def test_dimension_reads_only_the_config(tiny_embedding_dir: Path) -> None:
    emb = Embedder(str(tiny_embedding_dir), dimensions=40)
    assert emb.dimension == 40 and emb.hidden_size == 64


def test_loading_leaves_torch_threads_alone(tiny_embedding_dir: Path) -> None:
    from qwen3_rag import clear_cache, tune_cpu_threads
    from qwen3_rag.loading import cpu_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(cpu_threads() + 3)  # more than usable: only tuning may lower it
        clear_cache()
        Embedder(str(tiny_embedding_dir), device="cpu").embed_documents(["x"])
        assert torch.get_num_threads() == cpu_threads() + 3
        assert tune_cpu_threads() == cpu_threads() == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
        clear_cache()


def test_model_cache_can_be_inspected_and_cleared(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    from qwen3_rag import ModelKey, clear_cache, loaded_models

    clear_cache()
    assert loaded_models() == []
    emb = Embedder(str(tiny_embedding_dir), device="cpu").load()
    rr = Reranker(str(tiny_reranker_dir), device="cpu").load()
    assert loaded_models() == [emb.key, rr.key]
    assert isinstance(emb.key, ModelKey)
    assert (emb.key.kind, emb.key.source.model, emb.key.dtype) == (
        "embedder",
        str(tiny_embedding_dir),
        torch.float32,
    )
    first = emb._runtime()
    clear_cache(emb.key)
    assert loaded_models() == [rr.key]
    assert emb._runtime() is not first  # loads again on next use
    clear_cache()
    assert loaded_models() == []
