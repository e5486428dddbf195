"""Embedding vectors cached on disk, keyed by the model settings and the exact input text."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from qwen3_rag._files import save_array, write_json
from qwen3_rag.embedder import Embedder

if TYPE_CHECKING:
    pass

__all__ = ["VectorCache", "default_cache_dir"]

logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where vectors are cached by default: ``$XDG_CACHE_HOME/qwen3-rag/vectors``.

    ``~/.cache/qwen3-rag/vectors`` when ``XDG_CACHE_HOME`` is unset.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qwen3-rag" / "vectors"


def _model_key(embedder: Embedder) -> dict[str, Any]:
    """What an embedder's vectors depend on: its model identity and its ``max_length``.

    The identity (:meth:`Embedder.identity <qwen3_rag.Embedder.identity>`) is the weights'
    content or hub snapshot, the engine and the precision, so replaced weights, a moved hub
    ``main`` or another dtype never read another's vectors, and a copied folder shares them.
    """
    return {"identity": embedder.identity().to_dict(), "max_length": embedder.max_length}


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class VectorCache:
    """Embedding vectors on disk, one folder per model setting, keyed by the exact input text.

    Layout: ``root/<key>/meta.json`` (the model identity: weights, engine and precision,
    and the ``max_length`` the folder is for) and shards ``<id>.vectors.npy``
    (float32, one full-size row per text) + ``<id>.keys.npy`` (the SHA-256 of each text as
    the model reads it, instruction included). Every file is written to a temporary name and
    renamed into place, the keys last, so an interrupted run leaves complete shards only: the
    next run reuses them and embeds the rest. Shards are never rewritten; unreadable ones are
    skipped with a warning (their texts are embedded again).

    Args:
        root: The cache folder (created on first write).

    Example:
        >>> cache = VectorCache("/tmp/qwen3-vectors")  # doctest: +SKIP
        >>> evaluate(data, cache=cache)  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"VectorCache({str(self.root)!r})"

    def folder(self, embedder: Embedder) -> Path:
        """The folder holding ``embedder``'s vectors (not created here)."""
        key = json.dumps(_model_key(embedder), sort_keys=True)
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:24]

    def fill(
        self,
        embedder: Embedder,
        hashes: Sequence[bytes],
        out: NDArray[np.float32],
        found: NDArray[np.bool_],
    ) -> None:
        """Copy the cached vectors of these texts into ``out``, marking them in ``found``.

        Args:
            embedder: Whose vectors (its model settings choose the folder).
            hashes: SHA-256 of each text, one per row of ``out``.
            out: ``(len(hashes), size)`` float32, written where a vector is cached.
            found: Booleans, one per row: rows already ``True`` are left alone, rows found
                here are set.
        """
        folder = self.folder(embedder)
        if not folder.is_dir():
            return
        wanted = {h: i for i, h in enumerate(hashes) if not found[i]}
        for keys_file in sorted(folder.glob("*.keys.npy")):
            if not wanted:
                return
            vectors_file = keys_file.with_name(keys_file.name.replace(".keys.", ".vectors."))
            try:
                keys = np.load(keys_file, allow_pickle=False)
                vectors = np.load(vectors_file, mmap_mode="r", allow_pickle=False)
                if (
                    keys.ndim != 2
                    or keys.shape[1] != 32
                    or vectors.shape
                    != (
                        len(keys),
                        out.shape[1],
                    )
                ):
                    raise ValueError("keys and vectors do not match")
            except (OSError, ValueError) as exc:
                logger.warning("ignoring unreadable cache shard %s: %s", keys_file, exc)
                continue
            raw = keys.astype(np.uint8).tobytes()
            source: list[int] = []
            target: list[int] = []
            for i in range(len(keys)):
                j = wanted.pop(raw[32 * i : 32 * i + 32], None)
                if j is not None:
                    source.append(i)
                    target.append(j)
            if source:  # one gather per shard: only these rows are read from disk
                out[target] = vectors[source]
                found[target] = True

    def store(
        self, embedder: Embedder, hashes: Sequence[bytes], vectors: NDArray[np.float32]
    ) -> None:
        """Add a shard (written atomically)."""
        if not len(hashes):
            return
        folder = self.folder(embedder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "meta.json"
        if not meta.exists():
            write_json(meta, _model_key(embedder), sort_keys=True)
        shard = uuid.uuid4().hex
        keys = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(len(hashes), 32)
        save_array(folder / f"{shard}.vectors.npy", np.ascontiguousarray(vectors, np.float32))
        save_array(folder / f"{shard}.keys.npy", keys)
