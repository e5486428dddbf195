from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")

from qwen3_rag import Embedder  # noqa: E402
from qwen3_rag.chroma import Qwen3EmbeddingFunction  # noqa: E402
from qwen3_rag.instructions import PRESETS, Preset  # noqa: E402
from tests.models import REPO_ROOT  # noqa: E402

DOCS = ["The capital of China is Beijing.", "Gravity attracts two bodies.", "Paris is in France."]


def _client(path: Path):  # type: ignore[no-untyped-def]
    from chromadb.config import Settings

    return chromadb.PersistentClient(str(path), settings=Settings(anonymized_telemetry=False))


def test_registered_and_config_round_trip(tiny_embedding_dir: Path) -> None:
    from chromadb.utils.embedding_functions import known_embedding_functions

    assert known_embedding_functions["qwen3_rag"] is Qwen3EmbeddingFunction
    ef = Qwen3EmbeddingFunction(str(tiny_embedding_dir), instruction="code_search", dimensions=32)
    cfg = ef.get_config()
    assert cfg == {
        "model": str(tiny_embedding_dir.resolve()),
        "revision": None,
        "instruction": "code_search",
        "instruction_symmetric": False,
        "dimensions": 32,
    }
    assert json.loads(json.dumps(cfg)) == cfg
    again = Qwen3EmbeddingFunction.build_from_config(cfg)
    assert again.get_config() == cfg
    assert again.embedder.preset == PRESETS["code_search"]
    assert ef.default_space() == "cosine"
    assert not ef.is_legacy()


def test_custom_symmetric_instruction_round_trip(tiny_embedding_dir: Path) -> None:
    preset = Preset("custom", "Find texts on the same topic", symmetric=True)
    ef = Qwen3EmbeddingFunction(str(tiny_embedding_dir), instruction=preset)
    again = Qwen3EmbeddingFunction.build_from_config(ef.get_config())
    assert again.embedder.preset is not None
    assert again.embedder.preset.instruction == "Find texts on the same topic"
    assert again.embedder.preset.symmetric


def test_bad_config_rejected() -> None:
    with pytest.raises(ValueError, match="model"):
        Qwen3EmbeddingFunction.build_from_config({"dimensions": 32})
    with pytest.raises(ValueError, match="dimensions"):
        Qwen3EmbeddingFunction.build_from_config({"model": "x/y", "dimensions": "32"})
    ef = Qwen3EmbeddingFunction("Qwen/Qwen3-Embedding-0.6B")
    with pytest.raises(ValueError, match="cannot change model"):
        ef.validate_config_update(ef.get_config(), {"model": "Qwen/Qwen3-Embedding-4B"})


def test_documents_raw_queries_with_instruction(tiny_embedding_dir: Path) -> None:
    ef = Qwen3EmbeddingFunction(str(tiny_embedding_dir), dtype="float32")
    emb = Embedder(str(tiny_embedding_dir), dtype="float32")
    docs = np.array(ef(DOCS))
    queries = np.array(ef.embed_query(["capital of China?"]))
    np.testing.assert_allclose(docs, emb.embed_documents(DOCS), atol=1e-6)
    np.testing.assert_allclose(queries, emb.embed_queries(["capital of China?"]), atol=1e-6)
    raw = emb.embed_documents(["capital of China?"])
    assert not np.allclose(queries, raw, atol=1e-4)  # the instruction was applied


def test_persisted_and_reopened_in_new_process(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    db = tmp_path / "db"
    ef = Qwen3EmbeddingFunction(str(tiny_embedding_dir), dimensions=48, dtype="float32")
    col = _client(db).create_collection("docs", embedding_function=ef)
    assert col.configuration_json["hnsw"]["space"] == "cosine"
    col.add(ids=["a", "b", "c"], documents=DOCS)
    expected = col.query(query_texts=["capital of China?"], n_results=3)
    script = textwrap.dedent(
        f"""
        import json, chromadb
        from chromadb.config import Settings
        import qwen3_rag.chroma
        settings = Settings(anonymized_telemetry=False)
        client = chromadb.PersistentClient({str(db)!r}, settings=settings)
        col = client.get_collection("docs")
        res = col.query(query_texts=["capital of China?"], n_results=3)
        conf = col.configuration_json["embedding_function"]
        print(json.dumps({{"ids": res["ids"], "dist": res["distances"], "conf": conf}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["conf"]["name"] == "qwen3_rag"
    assert got["conf"]["config"]["dimensions"] == 48
    assert got["conf"]["config"]["model"] == str(tiny_embedding_dir.resolve())
    assert got["ids"] == expected["ids"]
    np.testing.assert_allclose(got["dist"], expected["distances"], atol=1e-5)


def test_mismatched_function_conflict(tmp_path: Path, tiny_embedding_dir: Path) -> None:
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    class Other(DefaultEmbeddingFunction):  # a different registered name
        @staticmethod
        def name() -> str:
            return "other"

    client = _client(tmp_path / "db")
    client.create_collection(
        "docs", embedding_function=Qwen3EmbeddingFunction(str(tiny_embedding_dir))
    )
    conflict = r"Embedding function conflict: new: other vs persisted: qwen3_rag"
    with pytest.raises(ValueError, match=conflict):
        client.get_collection("docs", embedding_function=Other())
