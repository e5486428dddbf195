"""Token-sized chunking for the indexer: the candidate splitters, side by side.

``python -m benchmarks.chunking`` splits this repository's README.md with the real
Qwen3-Embedding tokenizer (``../shared/fixtures/qwen3-embedding-tokenizer``) by every candidate
that is installed, at the indexer's default size (512 tokens, 64 overlap) and at a small size
(128, 16), and prints one table per size:

* speed: chunks per second (best of interleaved rounds, so machine noise hits all alike);
* budget: the largest chunk in tokens (no special tokens) and how many exceed ``chunk_size``;
* boundaries: how often a chunk ends inside a word, and inside a sentence (not at a line end
  and not after closing punctuation), the file's last chunk excluded; how often a chunk
  starts inside a word (where an overlap begins); how often it ends at a paragraph break
  (a blank line), the boundary a reader would choose;
* overlap: the mean tokens shared by neighbouring chunks;
* location: the share of chunks whose text is exactly ``source[start:start + len(text)]``
  (from the splitter's own offsets when it gives them, else searched), which the indexer
  needs for ``start_char``/``start_line``; and the share of non-blank source characters that
  some chunk covers (nothing dropped).

Candidates: llama-index's ``SentenceSplitter`` (what the indexer used before), and the two
framework-free ones: ``semantic-text-splitter`` (``TextSplitter`` and ``MarkdownSplitter``,
Rust, sized with a ``tokenizers.Tokenizer``) and ``chonkie`` (``SentenceChunker``,
``RecursiveChunker``). A candidate whose package is missing is left out with a note.
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.models import EMBEDDING_TOKENIZER

README = Path(__file__).resolve().parent.parent / "README.md"

#: A splitter: text -> [(start_char or None when the splitter gives no offset, chunk text)].
Split = Callable[[str], list[tuple[int | None, str]]]


def _tokenizer() -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(EMBEDDING_TOKENIZER / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


def candidates(tokenizer: Any, size: int, overlap: int) -> dict[str, Split]:
    """Every installed candidate, configured for ``size`` tokens with ``overlap`` tokens."""
    out: dict[str, Split] = {}

    def count(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    try:
        from llama_index.core.node_parser import SentenceSplitter
    except ImportError:
        print("(llama-index-core not installed: SentenceSplitter left out)")
    else:
        sentence = SentenceSplitter(
            chunk_size=size,
            chunk_overlap=overlap,
            tokenizer=count,
            include_metadata=False,
            include_prev_next_rel=False,
        )
        out["llama-index SentenceSplitter"] = lambda t: [(None, c) for c in sentence.split_text(t)]
    try:
        from semantic_text_splitter import MarkdownSplitter, TextSplitter
    except ImportError:
        print("(semantic-text-splitter not installed: left out)")
    else:
        text_splitter = TextSplitter.from_huggingface_tokenizer(tokenizer, size, overlap)
        md_splitter = MarkdownSplitter.from_huggingface_tokenizer(tokenizer, size, overlap)
        out["semantic-text-splitter TextSplitter"] = lambda t: list(text_splitter.chunk_indices(t))
        out["semantic-text-splitter MarkdownSplitter"] = lambda t: list(
            md_splitter.chunk_indices(t)
        )
    try:
        from chonkie import RecursiveChunker, SentenceChunker
    except ImportError:
        print("(chonkie not installed: left out)")
    else:
        chonkie_sentence = SentenceChunker(
            tokenizer=tokenizer, chunk_size=size, chunk_overlap=overlap
        )
        chonkie_recursive = RecursiveChunker(tokenizer=tokenizer, chunk_size=size)
        out["chonkie SentenceChunker"] = lambda t: [
            (c.start_index, c.text) for c in chonkie_sentence.chunk(t)
        ]
        out["chonkie RecursiveChunker (no overlap)"] = lambda t: [
            (c.start_index, c.text) for c in chonkie_recursive.chunk(t)
        ]
    return out


@dataclass
class Quality:
    """What the indexer cares about in one splitter's chunks of one text."""

    chunks: int
    max_tokens: int
    over_budget: int
    mean_tokens: float
    mid_word: float
    mid_sentence: float
    paragraph_end: float
    start_mid_word: float
    mean_overlap: float
    located: float
    covered: float


_SENTENCE_END = re.compile(r"[.!?:;)\]`*\"']$")


