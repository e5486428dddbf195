"""Evaluating a real Chroma collection: HNSW search, records (chunks) folded to corpus ids."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm.auto import tqdm

from qwen3_rag.embedder import Embedder
from qwen3_rag.evaluation.data import Dataset
from qwen3_rag.evaluation.exact import truncate
from qwen3_rag.evaluation.metrics import Run, _trec_order
from qwen3_rag.evaluation.plan import _embedder, _Plan
from qwen3_rag.options import progress_disabled

__all__ = ["CHROMA_PAGE", "CHROMA_QUERY_BATCH"]

logger = logging.getLogger(__name__)

CHROMA_PAGE = 5_000
#: Queries per ``collection.query`` call.
CHROMA_QUERY_BATCH = 256


def _display_path(path: str) -> str:
    """A path as ``qwen3-rag query`` prints it: relative to the working directory if under it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


class _Collection:
    """HNSW search through a Chroma collection; records (chunks) folded to corpus ids."""

    def __init__(
        self,
        collection: Any,
        data: Dataset,
        id_key: str | None,
        qids: list[str],
        progress: bool | None,
    ) -> None:
        try:
            from qwen3_rag.chroma import EMBEDDING_FUNCTION_NAME, Qwen3EmbeddingFunction
        except ImportError as exc:
            raise ImportError(
                'evaluating a Chroma collection needs chromadb: pip install "qwen3-rag[chroma]"'
            ) from exc
        self.collection = collection
        self.id_key = id_key
        self.qids = qids
        self.progress = progress
        name = getattr(collection, "name", "?")
        config = dict(collection.configuration_json or {})
        persisted = config.get("embedding_function") or {}
        if persisted.get("name") != EMBEDDING_FUNCTION_NAME:
            raise ValueError(
                f"collection {name!r} was not made by qwen3-rag (embedding function "
                f"{persisted.get('name')!r}): build it with `qwen3-rag index` or "
                f"Qwen3EmbeddingFunction"
            )
        function = Qwen3EmbeddingFunction.build_from_config(dict(persisted.get("config") or {}))
        self.own: Embedder = function.embedder
        self.preset = self.own.preset
        self.dimensions = self.own.dimension
        self.total = int(collection.count())
        if not self.total:
            raise ValueError(f"collection {name!r} is empty: index the corpus into it first")
        self.space = str((config.get("hnsw") or {}).get("space") or "l2")
        self.description = f"Chroma collection {name!r} (HNSW, {self.space})"
        self.texts: dict[str, str] = {}
        self.owner: dict[str, str] = {}  # record id -> corpus id
        self._check_ids(data, name)

    def embedder(self, given: str | os.PathLike[str] | Embedder | None) -> Embedder:
        """The embedder to query with: the given one, else the collection's own."""
        if given is None:
            return self.own
        chosen = _embedder(given, self.own)
        if chosen.identity().weights != self.own.identity().weights:
            logger.warning(
                "collection %r was indexed with %s; querying it with %s",
                getattr(self.collection, "name", "?"),
                self.own.model,
                chosen.model,
            )
        return chosen

    def _corpus_id(self, record_id: str, meta: Mapping[str, Any] | None) -> str | None:
        if self.id_key is None:
            return record_id
        value = (meta or {}).get(self.id_key)
        if value is None:
            return None
        return _display_path(str(value)) if self.id_key == "source" else str(value)

    def _check_ids(self, data: Dataset, name: str) -> None:
        mapped: set[str] = set()
        example = ""
        for offset in range(0, self.total, CHROMA_PAGE):
            page = self.collection.get(include=["metadatas"], limit=CHROMA_PAGE, offset=offset)
            metas = page.get("metadatas") or [None] * len(page["ids"])
            for rid, meta in zip(page["ids"], metas, strict=True):
                example = example or str(rid)
                cid = self._corpus_id(str(rid), meta)
                if cid is not None:
                    mapped.add(cid)
        matched = len(mapped & set(data.corpus))
        if not matched:
            how = f"metadata key {self.id_key!r}" if self.id_key else "record ids"
            hint = ""
            if self.id_key is None and "#" in example:
                hint = "; for a `qwen3-rag index` collection use id_key='source' (--id-key source)"
            raise ValueError(
                f"no record of collection {name!r} maps to a corpus id through its {how} "
                f"(e.g. {example!r}){hint}"
            )
        if matched < len(data.corpus):
            logger.warning(
                "%d of %d corpus documents are not in collection %r: they are never retrieved",
                len(data.corpus) - matched,
                len(data.corpus),
                name,
            )

    def text(self, candidate: str) -> str:
        return self.texts[candidate]

    def candidates(self, plan: _Plan, queries: NDArray[np.float32], depth: int) -> Run:
        """The collection's nearest records per query, enough to cover ``depth`` documents.

        Records are fetched until ``depth`` distinct corpus ids are covered (the fetch is
        doubled for the queries whose chunks bunch up on fewer documents), and cut just
        before the record that would add one more document: the records of the first
        ``depth`` documents, best first.
        """
        vectors = truncate(queries, plan.truncation)
        # l2 is the squared distance of unit vectors, 2 - 2 cos; cosine and ip: 1 - similarity
        half = 0.5 if self.space == "l2" else 1.0
        run: Run = {}
        pending = list(range(len(self.qids)))
        fetch = min(depth, self.total)
        with tqdm(
            total=len(self.qids),
            desc="Querying",
            unit="query",
            disable=progress_disabled(self.progress),
        ) as bar:
            while pending:
                short: list[int] = []
                for start in range(0, len(pending), CHROMA_QUERY_BATCH):
                    batch = pending[start : start + CHROMA_QUERY_BATCH]
                    found = self.collection.query(
                        query_embeddings=vectors[batch],
                        n_results=fetch,
                        include=["documents", "metadatas", "distances"],
                    )
                    for j, i in enumerate(batch):
                        ranked, covered = self._records(found, j, half, depth)
                        if covered < depth and fetch < self.total:
                            short.append(i)
                        else:
                            run[self.qids[i]] = ranked
                            bar.update(1)
                pending = short
                fetch = min(self.total, 2 * fetch)
        return {q: run[q] for q in self.qids}

    def _records(
        self, found: Mapping[str, Any], j: int, half: float, depth: int
    ) -> tuple[list[tuple[str, float]], int]:
        """Query ``j``'s records, best first, up to ``depth`` documents; and how many."""
        ids = [str(i) for i in found["ids"][j]]
        docs = (found.get("documents") or [])[j] if found.get("documents") else [None] * len(ids)
        metas = (found.get("metadatas") or [])[j] if found.get("metadatas") else [None] * len(ids)
        dists = found["distances"][j]
        ranked: list[tuple[str, float]] = []
        for rid, doc, meta, dist in zip(ids, docs, metas, dists, strict=True):
            cid = self._corpus_id(rid, meta)
            if cid is None:
                continue
            self.texts[rid] = doc or ""
            self.owner[rid] = cid
            ranked.append((rid, 1.0 - half * float(dist)))
        kept: list[tuple[str, float]] = []
        covered: set[str] = set()
        for rid, score in _trec_order(ranked):
            cid = self.owner[rid]
            if cid not in covered:
                if len(covered) == depth:
                    break
                covered.add(cid)
            kept.append((rid, score))
        return kept, len(covered)

    def fold(self, run: Run) -> Run:
        """Records to corpus ids: each document once, at its best record's score."""
        out: Run = {}
        for qid, ranked in run.items():
            best: dict[str, float] = {}
            for rid, score in ranked:
                cid = self.owner[rid]
                if cid not in best or score > best[cid]:
                    best[cid] = score
            out[qid] = _trec_order(best.items())
        return out
