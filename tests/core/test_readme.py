"""The README's core snippets run (hub ids swapped for the tiny local models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qwen3_rag import PRESETS, clear_cache, loaded_models
from tests.beir import write_beir
from tests.models import convert_to_seq_cls
from tests.readme import link_models, python_block, python_blocks, readme_section


def test_core_snippets_run(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = "\n".join(python_blocks("## Use the core from Python"))
    code = code.replace('"Qwen/Qwen3-Embedding-0.6B"', repr(str(tiny_embedding_dir)))
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    assert str(tiny_embedding_dir) in code and str(tiny_reranker_dir) in code
    clear_cache()
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[[") and out[1].startswith("[(")  # similarities, (index, score)
    assert out[2] == "['embedder', 'reranker']"  # as the comment in the snippet says
    assert loaded_models() == []  # cleared by the snippet
    small = namespace["small"]
    assert small.dimensions == 256 and small.model == str(tiny_embedding_dir)


def test_presets_section_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    section = readme_section("## Instruction presets")
    exec(compile(python_block("## Instruction presets"), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(PRESETS)
    for name in PRESETS:
        assert f"`{name}`" in section


def test_evaluation_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("pytrec_eval")
    code = python_block("## Evaluate retrieval on your data")
    # The tiny model has 64 dimensions, not the 0.6B's 1,024: use a size it has.
    assert "dimensions=256" in code
    code = code.replace("dimensions=256", "dimensions=32")
    link_models(tmp_path, tiny_embedding_dir, tiny_reranker_dir)
    write_beir(tmp_path / "my_dataset")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("my_dataset, split test: 8 queries, 16 documents, exact search")
    assert [line.split("  ")[0] for line in lines[2:6]] == [
        "web_search",
        "question_answering",
        "question_answering d=32",
        "question_answering +rerank@100",
    ]
    assert lines[-1].startswith("{'metric': 'nDCG@10', 'a': ")
    assert len(list((tmp_path / "runs").glob("*.trec"))) == 4
    section = readme_section("## Evaluate retrieval on your data")
    for flag in ("--instruction", "--dimensions", "--rerank", "--fetch-k", "--json", "--runs",
                 "--db", "--id-key", "--split", "--metrics", "--test", "--no-cache"):  # fmt: skip
        assert flag in section, flag
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "query-id corpus-id score"):
        assert name in section


def test_model_server_snippets_run(
    real_embedding_dir: Path, real_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.remote_server import LoopbackServer

    section = readme_section("## Model servers")
    assert "is_original_qwen3_reranker" in section and "QWEN3_RAG_EMBED_API_KEY" in section
    with LoopbackServer(real_embedding_dir, real_reranker_dir).running() as server:
        for code in python_blocks("## Model servers"):
            code = code.replace("http://localhost:8000", server.url)
            code = code.replace("http://localhost:8001", server.url)
            code = code.replace('"Qwen/Qwen3-Embedding-0.6B"', repr(str(real_embedding_dir)))
            code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(real_reranker_dir)))
            code = code.replace("dimensions=256", "dimensions=32")  # the tiny model has 64
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        paths = {r.path for r in server.requests}
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[[") and out[1].startswith("[(")  # similarities, (index, score)
    assert out[2] == "64"  # the LangChain query vector: the served model's full size
    assert paths == {"/v1/embeddings", "/rerank"}


def test_chroma_server_snippet_runs(
    chroma_url: str,
    tiny_embedding_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    section = readme_section("## Ray and a Chroma server")
    for needle in ("chroma run --path", "QWEN3_RAG_CHROMA_URL", "--chroma-url", "no file lock",
                   "--ray-actors", "--ray-cpus", "--ray-gpus", "ray start --head"):  # fmt: skip
        assert needle in section, needle
    monkeypatch.chdir(tmp_path)
    link_models(tmp_path, embedding=tiny_embedding_dir)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "china.md").write_text("The capital of China is Beijing.\n")
    (tmp_path / "notes" / "gravity.md").write_text("Gravity attracts two bodies.\n")
    host, port = chroma_url.removeprefix("http://").split(":")
    code = python_blocks("## Ray and a Chroma server")[0]
    assert 'host="localhost", port=8000' in code and "http://localhost:8000" in code
    code = code.replace('host="localhost", port=8000', f'host="{host}", port={port}')
    code = code.replace("http://localhost:8000", chroma_url)
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[0].startswith("['") and out[0].endswith(".md']")
    assert out[1] in ("The capital of China is Beijing.", "Gravity attracts two bodies.")
    assert out[2] in ("The capital of China is Beijing.", "Gravity attracts two bodies.")
    from qwen3_rag.store import collection_config, connect

    stored = collection_config(connect(chroma_url).get_collection("notes"))
    assert stored["model"] == str(tmp_path / "models" / "Qwen3-Embedding-0.6B")


def test_identity_snippet_runs(
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_tokenizer_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    from qwen3_rag.indexing import index_paths
    from qwen3_rag.store import collection_config, open_client
    from tests.models import build_model

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models" / "Qwen3-Embedding-0.6B"
    shutil.copytree(tiny_embedding_dir, folder)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "china.md").write_text("The capital of China is Beijing.\n")
    index_paths(["notes"], db="qwen3_db", model=str(folder))
    retrained = build_model(tmp_path / "retrained", tiny_tokenizer_dir, kind="embedding", seed=9)
    shutil.copy(retrained / "model.safetensors", folder / "model.safetensors")
    exec(compile(python_block("### Which weights made a vector"), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("sha256:") and out[0].endswith("(torch, float32)")
    assert out[1] == "reranker embedding"
    stored = collection_config(open_client("qwen3_db").get_collection("docs"))["identity"]
    assert stored["weights"] == out[0].split()[0]  # rebuilt with the new weights


def test_long_documents_snippet_runs(
    tiny_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = python_block("## Rerank long documents")
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    assert str(tiny_reranker_dir) in code
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("document" in line for line in lines)
    page = namespace["page"]
    question = "How long do I have to return an item?"
    ranked = {hit[0]: hit.window for hit in namespace["rr"].rank(question, namespace["docs"])}
    start, end = ranked[0]
    assert 0 <= start < end <= len(page) and (start, end) != (0, len(page))  # a window won
    assert ranked[1] == (0, len(namespace["docs"][1]))  # the short one read whole
    section = readme_section("## Rerank long documents")
    for name in ("rerank_window", "long_documents", "window_overlap", "max_windows", "base_url"):
        assert name in section, name


def test_converted_checkpoint_snippet_runs(
    tiny_reranker_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    converted = convert_to_seq_cls(tiny_reranker_dir, tmp_path / "seq-cls")
    code = python_block("## Converted reranker checkpoints")
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    code = code.replace('"tomaarsen/Qwen3-Reranker-0.6B-seq-cls"', repr(str(converted)))
    assert str(converted) in code
    exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    original, scored = capsys.readouterr().out.split("] [")
    assert float(original.strip("[]\n")) == pytest.approx(float(scored.strip("[]\n")), abs=1e-6)


def test_fast_section_runs_and_its_commands_parse(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shlex

    from qwen3_rag.cli import build_parser

    heading = '## Fast on your CPU: `precision="fast"`'
    code = python_block(heading)
    code = code.replace('"Qwen/Qwen3-Embedding-0.6B"', repr(str(tiny_embedding_dir)))
    code = code.replace('"Qwen/Qwen3-Reranker-0.6B"', repr(str(tiny_reranker_dir)))
    clear_cache()
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    emb = namespace["emb"]
    printed = capsys.readouterr().out.strip()
    assert printed.endswith(f"({emb.engine}, {emb.precision})") and emb.fast_choice is not None
    commands = [
        shlex.split(line.split("#")[0])[1:]
        for line in readme_section(heading).splitlines()
        if line.startswith("qwen3-rag ")
    ]
    assert len(commands) == 4
    for argv in commands:
        build_parser().parse_args(argv)  # every flag shown exists
    clear_cache()
