"""What an index run must do per file: the vector keys, the stored chunks, the plan.

Stage 4 of :mod:`qwen3_rag.indexing`: from a file's content hash and the chunks already in
the collection, :func:`plan_file` says what to write and what to delete; from the
``vector_key`` every chunk stores (a hash of its text and :func:`vector_settings`: the
model's identity, dimensions, document instruction and length limit),
:func:`find_reusable` finds a stored vector for a chunk to write, so only new text meets
the model.

Example:
    >>> from qwen3_rag.index_plan import vector_key
    >>> vector_key("Beijing.", "identity=a") == vector_key("Beijing.", "identity=b")
    False
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from qwen3_rag.chunking import Chunk, Chunker, chunk_id, file_hash

if TYPE_CHECKING:
    from qwen3_rag import Embedder

__all__ = [
    "PAGE",
    "FilePlan",
    "StoredRecords",
    "complete_file",
    "find_reusable",
    "plan_file",
    "stored_chunks",
    "vector_key",
    "vector_settings",
]

#: Records read, or ids deleted, per store call.
PAGE = 1000

StoredRecords = dict[str, list[tuple[str, dict[str, Any]]]]


# -- vector keys ---------------------------------------------------------------------------


def vector_settings(embedder: Embedder) -> str:
    """What fixes a document's vector besides its text, as one string.

    The model's identity (:meth:`Embedder.identity <qwen3_rag.Embedder.identity>`: which
    weights, engine and precision, so weights replaced under the same path, a new hub
    snapshot, bfloat16 or int8 never reuse a float32 vector), the output dimensions, the
    instruction when a symmetric preset applies it to documents, and the longest input. The
    model's path and the device are left out: a moved folder holds the same weights, and
    float32 vectors agree across devices to rounding.

    Example:
        >>> from qwen3_rag import Embedder
        >>> vector_settings(Embedder("Qwen/Qwen3-Embedding-0.6B", device="cpu"))  # doctest: +SKIP
        'identity=hub:c54f2e6e...|torch|float32;dimensions=None;document_instruction=None;max_length=8192'
    """
    preset = embedder.preset
    instruction = preset.instruction if preset is not None and preset.symmetric else None
    parts = {
        "identity": embedder.identity().key,
        "dimensions": embedder.dimensions,
        "document_instruction": instruction,
        "max_length": embedder.max_length,
    }
    return ";".join(f"{k}={v}" for k, v in parts.items())


def vector_key(text: str, settings: str) -> str:
    """The key a chunk's vector is reused by: a hash of its text and :func:`vector_settings`.

    Example:
        >>> vector_key("Beijing.", "model=a") == vector_key("Beijing.", "model=a")
        True
        >>> vector_key("Beijing.", "model=a") == vector_key("Beijing.", "model=b")
        False
    """
    h = hashlib.sha256(f"{settings}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


# -- plan ------------------------------------------------------------------------------------


@dataclass
class FilePlan:
    """What one file needs: chunks to write, then leftover ids to delete.

    The leftovers are deleted only once every chunk in ``write`` is stored, so an
    interrupted run leaves the file's old or new chunks, never neither.

    Attributes:
        source: The file's absolute path.
        status: ``"changed"`` (new or changed text), ``"unchanged"``, ``"binary"``,
            ``"unreadable"`` (kept as it was) or ``"deleted"`` (gone from under the paths).
        write: Chunks to upsert.
        stale: Ids of stored chunks to delete afterwards.
        reuse: Stored vectors found for chunks of ``write`` (by their index in it): those
            are written without running the model (see :func:`find_reusable`).
    """

    source: str
    status: Literal["changed", "unchanged", "binary", "unreadable", "deleted"]
    write: list[Chunk] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    reuse: dict[int, np.ndarray] = field(default_factory=dict)


def stored_chunks(collection: Any) -> StoredRecords:
    """Every stored chunk's id and metadata, by source file (read page by page)."""
    out: StoredRecords = {}
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        for id_, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
            meta = dict(meta or {})
            out.setdefault(str(meta.get("source", "")), []).append((id_, meta))
        if len(page["ids"]) < PAGE:
            return out
        offset += PAGE


