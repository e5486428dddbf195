"""Opt-in: a real OpenAI-compatible engine, Infinity, serving a Qwen3-Embedding folder on CPU.

Infinity cannot live in the project's environment (it pins transformers < 5 and
sentence-transformers < 4), so it runs from its own virtual environment, named by
``QWEN3_RAG_INFINITY=/path/to/venv/bin/infinity_emb`` (made with
``pip install "infinity-emb[server,torch]" torch==2.13.0+cpu``). The test gives the random-weight
model folder the sentence-transformers files of the published model (last-token pooling,
normalisation), starts the server on a free loopback port, compares it with the local path
through the client, and stops it.

What it shows (infinity-emb 0.0.78): the client finds Infinity's ``/embeddings`` route, its
client-side truncation and Matryoshka cut give the local vectors (<= 1e-5); and Infinity
strips leading and trailing whitespace from every input and cuts a ~900-token text its own
way, so such texts embed differently: the engine disagreements ``check-server`` exists to
reveal.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from qwen3_rag import Embedder
from qwen3_rag.server_check import PROBE_DOCUMENTS, check_server

INFINITY = os.environ.get("QWEN3_RAG_INFINITY", "")
pytestmark = pytest.mark.skipif(
    not INFINITY or not Path(INFINITY).is_file(),
    reason="set QWEN3_RAG_INFINITY to an infinity_emb executable (its own venv) to run",
)


def _st_folder(model: Path, target: Path) -> Path:
    shutil.copytree(model, target)
    modules = [
        ("0", "", "Transformer"),
        ("1", "1_Pooling", "Pooling"),
        ("2", "2_Normalize", "Normalize"),
    ]
    (target / "modules.json").write_text(
        json.dumps(
            [
                {"idx": i, "name": n, "path": p, "type": f"sentence_transformers.models.{t}"}
                for i, (n, p, t) in enumerate(modules)
            ]
        )
    )
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 64,
                "pooling_mode_cls_token": False,
                "pooling_mode_mean_tokens": False,  # on by default in sentence-transformers
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
                "pooling_mode_lasttoken": True,
            }
        )
    )
    (target / "2_Normalize").mkdir()
    (target / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8192}))
    return target


def test_infinity_serves_the_recipe_except_edge_whitespace(
    real_embedding_dir: Path, tmp_path: Path
) -> None:
    folder = _st_folder(real_embedding_dir, tmp_path / "model")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "infinity.log").open("w")
    args = ["--port", str(port), "--host", "127.0.0.1", "--engine", "torch", "--device", "cpu"]
    proc = subprocess.Popen(
        [INFINITY, "v2", "--model-id", str(folder), *args, "--no-bettertransformer"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "infinity.log").read_text()[-2000:]
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "infinity did not start in 240 s"
            time.sleep(1)
        local = Embedder(str(folder), device="cpu", max_length=64)
        served = Embedder(str(folder), base_url=url, max_length=64)
        texts = ["What is the capital of China?", PROBE_DOCUMENTS[1], PROBE_DOCUMENTS[3]]
        np.testing.assert_allclose(
            served.embed_queries(texts), local.embed_queries(texts), atol=1e-5
        )
        np.testing.assert_allclose(
            served.embed_documents(texts), local.embed_documents(texts), atol=1e-5
        )  # the long document is cut on the client, exactly
        assert served.remote is not None and served.remote.urls == [f"{url}/embeddings"]
        small = Embedder(str(folder), base_url=url, dimensions=32, max_length=64)
        want = Embedder(str(folder), device="cpu", dimensions=32, max_length=64)
        np.testing.assert_allclose(
            small.embed_documents(texts), want.embed_documents(texts), atol=1e-5
        )
        # Whole (~900 tokens, under max_length 8192), the long document is cut by Infinity
        # its own way: only the client's cut makes long texts agree.
        whole = Embedder(str(folder), base_url=url).embed_documents([PROBE_DOCUMENTS[3]])
        reference = Embedder(str(folder), device="cpu").embed_documents([PROBE_DOCUMENTS[3]])
        assert (whole @ reference.T).item() < 0.999
        edge = Embedder(str(folder), base_url=url).embed_documents([" abc "])
        assert (edge @ local.embed_documents([" abc "]).T).item() < 0.99  # Infinity strips it
        report = check_server(embed_url=url, embedding_model=str(folder), max_length=64)
        assert not report.ok  # the probe's code document ends with a newline
        worst = min(report.probes, key=lambda p: p.min_cosine or 1.0)
        assert worst.name.startswith("documents")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
