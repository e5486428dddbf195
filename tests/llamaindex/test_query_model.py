"""LlamaIndex's embedding takes the asymmetric pair: an adapted query model over its base."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from llamaindex_qwen3 import Qwen3Embedding
from qwen3_rag import Embedder
from tests.core.test_query_model import adapted_copy


def test_query_embedding_uses_the_query_model_and_text_the_base(
    tiny_embedding_dir: Path, tiny_tokenizer_dir: Path, tmp_path: Path
) -> None:
    base = Path(shutil.copytree(tiny_embedding_dir, tmp_path / "base"))
    adapted = adapted_copy(base, tiny_tokenizer_dir, tmp_path / "adapted")
    li = Qwen3Embedding(model_name=str(base), query_model=str(adapted))
    want_q = Embedder(str(adapted)).embed_queries(["capital of China?"])[0]
    want_d = Embedder(str(base)).embed_documents(["Beijing."])[0]
    np.testing.assert_array_equal(li.get_query_embedding("capital of China?"), want_q)
    np.testing.assert_array_equal(li.get_text_embedding("Beijing."), want_d)
