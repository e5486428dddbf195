"""Synthetic queries for your passages, the way the Qwen3 Embedding report made its data.

Two steps per passage, each answered by the LLM in JSON:

1. **Configuration**: who would search for this passage (a *character*), what kind of query
   they would write (a *question type*: ``keywords``, ``acquire_knowledge``, ``summary``,
   ``yes_or_no``, ``background``) and how hard it is (a *difficulty*: ``high_school``,
   ``university``, ``phd``).
2. **Query**: from the passage and that configuration, one query of a stated length (in
   words) and language. Length and language are drawn per passage from the settings, with a
   seed, so a rerun asks for the same.

Replies are parsed strictly: one JSON object with the keys asked for and allowed values
(a reasoning model's ``<think>...</think>`` block and a Markdown code fence around the
object are removed first). A bad reply is counted by reason and the step asked again, at
most ``retries`` more times; a passage whose steps all fail is skipped, never the run.

Records are appended to a JSON Lines file as they are made (one flushed line each). Run it
again after an interruption and it skips the passages already done: nothing is asked twice.

Example:
    >>> from qwen3_rag.adapt.synthesize import parse_reply
    >>> parse_reply('```json\\n{"query": "who founded Rome?"}\\n```', ["query"])
    {'query': 'who founded Rome?'}
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from qwen3_rag._files import JsonlWriter, read_jsonl
from qwen3_rag.adapt.corpus import Passage
from qwen3_rag.adapt.llm import LLM
from qwen3_rag.errors import Qwen3RagError
from qwen3_rag.options import check_positive_int, progress_disabled

__all__ = [
    "CONFIGURATION_PROMPT",
    "DIFFICULTIES",
    "QUERY_PROMPT",
    "QUESTION_TYPES",
    "ReplyError",
    "SynthesisReport",
    "parse_reply",
    "synthesize",
]

logger = logging.getLogger(__name__)

#: Question types of the report, with the description the query prompt gives the LLM.
QUESTION_TYPES: dict[str, str] = {
    "keywords": "a few search keywords, not a sentence",
    "acquire_knowledge": "a question asking for a fact or explanation the passage gives",
    "summary": "a request for the gist or an overview of what the passage covers",
    "yes_or_no": "a question the passage answers with yes or no",
    "background": "a question about the context, causes or history the passage explains",
}
#: Difficulty levels of the report.
DIFFICULTIES: tuple[str, ...] = ("high_school", "university", "phd")

CONFIGURATION_PROMPT = """\
You are preparing training data for a search engine. Read the passage below and imagine \
someone who would search for it.

Answer with a JSON object with exactly these keys:
- "character": who would search for this passage, in a few words (for example "a nurse \
planning a night shift" or "a student revising for an exam");
- "question_type": one of {question_types};
- "difficulty": one of {difficulties}.

<passage>
{passage}
</passage>

Reply with the JSON object only."""

QUERY_PROMPT = """\
Write one search query that the character below would type to find the passage.

Character: {character}
Question type: {question_type} ({description})
Difficulty: {difficulty}
Length: about {length} words
Language: {language}

The passage must answer the query, but the query must not copy sentences from it.

<passage>
{passage}
</passage>

