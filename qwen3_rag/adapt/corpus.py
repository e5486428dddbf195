"""The passages of a corpus: files chunked exactly like ``qwen3-rag index`` chunks them.

Synthetic queries are written for the same chunks the index stores, so the adapted model is
trained and evaluated on what it will retrieve. Passage ids are the index's chunk ids
(``"{file}#{n}"``), so an evaluation can also run against a Chroma collection built by
``qwen3-rag index`` from the same files.

:func:`split_into_chunks` is the one place that reaches the indexer's chunking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3_rag.adapt._io import read_jsonl, write_jsonl

__all__ = ["Passage", "chunk_corpus", "read_passages", "split_into_chunks", "write_passages"]


@dataclass(frozen=True)
class Passage:
    """One chunk of the corpus.

    Attributes:
        id: The chunk id, ``"{file}#{n}"`` (the id ``qwen3-rag index`` gives it).
        text: The chunk's text.
        source: The file it comes from.
    """

    id: str
    text: str
    source: str


def split_into_chunks(
    files: list[Path], tokenizer: Any, chunk_size: int, chunk_overlap: int
) -> list[Passage]:
    """Chunk text files with the indexer's splitter (token-sized, by the model's tokenizer).

    Binary files are skipped. This is the only function that calls into the indexer.
    """
    from qwen3_rag.cli import _chunks, _file_hash, _make_splitter, _read_text

    split = _make_splitter(tokenizer, chunk_size, chunk_overlap)
    passages: list[Passage] = []
    for path in files:
        text = _read_text(path)
        if text is None:
            continue
        source = str(path)
        digest = _file_hash(text, chunk_size, chunk_overlap)
        passages.extend(Passage(c.id, c.text, source) for c in _chunks(source, text, digest, split))
    return passages


def chunk_corpus(
    paths: Sequence[str | Path],
    tokenizer: Any,
    *,
    chunk_size: int = 512,
    chunk_overlap: int = 64,
    exclude: Path | None = None,
) -> list[Passage]:
    """Walk files and folders for text files and chunk them like ``qwen3-rag index``.

    Args:
        paths: Files or folders (hidden files and folders, ``node_modules`` etc. skipped).
        tokenizer: The embedding model's ``tokenizers.Tokenizer`` (chunks are sized in its
            tokens).
        chunk_size: Tokens per chunk (the index's default: 512).
        chunk_overlap: Tokens shared by neighbouring chunks (default 64).
        exclude: A folder never walked into (the run's output folder).

    Returns:
        The passages, in file order.

    Raises:
        ValueError: If a path does not exist, or ``chunk_overlap >= chunk_size``.
    """
    from qwen3_rag.cli import _walk

    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )
    roots: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise ValueError(f"corpus path {str(p)!r} does not exist")
        roots.append(path.resolve())
    skip = exclude.resolve() if exclude is not None else Path("/nonexistent")
    return split_into_chunks(_walk(roots, exclude=skip), tokenizer, chunk_size, chunk_overlap)


def write_passages(path: Path, passages: list[Passage]) -> None:
    """Save passages as JSON Lines (``id``, ``text``, ``source``), atomically."""
    write_jsonl(path, ({"id": p.id, "text": p.text, "source": p.source} for p in passages))


def read_passages(path: Path) -> list[Passage]:
    """Passages saved by :func:`write_passages`."""
    return [Passage(r["id"], r["text"], r["source"]) for r in read_jsonl(path)]
