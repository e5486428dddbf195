from __future__ import annotations

import pytest

from qwen3_rag.instructions import (
    DEFAULT_INSTRUCTION,
    PRESETS,
    Preset,
    format_query,
    format_rerank_body,
    resolve_instruction,
)
from tests.models import FIXTURES

# The Qwen team's published strings, typos included (they are what the models were trained on).
PUBLISHED = {
    "web_search": "Given a web search query, retrieve relevant passages that answer the query",
    "question_answering": "Given a question, retrieve Wikipedia passages that answer the question",
    "fact_checking": "Given a scientific claim, retrieve documents that support or refute "
    "the claim",
    "code_search": "Given a question about coding, retrieval code or passage that can solve "
    "user's question",
    "code_to_text": "Given a code snippet, retrieve the comment corresponding to that code.",
    "duplicate_questions": "Given a question, retrieve questions that are semantically "
    "equivalent to the given question",
    "semantic_similarity": "Retrieve semantically similar text",
    "clustering": "Identify the topic or theme of the given news articles",
    "classification": "Given a online banking query, find the corresponding intents",
    "bitext": "Retrieve parallel sentences",
}


@pytest.mark.parametrize(("name", "text"), sorted(PUBLISHED.items()))
def test_presets_use_the_published_strings(name: str, text: str) -> None:
    assert PRESETS[name].instruction == text


def test_every_preset_string_is_in_the_published_table() -> None:
    table = FIXTURES.parent / "INSTRUCTIONS.md"
    if not table.exists():
        pytest.skip("../shared/INSTRUCTIONS.md is absent")
    published = table.read_text(encoding="utf-8")
    for preset in PRESETS.values():
        assert f"`{preset.instruction}`" in published, preset.name


def test_symmetric_presets_are_the_symmetric_tasks() -> None:
    symmetric = {name for name, p in PRESETS.items() if p.symmetric}
    assert {"semantic_similarity", "clustering", "classification", "bitext"} <= symmetric
    assert not PRESETS["web_search"].symmetric
    assert not PRESETS["code_search"].symmetric


def test_resolve_accepts_names_text_presets_and_none() -> None:
    assert resolve_instruction("web_search").instruction == DEFAULT_INSTRUCTION
    custom = resolve_instruction("  Find recipes that use the ingredient  ")
    assert custom is not None
    assert custom.instruction == "Find recipes that use the ingredient" and not custom.symmetric
    mine = Preset("mine", "Retrieve tweets with the same stance", symmetric=True)
    assert resolve_instruction(mine) is mine
    # None is "not given": the default preset; an empty instruction means raw text
    assert resolve_instruction(None) == PRESETS["web_search"]
    assert resolve_instruction("") is None
    assert resolve_instruction("   ") is None


def test_a_single_unknown_word_is_a_typo() -> None:
    with pytest.raises(ValueError, match="web_search") as info:
        resolve_instruction("web_serch")
    assert "web_serch" in str(info.value)


def test_wrong_types_are_rejected() -> None:
    with pytest.raises(TypeError, match="instruction"):
        resolve_instruction(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="instruction"):
        resolve_instruction(Preset("empty", " "))


def test_templates_are_exactly_the_published_ones() -> None:
    assert format_query("Do X", "q") == "Instruct: Do X\nQuery:q"
    assert format_query(None, "q") == "q"
    assert format_rerank_body("Do X", "q", "d") == "<Instruct>: Do X\n<Query>: q\n<Document>: d"