Reply with a JSON object with a single key, "query", and nothing else."""

_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"^```(?:json|JSON)?\s*\n?(.*?)\n?```$", re.DOTALL)


class ReplyError(Qwen3RagError, ValueError):
    """An LLM reply that is not the JSON asked for; ``reason`` says how, for the counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def _key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def parse_reply(reply: str, keys: Sequence[str]) -> dict[str, str]:
    """The JSON object of an LLM reply, with exactly the string ``keys`` asked for.

    A leading ``<think>...</think>`` block and a Markdown code fence around the whole reply
    are removed; key names are compared case-insensitively (``"Question Type"`` is
    ``question_type``); values must be non-empty strings. Nothing else is repaired.

    Args:
        reply: The LLM's reply.
        keys: The keys the object must have (lower case, underscores).

    Returns:
        ``{key: stripped value}`` for each of ``keys``.

    Raises:
        ReplyError: With ``reason`` ``"not JSON"``, ``"missing keys"`` or ``"empty value"``.
    """
    if not isinstance(reply, str):
        raise ReplyError("not JSON", f"the LLM returned {type(reply).__name__}, not text")
    text = _THINK.sub("", reply).strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReplyError("not JSON", f"{exc.msg} in {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise ReplyError("not JSON", f"expected a JSON object, got {type(value).__name__}")
    found = {_key(str(k)): v for k, v in value.items()}
    missing = [k for k in keys if k not in found]
    if missing:
        raise ReplyError("missing keys", f"no {', '.join(missing)} in {sorted(found)}")
    out: dict[str, str] = {}
    for k in keys:
        v = found[k]
        if not isinstance(v, str) or not v.strip():
            raise ReplyError("empty value", f"{k} is {v!r}")
        out[k] = " ".join(v.split())
    return out


def _configuration(reply: str) -> dict[str, str]:
    config = parse_reply(reply, ["character", "question_type", "difficulty"])
    kind, level = _key(config["question_type"]), _key(config["difficulty"])
    if kind not in QUESTION_TYPES:
        raise ReplyError("invalid value", f"question_type {config['question_type']!r}")
    if level not in DIFFICULTIES:
        raise ReplyError("invalid value", f"difficulty {config['difficulty']!r}")
    return {"character": config["character"], "question_type": kind, "difficulty": level}


@dataclass
class SynthesisReport:
    """What :func:`synthesize` did.

    Attributes:
        passages: Passages given.
        done_before: Passages that already had a query in the file (skipped).
        made: Queries written by this call.
        failed: Passages skipped because a step failed every attempt.
        llm_calls: Calls to the LLM.
        failures: Failed attempts by reason (``"configuration: not JSON"``,
            ``"query: empty value"``, ``"query: llm error"`` ...).
    """

    passages: int = 0
    done_before: int = 0
    made: int = 0
    failed: int = 0
    llm_calls: int = 0
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def queries(self) -> int:
        """Passages with a query in the file after this call."""
        return self.done_before + self.made

    def to_dict(self) -> dict[str, Any]:
        """The counts as plain data."""
        return {
            "passages": self.passages,
            "done_before": self.done_before,
            "made": self.made,
            "failed": self.failed,
            "queries": self.queries,
            "llm_calls": self.llm_calls,
            "failures": dict(sorted(self.failures.items())),
        }


@dataclass
class _Outcome:
    record: dict[str, Any] | None
    calls: int
    failures: Counter[str]


def _ask(
    llm: LLM, prompt: str, step: str, parse: Any, retries: int, outcome: _Outcome
) -> dict[str, str] | None:
    """One step: ask, parse, and ask again on a bad reply, at most ``retries`` more times."""
    for _ in range(retries + 1):
        outcome.calls += 1
        try:
            reply = llm(prompt)
        except Exception as exc:  # a remote LLM's network error must not end the run
            logger.debug("%s: the LLM raised %s", step, exc)
            outcome.failures[f"{step}: llm error"] += 1
            continue
        try:
            return parse(reply)  # type: ignore[no-any-return]
        except ReplyError as exc:
            logger.debug("%s: bad reply (%s)", step, exc)
            outcome.failures[f"{step}: {exc.reason}"] += 1
    return None


def _one(
    llm: LLM,
    passage: Passage,
    *,
    seed: int,
    lengths: tuple[int, int],
    languages: Sequence[str],
    retries: int,
) -> _Outcome:
    pick = random.Random(f"{seed}\0{passage.id}")
    length = pick.randint(*lengths)
    language = pick.choice(list(languages))
    outcome = _Outcome(None, 0, Counter())
    config = _ask(
        llm,
        CONFIGURATION_PROMPT.format(
            passage=passage.text,
            question_types=", ".join(f'"{k}"' for k in QUESTION_TYPES),
            difficulties=", ".join(f'"{d}"' for d in DIFFICULTIES),
        ),
        "configuration",
        _configuration,
        retries,
        outcome,
    )
    if config is None:
        return outcome
    query = _ask(
        llm,
        QUERY_PROMPT.format(
            passage=passage.text,
            description=QUESTION_TYPES[config["question_type"]],
            length=length,
            language=language,
            **config,
        ),
        "query",
        lambda reply: parse_reply(reply, ["query"]),
        retries,
        outcome,
    )
    if query is None:
        return outcome
    outcome.record = {
        "passage_id": passage.id,
        "query": query["query"],
        **config,
        "length": length,
        "language": language,
    }
    return outcome


def synthesize(
    passages: Sequence[Passage],
    llm: LLM,
    path: str | Path,
    *,
    seed: int = 0,
    lengths: tuple[int, int] = (4, 20),
    languages: Sequence[str] = ("English",),
    retries: int = 2,
    workers: int = 1,
    show_progress: bool | None = False,
) -> SynthesisReport:
    """Write one synthetic query per passage to a JSON Lines file, resuming where it stopped.

    Each line is ``{"passage_id", "query", "character", "question_type", "difficulty",
    "length", "language"}``. Passages whose id is already in the file are skipped; passages
    that failed before are tried again.

    Args:
        passages: The passages (e.g. from :func:`~qwen3_rag.adapt.corpus.chunk_corpus`).
        llm: The LLM, a callable ``prompt -> reply`` (see :mod:`qwen3_rag.adapt.llm`). With
            ``workers > 1`` it is called from several threads at once.
        path: The JSON Lines file (appended to).
        seed: Seeds the length and language drawn for each passage.
        lengths: Query lengths in words, ``(shortest, longest)``, drawn uniformly.
        languages: Query languages, drawn uniformly (e.g. ``("English", "German")``).
        retries: Further attempts per step after a bad reply or an LLM error.
        workers: LLM calls in flight at once (raise it for a remote LLM server; keep 1 for a
            local model).
        show_progress: A tqdm progress bar over the passages (``None``: only on a terminal).

    Returns:
        The :class:`SynthesisReport`: queries made, failures by reason.

    Raises:
        ValueError: On a bad argument, or a file whose lines are not JSON objects.

    Example:
        >>> def llm(prompt):  # any str -> str callable
        ...     if "character" in prompt.split("<passage>")[0] and "Question type" not in prompt:
        ...         return '{"character": "a student", "question_type": "keywords", ' \\
        ...                '"difficulty": "university"}'
        ...     return '{"query": "capital of France"}'
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "queries.jsonl"
        >>> report = synthesize([Passage("a#0", "Paris is the capital of France.", "a")], llm, out)
        >>> report.made, report.failed
        (1, 0)
        >>> synthesize([Passage("a#0", "Paris is the capital of France.", "a")], llm, out).made
        0
    """
    check_positive_int(workers, "workers")
    check_positive_int(retries, "retries", minimum=0)
    low, high = lengths
    if not 1 <= low <= high:
        raise ValueError(
            f"lengths must be (shortest, longest) with 1 <= shortest <= longest, got {lengths!r}"
        )
    languages = list(languages)
    if not languages or not all(isinstance(x, str) and x.strip() for x in languages):
        raise ValueError(f"languages must be a non-empty list of names, got {languages!r}")
    path = Path(path)
    done = {str(r.get("passage_id")) for r in read_jsonl(path)}
    todo = [p for p in dict((p.id, p) for p in passages).values() if p.id not in done]
    report = SynthesisReport(passages=len(passages), done_before=len(passages) - len(todo))
    if report.done_before:
        logger.info("%d passages already have a query in %s: skipped", report.done_before, path)
    kwargs: dict[str, Any] = {
        "seed": seed,
        "lengths": (low, high),
        "languages": languages,
        "retries": retries,
    }
    with (
        JsonlWriter(path) as out,
        tqdm(
            total=len(todo),
            desc="Synthesizing",
            unit="passage",
            disable=progress_disabled(show_progress),
        ) as bar,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthesize") as pool,
    ):
        pending: set[Future[_Outcome]] = set()
        queue = iter(todo)
        try:
            while True:
                # keep at most 2 x workers passages in flight, so an interruption loses little
                for passage in queue:
                    pending.add(pool.submit(_one, llm, passage, **kwargs))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                # write every passage that finished before raising any error among them (an
                # interruption in one thread must not drop a query another thread already made)
                failed = [f for f in finished if f.exception() is not None]
                for future in finished - set(failed):
                    outcome = future.result()
                    report.llm_calls += outcome.calls
                    report.failures.update(outcome.failures)
                    if outcome.record is None:
                        report.failed += 1
                    else:
                        out.write(outcome.record)
                        report.made += 1
                    bar.update(1)
                if failed:
                    failed[0].result()  # raises the error
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    if report.failed:
        logger.warning(
            "%d of %d passages got no query (%s); run again to retry them",
            report.failed,
            len(todo),
            ", ".join(f"{k}: {v}" for k, v in sorted(report.failures.items())),
        )
    return report
