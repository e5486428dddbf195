"""Configurations resolved against the models, and the vectors they need (embedded once)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from qwen3_rag.embedder import Embedder
from qwen3_rag.evaluation.cache import VectorCache, _model_key, _text_hash
from qwen3_rag.evaluation.report import Configuration, _label, _resolve
from qwen3_rag.instructions import Preset, format_query
from qwen3_rag.options import (
    DEFAULT_EMBEDDING_MODEL,
    MIN_DIMENSIONS,
    check_positive_int,
    progress_disabled,
)

__all__ = ["EMBED_CHUNK"]

logger = logging.getLogger(__name__)

#: Texts embedded (and written to the cache) per step: an interrupted run keeps what it did.
EMBED_CHUNK = 2_048


def _full_size(embedder: Embedder) -> Embedder:
    """The same model and settings without Matryoshka truncation (vectors are cut later).

    It shares the loaded model with ``embedder`` (same model, device, dtype, quantization).
    """
    if embedder.dimensions is None:
        return embedder
    full: Embedder = type(embedder).from_options(embedder.options.replace(dimensions=None))
    return full


def _embedder(model: str | os.PathLike[str] | Embedder | None, like: Embedder | None) -> Embedder:
    """An :class:`Embedder` for ``model``, with the settings (device, dtype ...) of ``like``."""
    if isinstance(model, Embedder):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"embedder must be a hub id, a folder or an Embedder, not {type(model).__name__}"
        )
    name = os.fspath(model) if model is not None else None
    if like is None:
        return Embedder(name or DEFAULT_EMBEDDING_MODEL)
    if name is None:
        return like
    made: Embedder = type(like).from_options(like.options.replace(model=name, revision=None))
    return made


class _Vectors:
    """Embeds each exact input text once per model: in memory, then through the disk cache."""

    def __init__(self, cache: VectorCache | None, progress: bool | None) -> None:
        self.cache = cache
        self.progress = progress
        # (model, applied instruction, side) -> (hashes, vectors) of the last request
        self.memory: dict[tuple[str, str, str], tuple[list[bytes], NDArray[np.float32]]] = {}

    def get(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        preset: Preset | None,
        side: Literal["query", "document"],
    ) -> NDArray[np.float32]:
        """Full-size vectors of ``texts`` embedded as ``side`` under ``preset``, in order.

        Queries get the instruction; documents only when the preset is symmetric. Each vector
        is keyed by the hash of the exact string the model reads; equal texts are embedded
        once.
        """
        if side == "query":  # an asymmetric pair's queries: the query model's vectors
            embedder = embedder.query_side
        applied = preset if preset is not None and (side == "query" or preset.symmetric) else None
        exact = [format_query(applied.instruction, t) if applied else t for t in texts]
        hashes = [_text_hash(t) for t in exact]
        key = (
            json.dumps(_model_key(embedder), sort_keys=True),
            applied.instruction if applied else "",
            side,
        )
        known = self.memory.get(key)
        if known is not None and known[0] == hashes:
            return known[1]
        first: dict[bytes, int] = {}
        inverse = np.asarray([first.setdefault(h, len(first)) for h in hashes], dtype=np.int64)
        unique = list(first)
        raw = dict(zip(hashes, texts, strict=True))  # equal hashes: equal texts
        vectors = np.empty((len(unique), embedder.hidden_size), dtype=np.float32)
        found = np.zeros(len(unique), dtype=np.bool_)
        if self.cache is not None:
            self.cache.fill(embedder, unique, vectors, found)
        missing = np.flatnonzero(~found).tolist()
        if missing:
            self._embed(embedder, [(i, unique[i], raw[unique[i]]) for i in missing], applied,
                        side, vectors)  # fmt: skip
        out = vectors if len(unique) == len(hashes) else vectors[inverse]
        self.memory[key] = (hashes, out)
        return out

    def _embed(
        self,
        embedder: Embedder,
        todo: list[tuple[int, bytes, str]],
        applied: Preset | None,
        side: Literal["query", "document"],
        out: NDArray[np.float32],
    ) -> None:
        todo = sorted(todo, key=lambda x: len(x[2]))  # similar lengths batch well
        # "" is "no instruction" for the core: never rely on None meaning raw text.
        instruction: str | Preset = applied if applied is not None else ""
        label = "queries" if side == "query" else "documents"
        with tqdm(
            total=len(todo),
            desc=f"Embedding {label}",
            unit="text",
            disable=progress_disabled(self.progress),
        ) as bar:
            for start in range(0, len(todo), EMBED_CHUNK):
                chunk = todo[start : start + EMBED_CHUNK]
                texts = [t for _, _, t in chunk]
                if side == "query":
                    vectors = embedder.embed_queries(texts, instruction=instruction)
                else:
                    vectors = embedder.embed_documents(texts, instruction=instruction)
                if self.cache is not None:  # written as we go: an interruption keeps them
                    self.cache.store(embedder, [h for _, h, _ in chunk], vectors)
                out[[i for i, _, _ in chunk]] = vectors
                bar.update(len(chunk))


@dataclass
class _Plan:
    """A configuration resolved against the models: what exactly to run."""

    config: Configuration
    name: str
    embedder: Embedder  # full size
    query_preset: Preset | None
    doc_preset: Preset | None  # applied to documents (symmetric presets only)
    dimensions: int  # the vector size compared
    fetch_k: int  # vector-search depth

    @property
    def truncation(self) -> int | None:
        """The Matryoshka size to derive, or ``None`` for the full vectors."""
        return None if self.dimensions >= self.embedder.hidden_size else self.dimensions


def _check_dimensions(where: str, dimensions: Any, embedder: Embedder) -> int:
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise TypeError(f"{where}: dimensions must be an integer, not {dimensions!r}")
    hidden = embedder.hidden_size
    if not MIN_DIMENSIONS <= dimensions <= hidden:
        raise ValueError(
            f"{where}: dimensions={dimensions} is out of range for {embedder.model!r}: use "
            f"{MIN_DIMENSIONS} <= dimensions <= {hidden}"
        )
    return dimensions


def _plan(
    configurations: Sequence[Configuration],
    base: Embedder,
    k: int,
    collection: tuple[int, Preset | None] | None,
) -> list[_Plan]:
    """Check every configuration (before any model runs) and resolve its settings."""
    plans: list[_Plan] = []
    seen: dict[str, int] = {}
    for i, config in enumerate(configurations):
        where = f"configurations[{i}]"
        if not isinstance(config, Configuration):
            raise TypeError(f"{where} must be a Configuration, not {type(config).__name__}")
        given = base if config.model is None else _embedder(config.model, base)
        full = _full_size(given)
        if collection is not None:
            fixed, own = collection
            query_preset = _resolve(config.instruction, own)
            dims = fixed if config.dimensions is None else config.dimensions
            if dims != fixed:
                raise ValueError(
                    f"{where}: dimensions={dims}, but the collection holds {fixed}-dimensional "
                    f"vectors: leave dimensions unset"
                )
        else:
            query_preset = _resolve(config.instruction, given.preset)
            asked = config.dimensions if config.dimensions is not None else given.dimensions
            dims = full.hidden_size if asked is None else _check_dimensions(where, asked, full)
        fetch_k = k if config.fetch_k is None else config.fetch_k
        check_positive_int(fetch_k, f"{where}: fetch_k")
        if config.rerank and fetch_k < k:
            raise ValueError(
                f"{where}: fetch_k={fetch_k} is smaller than k={k}: the reranker must see at "
                f"least the k results it keeps"
            )
        name = config.name or _label(
            None if config.model is None else full.model,
            query_preset,
            dims if config.dimensions is not None or dims < full.hidden_size else None,
            fetch_k if config.rerank else None,
            config.long_documents == "max",
        )
        if config.name is None and full.remote is None and not full.exact:
            name += f" [{full.engine} {full.precision}]"  # the path, where it is not float32
        if name in seen:
            seen[name] += 1
            name = f"{name} ({seen[name]})"
        else:
            seen[name] = 1
        symmetric = query_preset is not None and query_preset.symmetric
        if symmetric and collection is None:
            logger.info(
                "%s: the instruction is symmetric, so documents are embedded with it too "
                "(vectors of their own)",
                name,
            )
        plans.append(
            _Plan(
                config=config,
                name=name,
                embedder=full,
                query_preset=query_preset,
                doc_preset=query_preset if symmetric else None,
                dimensions=dims,
                fetch_k=fetch_k if config.rerank else k,
            )
        )
    return plans