def quality(text: str, chunks: list[tuple[int | None, str]], tokenizer: Any, size: int) -> Quality:
    """Measure ``chunks`` of ``text`` (see the module docstring for each figure)."""

    def ntok(s: str) -> int:
        return len(tokenizer.encode(s, add_special_tokens=False).ids)

    tokens = [ntok(c) for _, c in chunks]
    spans: list[tuple[int, int] | None] = []
    cursor = 0
    located = 0
    for start, chunk in chunks:
        if start is None:
            found = text.find(chunk, cursor)
            start = found if found >= 0 else text.find(chunk)
        if start is not None and start >= 0 and text[start : start + len(chunk)] == chunk:
            located += 1
            spans.append((start, start + len(chunk)))
            cursor = start + 1
        else:
            spans.append(None)
    mid_word = mid_sentence = paragraph_end = ends = 0
    for span in spans:
        if span is None or span[1] >= len(text.rstrip()):
            continue
        ends += 1
        end = span[1]
        before, after = text[end - 1], text[end]
        mid_word += before.isalnum() and after.isalnum()
        body = text[span[0] : end].rstrip(" \t")
        at_line_end = (
            body.endswith(("\n", "\r"))
            or text[end:].lstrip(" \t").startswith(("\n", "\r"))
            or not text[end:].strip()
        )
        mid_sentence += not at_line_end and not _SENTENCE_END.search(text[span[0] : end].rstrip())
        lo, hi = end, end  # the run of whitespace around the end: a blank line in it?
        while lo > span[0] and text[lo - 1].isspace():
            lo -= 1
        while hi < len(text) and text[hi].isspace():
            hi += 1
        paragraph_end += text.count("\n", lo, hi) >= 2
    starts = [span[0] for span in spans[1:] if span is not None and span[0] > 0]
    start_mid_word = sum(text[i - 1].isalnum() and text[i].isalnum() for i in starts)
    overlaps = [
        ntok(text[b[0] : a[1]]) if a[1] > b[0] else 0
        for a, b in itertools.pairwise(spans)
        if a is not None and b is not None
    ]
    covered = bytearray(len(text))
    for span in spans:
        if span is not None:
            covered[span[0] : span[1]] = b"\1" * (span[1] - span[0])
    visible = [i for i, ch in enumerate(text) if not ch.isspace()]
    return Quality(
        chunks=len(chunks),
        max_tokens=max(tokens, default=0),
        over_budget=sum(t > size for t in tokens),
        mean_tokens=statistics.fmean(tokens) if tokens else 0.0,
        mid_word=mid_word / ends if ends else 0.0,
        mid_sentence=mid_sentence / ends if ends else 0.0,
        paragraph_end=paragraph_end / ends if ends else 0.0,
        start_mid_word=start_mid_word / len(starts) if starts else 0.0,
        mean_overlap=statistics.fmean(overlaps) if overlaps else 0.0,
        located=located / len(chunks) if chunks else 1.0,
        covered=sum(covered[i] for i in visible) / len(visible) if visible else 1.0,
    )


def _variant(text: str, i: int) -> str:
    """``text`` with every non-blank line marked ``i``: no splitter can serve a cached segment."""
    return "\n".join(f"{line} {i}" if line.strip() else line for line in text.split("\n"))


def speed(
    splitters: dict[str, Split], text: str, rounds: int, min_seconds: float
) -> dict[str, float]:
    """Chunks per second for each splitter: the best of ``rounds`` interleaved rounds."""
    best = dict.fromkeys(splitters, 0.0)
    for _ in range(rounds):
        for name, split in splitters.items():
            n = calls = 0
            start = time.perf_counter()
            while True:
                n += len(split(_variant(text, calls)))
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_seconds:
                    break
            best[name] = max(best[name], n / elapsed)
    return best


def report(text: str, size: int, overlap: int, rounds: int, min_seconds: float) -> str:
    """One Markdown table comparing every candidate at one chunk size."""
    tokenizer = _tokenizer()
    splitters = candidates(tokenizer, size, overlap)
    rates = speed(splitters, text, rounds, min_seconds)
    lines = [
        f"### chunk_size {size}, overlap {overlap} ({len(text):,} characters)",
        "",
        "| splitter | chunks/s | chunks | max tok | > size | mean tok | mid-word end "
        "| mid-sentence end | paragraph end | mid-word start | mean overlap tok | located "
        "| covered |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, split in splitters.items():
        q = quality(text, split(text), tokenizer, size)
        lines.append(
            f"| {name} | {rates[name]:,.0f} | {q.chunks} | {q.max_tokens} | {q.over_budget} "
            f"| {q.mean_tokens:.0f} | {q.mid_word:.0%} | {q.mid_sentence:.0%} "
            f"| {q.paragraph_end:.0%} | {q.start_mid_word:.0%} "
            f"| {q.mean_overlap:.1f} | {q.located:.0%} | {q.covered:.1%} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison tables; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chunking", description=__doc__)
    parser.add_argument("--file", type=Path, default=README, help="text to split (README.md)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--seconds", type=float, default=0.3, help="time per splitter per round")
    args = parser.parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    for size, overlap in ((512, 64), (128, 16)):
        print(report(text, size, overlap, args.rounds, args.seconds))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
