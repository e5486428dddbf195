"""Two-step JSON synthesis: strict parsing, counted retries, resume without duplicates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from qwen3_rag._files import read_jsonl
from qwen3_rag.adapt.corpus import Passage
from qwen3_rag.adapt.synthesize import (
    DIFFICULTIES,
    QUESTION_TYPES,
    ReplyError,
    parse_reply,
    synthesize,
)
from tests.adapt.fakes import PASSAGE, FakeLLM, documents

PASSAGES = [Passage(f"doc{i}.txt#0", text, f"doc{i}.txt") for i, text in enumerate(documents(12))]


def passage_of(prompt: str) -> str:
    match = PASSAGE.search(prompt)
    assert match
    return match.group(1)


def test_parse_reply_strict_with_wrappers_removed() -> None:
    reply = '<think>\nlet me see\n</think>\n```json\n{"Query": "  capital  of France "}\n```'
    assert parse_reply(reply, ["query"]) == {"query": "capital of France"}
    assert parse_reply('{"Question Type": "summary"}', ["question_type"]) == {
        "question_type": "summary"
    }
    cases = {
        "Here you go: {'query': 'x'}": "not JSON",
        '["query"]': "not JSON",
        '{"question": "x"}': "missing keys",
        '{"query": ""}': "empty value",
        '{"query": 3}': "empty value",
        '{"query": "a"} trailing': "not JSON",
    }
    for reply, reason in cases.items():
        with pytest.raises(ReplyError) as err:
            parse_reply(reply, ["query"])
        assert err.value.reason == reason, reply


def test_records_follow_the_two_steps(tmp_path: Path) -> None:
    llm = FakeLLM()
    path = tmp_path / "q.jsonl"
    report = synthesize(
        PASSAGES, llm, path, seed=3, lengths=(5, 9), languages=["English", "German"]
    )
    assert (report.made, report.failed, report.llm_calls) == (12, 0, 24)
    records = read_jsonl(path)
    assert sorted(r["passage_id"] for r in records) == sorted(p.id for p in PASSAGES)
    for r in records:
        assert r["question_type"] in QUESTION_TYPES and r["difficulty"] in DIFFICULTIES
        assert 5 <= r["length"] <= 9 and r["language"] in ("English", "German")
        assert r["query"] and all(
            w in next(p.text for p in PASSAGES if p.id == r["passage_id"])
            for w in r["query"].split()
        )
    # the query prompt carries the configuration, the stated length and language
    query_prompts = [p for p in llm.prompts if '"query"' in p]
    first = next(r for r in records if r["passage_id"] == passage_id(query_prompts[0]))
    assert f"about {first['length']} words" in query_prompts[0]
    assert f"Language: {first['language']}" in query_prompts[0]
    assert "Character: a curious reader" in query_prompts[0]
    # draws are seeded per passage: the same seed asks for the same lengths
    again = tmp_path / "again.jsonl"
    synthesize(PASSAGES, FakeLLM(), again, seed=3, lengths=(5, 9), languages=["English", "German"])
    lengths = {r["passage_id"]: r["length"] for r in read_jsonl(again)}
    assert lengths == {r["passage_id"]: r["length"] for r in records}


def passage_id(prompt: str) -> str:
    text = passage_of(prompt)
    return next(p.id for p in PASSAGES if p.text == text)


def test_bad_replies_are_retried_and_counted(tmp_path: Path) -> None:
    llm = FakeLLM(bad_every=3)  # every third reply is prose, not JSON
    report = synthesize(PASSAGES, llm, tmp_path / "q.jsonl", retries=2)
    assert report.made == 12 and report.failed == 0
    assert sum(report.failures.values()) == report.llm_calls - 24
    assert set(report.failures) <= {"configuration: not JSON", "query: not JSON"}
    assert report.llm_calls == llm.calls


def test_a_useless_llm_never_crashes_the_run(tmp_path: Path) -> None:
    calls = Counter[str]()

    def broken(prompt: str) -> str:
        kind = "query" if '"query"' in prompt else "configuration"
        calls[kind] += 1
        if passage_of(prompt).startswith(PASSAGES[0].text[:10]):
            raise TimeoutError("the server did not answer")
        if kind == "configuration":
            return json.dumps({"character": "x", "question_type": "riddle", "difficulty": "phd"})
        return "{}"

    report = synthesize(PASSAGES[:3], broken, tmp_path / "q.jsonl", retries=1)
    assert (report.made, report.failed) == (0, 3)
    assert report.failures == {"configuration: llm error": 2, "configuration: invalid value": 4}
    assert read_jsonl(tmp_path / "q.jsonl") == []


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("workers", [1, 4])
def test_resume_after_an_interruption_without_duplicates(tmp_path: Path, workers: int) -> None:
    path = tmp_path / "q.jsonl"
    asked: Counter[str] = Counter()
    fake = FakeLLM()

    def dies_after_ten(prompt: str) -> str:
        if fake.calls >= 10:
            raise Interrupt  # e.g. Ctrl-C, or the machine going down
        asked[passage_of(prompt)] += 1
        return fake(prompt)

    with pytest.raises(Interrupt):
        synthesize(PASSAGES, dies_after_ten, path, workers=workers)
    first = read_jsonl(path)
    assert 0 < len(first) < len(PASSAGES)
    done = {r["passage_id"] for r in first}
    # an interrupted write leaves half a line: it is dropped, not read as a record
    with path.open("a", encoding="utf-8") as f:
        f.write('{"passage_id": "doc9.txt#0", "que')

    resumed = FakeLLM()
    report = synthesize(PASSAGES, resumed, path, workers=workers)
    records = read_jsonl(path)
    ids = [r["passage_id"] for r in records]
    assert sorted(ids) == sorted(p.id for p in PASSAGES)  # each passage once
    assert report.done_before == len(done) and report.made == len(PASSAGES) - len(done)
    finished_texts = {p.text for p in PASSAGES if p.id in done}
    assert not finished_texts & {passage_of(p) for p in resumed.prompts}  # nothing asked again
    assert path.read_text(encoding="utf-8").endswith("\n")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        synthesize(PASSAGES, FakeLLM(), tmp_path / "q.jsonl", workers=0)
    with pytest.raises(ValueError, match="lengths"):
        synthesize(PASSAGES, FakeLLM(), tmp_path / "q.jsonl", lengths=(9, 3))
    with pytest.raises(ValueError, match="languages"):
        synthesize(PASSAGES, FakeLLM(), tmp_path / "q.jsonl", languages=[])
