"""One source of options: defaults, validation, and what ``instruction=None`` means."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest

from qwen3_rag import PRESETS, Embedder, EmbedderOptions, Reranker, RerankerOptions
from qwen3_rag.instructions import format_query, format_rerank_body
from qwen3_rag.options import describe


@pytest.mark.parametrize(
    ("cls", "options"), [(Embedder, EmbedderOptions), (Reranker, RerankerOptions)]
)
def test_constructor_arguments_are_the_options(cls: type, options: type) -> None:
    """The flat constructor and the options dataclass name the same settings, same defaults."""
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self")
    fields = {f.name: f.default for f in dataclasses.fields(options)}
    assert next(iter(params)) == "model"
    assert {name: p.default for name, p in params.items()} == fields
    for f in dataclasses.fields(options):
        assert describe(options, f.name).endswith(".")


def test_from_options_round_trips() -> None:
    emb = Embedder("some/model", dimensions=64, batch_size=4, instruction="code_search")
    again = Embedder.from_options(emb.options)
    assert again.options == emb.options
    assert repr(again) == repr(emb)
    assert "dimensions=64" in repr(emb) and "batch_size=4" in repr(emb)
    rr = Reranker("other/model", max_length=512)
    assert Reranker.from_options(rr.options).options == rr.options


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dimensions": 16}, ValueError, "dimensions must be an integer >= 32"),
        ({"dimensions": 64.0}, ValueError, "dimensions"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"max_length": 1}, ValueError, "max_length"),
        ({"max_batch_tokens": -5}, ValueError, "max_batch_tokens"),
        ({"instruction": "web_serch"}, ValueError, "not a known preset"),
        ({"instruction": 3}, TypeError, "instruction"),
        ({"quantize": "int4"}, ValueError, "quantize"),
        ({"local_files_only": "yes"}, TypeError, "local_files_only"),
        ({"model": ""}, TypeError, "model"),
        ({"revision": 3}, TypeError, "revision"),
    ],
)
def test_bad_options_name_the_argument(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        EmbedderOptions(**kwargs)
    with pytest.raises(error, match=match):
        Embedder(**kwargs)


def test_none_means_the_default_instruction_and_empty_means_none() -> None:
    assert Embedder("m").preset == PRESETS["web_search"]
    assert Embedder("m", instruction=None).preset == PRESETS["web_search"]
    assert Embedder("m", instruction="").preset is None
    assert Embedder("m", instruction="").instruction is None
    default_text = PRESETS["web_search"].instruction
    assert Reranker("m").instruction == Reranker("m", instruction=None).instruction == default_text
    with pytest.raises(ValueError, match="always carries an instruction"):
        Reranker("m", instruction="")


def test_per_call_none_uses_the_objects_instruction(
    tiny_embedding_dir: Path, tiny_reranker_dir: Path
) -> None:
    emb = Embedder(str(tiny_embedding_dir), device="cpu", instruction="code_search")
    raw = Embedder(str(tiny_embedding_dir), device="cpu", instruction="")
    code = PRESETS["code_search"].instruction
    expected = raw.embed_queries([format_query(code, "sort a list")])
    np.testing.assert_allclose(emb.embed_queries(["sort a list"]), expected, atol=1e-6)
    np.testing.assert_allclose(
        emb.embed_queries(["sort a list"], instruction=None), expected, atol=1e-6
    )
    np.testing.assert_allclose(
        emb.embed_queries(["sort a list"], instruction=""),
        raw.embed_documents(["sort a list"]),
        atol=1e-6,
    )
    rr = Reranker(str(tiny_reranker_dir), device="cpu", instruction="code_search")
    pairs = [("sort a list", "sorted(xs)"), ("sort a list", "Beijing")]
    by_default = rr.score_pairs(pairs)
    assert rr.score_pairs(pairs, instruction=None) == by_default
    assert rr.score_pairs(pairs, instruction=code) == by_default
    assert rr.score_pairs(pairs, instruction="web_search") != by_default
    with pytest.raises(ValueError, match="always carries an instruction"):
        rr.score_pairs(pairs, instruction="")
    with pytest.raises(ValueError, match="always carries an instruction"):
        rr.score("q", [], instruction="")
    assert format_rerank_body(code, "q", "d").startswith(f"<Instruct>: {code}\n")
