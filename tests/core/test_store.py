"""Collections remember how their vectors were made; reopening keeps it."""

from __future__ import annotations

import pytest

from qwen3_rag import PRESETS
from qwen3_rag.store import embedding_function_for


@pytest.mark.parametrize(
    ("stored", "asked", "expected"),
    [
        (None, None, "web_search"),  # a new collection: the default preset
        ({"model": "m", "instruction": "code_search"}, None, "code_search"),
        ({"model": "m", "instruction": ""}, None, None),  # raw queries stay raw
        ({"model": "m", "instruction": None}, None, None),  # as qwen3-rag 0.1 wrote "raw"
        ({"model": "m", "instruction": "code_search"}, "", None),  # asked for raw queries
        ({"model": "m", "instruction": ""}, "question_answering", "question_answering"),
    ],
)
def test_instruction_is_the_asked_else_the_stored_one(
    stored: dict[str, object] | None, asked: str | None, expected: str | None
) -> None:
    preset = embedding_function_for(stored, instruction=asked, device="cpu").embedder.preset
    assert preset == (PRESETS[expected] if expected else None)
