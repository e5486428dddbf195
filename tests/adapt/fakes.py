"""A deterministic fake LLM and a small synthetic corpus for the adaptation tests.

Each document is about one made-up topic: a few topic words that occur in no other document,
mixed with common filler words. The fake LLM answers the configuration step with a fixed
JSON object and the query step with topic words picked from the passage, so a model can
learn to match queries to passages, and held-out passages are matched by the same skill.
"""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path

#: Words that the tiny test tokenizer (tests/models.py) reads as one token each (after a
#: space token), so a document's topic is a small bag of tokens no other document shares.
WORDS = [
    "Be",
    "Ch",
    "Eu",
    "Fr",
    "Gi",
    "Gra",
    "In",
    "Instr",
    "Instruct",
    "Ju",
    "Mach",
    "No",
    "Par",
    "Py",
    "Query",
    "Rer",
    "The",
    "dat",
    "de",
    "dge",
    "di",
    "ds",
    "each",
    "ear",
    "eb",
    "ect",
    "ed",
    "ee",
    "en",
    "er",
    "es",
    "ev",
    "ex",
    "for",
    "ge",
    "gra",
    "gu",
    "hat",
    "he",
    "ide",
    "iev",
    "ij",
    "ilar",
    "im",
    "ing",
    "ire",
    "is",
    "it",
    "ital",
    "ity",
    "ker",
    "lar",
    "lev",
    "ls",
    "ly",
    "men",
    "ment",
    "mm",
    "no",
    "or",
    "ors",
    "pro",
    "query",
    "ra",
    "re",
]
FILLER = ["the", "of", "and", "that", "yes"]
PASSAGE = re.compile(r"<passage>\n(.*?)\n</passage>", re.DOTALL)


def topic_words(n_docs: int, per_doc: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    seen: set[tuple[str, ...]] = set()
    topics: list[list[str]] = []
    while len(topics) < n_docs:
        words = rng.sample(WORDS, per_doc)
        key = tuple(sorted(words))
        if key not in seen:
            seen.add(key)
            topics.append(words)
    return topics


def documents(n_docs: int = 60, per_doc: int = 4, seed: int = 0) -> list[str]:
    rng = random.Random(seed + 1)
    docs = []
    for words in topic_words(n_docs, per_doc, seed):
        tokens = []
        for w in words * 2:
            tokens.append(w)
            tokens.extend(rng.sample(FILLER, 1))
        docs.append(" ".join(tokens) + ".")
    return docs


def write_corpus(folder: Path, n_docs: int = 60, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(documents(n_docs, seed=seed)):
        (folder / f"doc{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    return folder


class FakeLLM:
    """Configuration: a fixed JSON object. Query: 3 topic words of the passage, as JSON.

    ``bad_every``: every n-th call returns non-JSON (the retry path); calls are counted.
    """

    def __init__(self, bad_every: int = 0, words: int = 3) -> None:
        self.calls = 0
        self.bad_every = bad_every
        self.words = words
        self.prompts: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, prompt: str) -> str:
        with self._lock:
            self.calls += 1
            self.prompts.append(prompt)
            bad = self.bad_every and self.calls % self.bad_every == 0
        if bad:
            return "Sure! Here is the query you asked for."
        match = PASSAGE.search(prompt)
        assert match, "every prompt carries the passage"
        passage = match.group(1)
        if '"query"' not in prompt:
            return json.dumps(
                {
                    "character": "a curious reader",
                    "question_type": "keywords",
                    "difficulty": "university",
                }
            )
        words = [w.strip(".") for w in passage.split() if w.strip(".") not in FILLER]
        unique = list(dict.fromkeys(words))
        rng = random.Random(passage)
        return json.dumps({"query": " ".join(rng.sample(unique, min(self.words, len(unique))))})
