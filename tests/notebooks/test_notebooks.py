"""Both notebooks run top to bottom on the tiny local models, as a user would run them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_notebook(name: str, tmp_path: Path) -> Any:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    return notebook


def outputs(cell: Any) -> str:
    texts = []
    for out in cell.get("outputs", []):
        if out.get("name") == "stdout":  # not stderr, where model loading draws progress bars
            texts.append(out.get("text", ""))
        texts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(texts)


@pytest.fixture()
def model_env(
    monkeypatch: pytest.MonkeyPatch, tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", str(tiny_embedding_dir))
    monkeypatch.setenv("QWEN3_RAG_RERANK_MODEL", str(tiny_reranker_dir))
    monkeypatch.delenv("QWEN3_RAG_CHAT_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # The kernel imports this checkout's packages, not whichever copy is installed.
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(NOTEBOOKS.parent), *filter(None, [path])])
    )


def check_common(notebook: Any) -> list[Any]:
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the score chart is drawn"
    table = next(outputs(c) for c in code if "rerank" in outputs(c) and "vector" in outputs(c))
    scores = [float(line.split()[2]) for line in table.splitlines()[1:] if line.strip()]
    assert len(scores) == 8 and scores == sorted(scores, reverse=True)  # best first
    return code


def test_langchain_notebook_runs(model_env: None, tmp_path: Path) -> None:
    code = check_common(run_notebook("langchain_rag.ipynb", tmp_path))
    assert "10 chunks stored" in outputs(code[2])
    answer = outputs(code[-1])
    assert answer.count("[") >= 3  # the three reranked documents reached the prompt
    assert answer.rstrip().endswith("Beijing is the capital of China (see geo-1).")


def test_llamaindex_notebook_runs(model_env: None, tmp_path: Path) -> None:
    code = check_common(run_notebook("llamaindex_rag.ipynb", tmp_path))
    assert "10 nodes stored" in outputs(code[2])
    final = outputs(code[-1])
    assert len([line for line in final.splitlines() if line.startswith("0.")]) == 3


def test_evaluation_notebook_runs(
    model_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the default vector cache
    notebook = run_notebook("evaluate.ipynb", tmp_path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the bar chart is drawn"
    assert "12 documents, 8 queries" in outputs(code[1])
    table = outputs(code[2]).strip().splitlines()
    assert table[1].split()[:4] == ["configuration", "nDCG@10", "Recall@5", "MRR@10"]
    rows = [line.split()[0] + " " + line.split()[1] for line in table[2:-1]]
    assert (
        rows
        == [
            "web_search d=64",
            "web_search d=32",
            "question_answering d=64",
            "question_answering d=32",
        ]
        * 2
    )  # then the same four, reranked
    assert all("+rerank@10" in line for line in table[6:-1])
    assert len(list((tmp_path / "cache").rglob("*.keys.npy"))) >= 2  # documents, queries
    assert outputs(code[-1]).count("per query:") == 1


def test_adapt_notebook_runs(
    model_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tiny random model's similarities sit far below the real models' 0.7 (see tests/adapt)
    monkeypatch.setenv("QWEN3_RAG_ADAPT_THRESHOLD", "0.3")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models train faster on one thread
    notebook = run_notebook("adapt.ipynb", tmp_path)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "every code cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 1, "the before/after chart is drawn"
    assert outputs(code[1]).startswith("60 files")
    table = outputs(code[3])
    assert "60 passages, 60 with a query" in table and "(verified: max |merged - adapter|" in table
    assert "nDCG@10: " in table and "The adapted model is" in table
    assert "kept=" in outputs(code[4]) and "negative:" in outputs(code[4])
    final = outputs(code[-1]).strip().splitlines()
    assert len(final) == 4 and final[-1] == "slerp of the LoRA updates"
