"""Every error is one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qwen3_rag import cli
from qwen3_rag.chroma import Qwen3EmbeddingFunction
from tests.cli.conftest import CHUNKING


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tiny_embedding_dir: Path,
    tiny_reranker_dir: Path,
) -> Path:
    monkeypatch.setenv("QWEN3_RAG_EMBED_MODEL", str(tiny_embedding_dir))
    monkeypatch.setenv("QWEN3_RAG_RERANK_MODEL", str(tiny_reranker_dir))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_error(capsys: pytest.CaptureFixture[str], *argv: str, status: int = 1) -> str:
    assert cli.main(list(argv)) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ")
    return last


def test_query_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no index at missing_db" in one_error(capsys, "query", "hi", "--db", "missing_db")
    assert not (env / "missing_db").exists()  # nothing created
    assert "the question is empty" in one_error(capsys, "query", "  ")

    # An empty folder indexes to an empty collection; querying it says so.
    (env / "empty").mkdir()
    assert cli.main(["index", "empty", "--db", "db"]) == 0
    capsys.readouterr()
    assert "'docs' in db is empty" in one_error(capsys, "query", "hi", "--db", "db")
    msg = one_error(capsys, "query", "hi", "--db", "db", "--collection", "nope")
    assert "no collection 'nope' in db (it has: docs)" in msg

    # A collection that another embedding function made.
    from qwen3_rag.store import open_client

    open_client(env / "db").create_collection("foreign", embedding_function=None)
    msg = one_error(capsys, "query", "hi", "--db", "db", "--collection", "foreign")
    assert "was not made by qwen3-rag" in msg


def test_model_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "docs").mkdir()
    (env / "docs" / "a.md").write_text("The capital of China is Beijing.\n\nGravity.\n")
    missing = str(env / "no_such_model")
    msg = one_error(capsys, "index", "docs", "--db", "db", "--embed-model", missing)
    assert f"model={missing!r}: no such folder" in msg
    assert not (env / "db").exists()  # failed before writing anything

    assert cli.main(["index", "docs", "--db", "db", *CHUNKING]) == 0
    capsys.readouterr()
    msg = one_error(capsys, "query", "capital?", "--db", "db", "--rerank-model", missing)
    assert f"model={missing!r}: no such folder" in msg
    msg = one_error(capsys, "query", "capital?", "--db", "db", "--embed-model", missing)
    assert f"model={missing!r}: no such folder" in msg
    msg = one_error(capsys, "index", "docs", "--db", "db", "--dimensions", "32")
    assert "was indexed with dimensions None (asked for 32)" in msg
    msg = one_error(capsys, "query", "capital?", "--db", "db", "--dimensions", "32")
    assert "was indexed with dimensions None (asked for 32)" in msg
    assert msg.endswith("drop --dimensions")
    assert "dtype='fp8'" in one_error(capsys, "query", "capital?", "--db", "db", "--dtype", "fp8")
    msg = one_error(
        capsys,
        "index",
        "docs",
        "--db",
        "db",
        "--embed-model",
        missing.replace("no_such_model", "x/y/z"),
    )
    assert "was indexed with model" in msg


def test_argument_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such file or folder: nothere" in one_error(capsys, "index", "nothere")
    (env / "f.txt").write_text("hello")
    msg = one_error(capsys, "index", "f.txt", "--chunk-size", "8", "--chunk-overlap", "8")
    assert "--chunk-overlap (8) must be smaller than --chunk-size (8)" in msg
    (env / "dbfile").write_text("")
    assert "is a file, not a folder" in one_error(capsys, "index", "f.txt", "--db", "dbfile")
    with pytest.raises(SystemExit) as exc:
        cli.main(["query", "hi", "-k", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_interrupt_is_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.index, "cmd_index", interrupted)
    assert cli.main(["index", "."]) == 130
    err = capsys.readouterr().err
    assert err.strip() == (
        "interrupted: what was written is kept; run the same command again to finish"
    )


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("qwen3-rag")
    if not script.exists():
        pytest.skip("the qwen3-rag entry point is not installed in this environment")
    out = subprocess.run([script, "query", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for flag in ("--fetch-k", "--no-rerank", "--json", "--embed-model", "--rerank-model"):
        assert flag in out.stdout
    out = subprocess.run(
        [script, "query", "hi", "--db", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: no index at {tmp_path / 'none'}: run `qwen3-rag index PATH... "
        f"--db {tmp_path / 'none'}` first"
    ]


def test_function_is_shared_with_chroma_module(tiny_embedding_dir: Path) -> None:
    # The CLI builds the collection's function through qwen3_rag.chroma (same registry name).
    assert Qwen3EmbeddingFunction.name() == "qwen3_rag"


def run_command(
    args: list[str], cwd: Path, env: dict[str, str], module: str = "qwen3_rag.cli"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == len(set(lines)), stderr  # no line printed twice
    assert lines[-1].startswith("error: ")
    assert "local_files_only" not in stderr  # a Python keyword means nothing at a shell
    return lines[-1]


def test_unreachable_hub_model_names_the_flags(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # HF_HUB_OFFLINE=1 (set by cli_env) makes the hub unreachable at once, as no network does
    # after huggingface_hub's retries.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("The capital of China is Beijing.\n")
    hub_id = "qwen3-rag-tests/no-such-model"
    proc = run_command(["index", "docs", "--db", "db", "--embed-model", hub_id], tmp_path, cli_env)
    assert proc.returncode == 1
    line = assert_one_error_line(proc.stderr)
    assert f"the embedding model {hub_id!r} is not in the local Hugging Face cache" in line
    for fix in ("--embed-model PATH", "QWEN3_RAG_EMBED_MODEL=PATH", "HF_HUB_OFFLINE"):
        assert fix in line
    assert not (tmp_path / "db").exists()

    proc = run_command(["index", "docs", "--db", "db", *CHUNKING], tmp_path, cli_env)
    assert proc.returncode == 0, proc.stderr
    proc = run_command(
        ["query", "capital?", "--db", "db", "--rerank-model", hub_id], tmp_path, cli_env
    )
    assert proc.returncode == 1
    line = assert_one_error_line(proc.stderr)
    assert f"the reranker model {hub_id!r}" in line
    for fix in ("--rerank-model PATH", "QWEN3_RAG_RERANK_MODEL=PATH", "HF_HUB_OFFLINE"):
        assert fix in line
    assert proc.stdout == ""

    # Without HF_HUB_OFFLINE the line says what to set for the cache-only path instead.
    online = {k: v for k, v in cli_env.items() if k not in ("HF_HUB_OFFLINE",)}
    script = (
        "import sys\n"
        "from qwen3_rag import ModelLoadError, cli\n"
        "try:\n"
        "    with cli.model_errors('embedding', 'Qwen/Qwen3-Embedding-0.6B'):\n"
        "        raise ModelLoadError('pass local_files_only=True')\n"
        "except cli.CliError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=online, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "set HF_HUB_OFFLINE=1" in out.stdout and "--embed-model PATH" in out.stdout


def test_library_log_lines_are_printed_once(cli_env: dict[str, str], tmp_path: Path) -> None:
    # huggingface_hub and transformers bring log handlers of their own; the command prints
    # each of their records once, through its one handler.
    script = (
        "import logging\n"
        "from qwen3_rag import cli\n"
        "cli.setup_logging(verbose=False, quiet=False)\n"
        "from huggingface_hub.utils import logging as hub_logging\n"
        "from transformers.utils import logging as hf_logging\n"
        "hub = hub_logging.get_logger('huggingface_hub.utils._http')\n"
        "hub.warning('Retrying in 1s [Retry 1/5].')\n"
        "hf_logging.get_logger('transformers.modeling_utils').error('weights missing')\n"
        "logging.getLogger('qwen3_rag.indexing').info('skipped binary file x.bin')\n"
        "logging.getLogger('qwen3_rag.loading').info('Loading (hidden at the default level)')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "huggingface_hub: Retrying in 1s [Retry 1/5].",
        "transformers: weights missing",
        "skipped binary file x.bin",
    ]