def plan_file(
    source: str,
    text: str | None,
    records: Sequence[tuple[str, dict[str, Any]]],
    chunker: Chunker,
    *,
    vector_settings: str | None = None,
) -> FilePlan:
    """Decide what one file needs, from its text and its stored chunks.

    Args:
        source: The file's absolute path (the ``source`` of its chunks).
        text: Its text, or ``None`` for a binary file.
        records: Its stored chunks: ``(id, metadata)`` pairs.
        chunker: Splits the file, if it must be chunked; its settings are part of the hash.
        vector_settings: Gives the new chunks a ``vector_key`` (see :func:`vector_key`).

    Returns:
        The file's plan. Chunks already stored with the file's current hash (by an
        interrupted run) are not written again.
    """
    if text is None:
        return FilePlan(source, "binary", stale=[i for i, _ in records])
    digest = file_hash(text, chunker.settings)
    total = complete_file(records, digest)
    if total is not None:
        keep = {chunk_id(source, k) for k in range(total)}
        return FilePlan(source, "unchanged", stale=[i for i, _ in records if i not in keep])
    chunks = chunker.chunks(source, text, digest)
    if vector_settings is not None:
        for c in chunks:
            c.metadata["vector_key"] = vector_key(c.text, vector_settings)
    keep = {c.id for c in chunks}
    done = {i for i, m in records if m.get("file_hash") == digest}
    return FilePlan(
        source,
        "changed",
        write=[c for c in chunks if c.id not in done],
        stale=[i for i, _ in records if i not in keep],
    )


def complete_file(records: Sequence[tuple[str, dict[str, Any]]], digest: str) -> int | None:
    """The chunk count if the stored chunks with hash ``digest`` cover every index, else None."""
    current = {int(m["chunk"]) for _, m in records if m.get("file_hash") == digest}
    total = next((int(m["n_chunks"]) for _, m in records if m.get("file_hash") == digest), -1)
    return total if total >= 0 and all(k in current for k in range(total)) else None


def find_reusable(
    collection: Any, chunks: Sequence[Chunk], by_key: dict[str, str], settings: str
) -> dict[int, np.ndarray]:
    """Stored vectors for ``chunks``, found by their ``vector_key``.

    Args:
        collection: The collection.
        chunks: Chunks with a ``vector_key`` in their metadata.
        by_key: ``vector_key -> id`` of a stored chunk with that key (from the run's scan).
        settings: This run's :func:`vector_settings`.

    Returns:
        ``{index in chunks: vector}`` for each chunk whose key is stored. A stored chunk is
        read back (this run may have overwritten it since the scan) and its vector used only
        if its stored text, under this run's settings, still gives the key it carries: a
        vector is reused only for the very text and settings it was made from.
    """
    wanted = {
        i: by_key[key]
        for i, c in enumerate(chunks)
        if (key := c.metadata.get("vector_key")) is not None and key in by_key
    }
    if not wanted:
        return {}
    found: dict[str, np.ndarray] = {}
    ids = sorted(set(wanted.values()))
    for start in range(0, len(ids), PAGE):
        got = collection.get(
            ids=ids[start : start + PAGE], include=["embeddings", "metadatas", "documents"]
        )
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        for meta, document, vector in zip(
            got["metadatas"] or [], got["documents"] or [], embeddings, strict=False
        ):
            key = (meta or {}).get("vector_key")
            # The text must still give the key: chromadb merges metadata on upsert, so a key
            # could outlive the text it was made for if another writer left it out.
            if (
                isinstance(key, str)
                and document is not None
                and vector_key(document, settings) == key
            ):
                found[key] = np.asarray(vector, dtype=np.float32)
    return {
        i: found[key] for i in wanted if (key := str(chunks[i].metadata["vector_key"])) in found
    }
