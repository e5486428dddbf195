from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.models import REPO_ROOT

# Small chunks and batches so a few short files make several chunks and several batches.
CHUNKING = ["--chunk-size", "40", "--chunk-overlap", "8", "--batch-size", "4"]

PARAGRAPHS = {
    "capitals.md": [
        "# Capitals",
        "The capital of China is Beijing. It is a very large city in the north.",
        "Paris is the capital of France and a large city in Europe.",
        "Berlin is the capital of Germany; it sits on the river Spree.",
    ],
    "notes/physics.txt": [
        f"Paragraph {i}: gravity is a force that attracts two bodies towards each other; "
        f"it gives weight to objects and moves planet number {i} around the sun."
        for i in range(6)
    ],
    "notes/code.py": [
        '"""Python is a programming language."""',
        "def main():\n    return 42",
        "Machine learning models turn text into vectors; similar texts get similar vectors.",
    ],
}


def write_corpus(root: Path) -> Path:
    """Three text files (one nested), a binary file, and a hidden folder that must be skipped."""
    for name, paragraphs in PARAGRAPHS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    (root / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


@pytest.fixture(scope="session")
def cli_env(tiny_embedding_dir: Path, tiny_reranker_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "QWEN3_RAG_EMBED_MODEL": str(tiny_embedding_dir),
            "QWEN3_RAG_RERANK_MODEL": str(tiny_reranker_dir),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    return env


RunCli = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_cli(cli_env: dict[str, str], tmp_path: Path) -> RunCli:
    """Run ``python -m qwen3_rag.cli ARGS`` in ``tmp_path``; returns the completed process.

    ``faults=[...]`` runs it under ``python -m tests.cli.faults FAULTS --`` instead, which
    injects a fault (a SIGKILL, a pause) from the test side.
    """

    def run(
        *args: str, env: dict[str, str] | None = None, faults: Sequence[str] = ()
    ) -> subprocess.CompletedProcess[str]:
        command = ["tests.cli.faults", *faults, "--"] if faults else ["qwen3_rag.cli"]
        return subprocess.run(
            [sys.executable, "-m", *command, *args],
            cwd=tmp_path,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run


def read_db(db: Path, collection: str = "docs") -> dict[str, dict[str, Any]]:
    """Every record of a collection: id -> document, metadata, embedding.

    Reads a copy of the folder, so this process never holds the live store open.
    """
    import chromadb
    from chromadb.config import Settings

    import qwen3_rag.chroma  # noqa: F401  (registers the embedding function)

    copy = db.parent / f"snapshot-{uuid.uuid4().hex}"
    shutil.copytree(db, copy)
    client = chromadb.PersistentClient(str(copy), settings=Settings(anonymized_telemetry=False))
    got = client.get_collection(collection).get(include=["documents", "metadatas", "embeddings"])
    return {
        id_: {"document": doc, "metadata": dict(meta), "embedding": list(map(float, emb))}
        for id_, doc, meta, emb in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }
