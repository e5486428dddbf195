"""The passages of a corpus: files chunked exactly like ``qwen3-rag index`` chunks them.

Synthetic queries are written for the same chunks the index stores, so the adapted model is
trained and evaluated on what it will retrieve. Passage ids are the index's chunk ids
(``"{file}#{n}"``), so an evaluation can also run against a Chroma collection built by
``qwen3-rag index`` from the same files.

:func:`chunk_corpus` walks, reads and chunks through :mod:`qwen3_rag.chunking`, the code
``qwen3-rag index`` runs: there is no second chunker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qwen3_rag._files import read_jsonl, write_jsonl
from qwen3_rag.chunking import Chunker, file_hash, read_text, walk

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


def split_into_chunks(files: Sequence[Path], chunker: Chunker) -> list[Passage]:
    """Chunk text files with the indexer's :class:`~qwen3_rag.chunking.Chunker`.

    Binary files are skipped, as the indexer skips them. Each passage id is the id
    ``qwen3-rag index`` stores the chunk under (the file hash only names a chunk's version
    in the store; the chunk ids and texts do not depend on it).
    """
    passages: list[Passage] = []
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        source = str(path)
        digest = file_hash(text, chunker.settings)
        passages.extend(Passage(c.id, c.text, source) for c in chunker.chunks(source, text, digest))
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

    The walk, the binary-file rule and the chunker are :mod:`qwen3_rag.chunking`'s own
    (:func:`~qwen3_rag.chunking.walk`, :func:`~qwen3_rag.chunking.read_text`,
    :class:`~qwen3_rag.chunking.Chunker`).

    Args:
        paths: Files or folders (hidden files and folders, ``node_modules`` etc. skipped).
        tokenizer: The embedding model's ``tokenizers.Tokenizer`` (chunks are sized in its
            tokens).
        chunk_size: Most tokens per chunk (the index's default: 512).
        chunk_overlap: Most tokens shared by neighbouring chunks (default 64).
        exclude: A folder never walked into (the run's output folder).

    Returns:
        The passages, in file order.

    Raises:
        ValueError: If a path does not exist, or the chunk sizes are out of range.
    """
    chunker = Chunker(tokenizer, chunk_size, chunk_overlap)
    try:
        files = walk(paths, exclude=[exclude] if exclude is not None else [])
    except FileNotFoundError as exc:
        raise ValueError(f"corpus path does not exist: {exc}") from exc
    return split_into_chunks(files, chunker)


def write_passages(path: Path, passages: list[Passage]) -> None:
    """Save passages as JSON Lines (``id``, ``text``, ``source``), atomically."""
    write_jsonl(path, ({"id": p.id, "text": p.text, "source": p.source} for p in passages))


def read_passages(path: Path) -> list[Passage]:
    """Passages saved by :func:`write_passages`."""
    return [Passage(r["id"], r["text"], r["source"]) for r in read_jsonl(path)]
