"""``qwen3-rag check-server``: a model server against the local weights, on a fixed probe set.

:func:`check_server` embeds and reranks a probe set (the published examples, a non-Latin
query, an empty one, a document long enough to be cut) through a server and locally, for
every probe instruction and Matryoshka size, and reports the largest differences against
tolerances that bf16 serving meets and recipe mistakes (a missing instruction or
``<|endoftext|>``, no reranker prefix or suffix) do not. The probe texts and the default
tolerances are the ones every non-exact local path is held to (:mod:`qwen3_rag.fidelity`).

Example:
    >>> from qwen3_rag.server_check import check_server
    >>> report = check_server("http://localhost:8000")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qwen3_rag.embedder import Embedder
from qwen3_rag.fidelity import MAX_SCORE_DIFF, MIN_COSINE, PROBE_DOCUMENTS, PROBE_QUERIES
from qwen3_rag.options import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, check_base_url
from qwen3_rag.reranker import Reranker

__all__ = [
    "MAX_SCORE_DIFF",
    "MIN_COSINE",
    "PROBE_DOCUMENTS",
    "PROBE_INSTRUCTIONS",
    "PROBE_MAX_LENGTH",
    "PROBE_QUERIES",
    "ProbeResult",
    "ServerReport",
    "check_server",
]

logger = logging.getLogger(__name__)

#: Instructions of the probe set: the default, a symmetric preset, a custom sentence.
PROBE_INSTRUCTIONS = (
    None,
    "semantic_similarity",
    "Given a question, find the passage that answers it",
)
#: Default ``max_length`` of the probe: the long document is cut, on both sides.
PROBE_MAX_LENGTH = 256


@dataclass
class ProbeResult:
    """One comparison of :func:`check_server`.

    Attributes:
        kind: ``"embedding"`` or ``"rerank"``.
        name: What was compared (texts, instruction, dimensions).
        min_cosine: Smallest cosine between local and served vectors (embedding).
        max_abs_diff: Largest absolute difference of a vector value or a score.
        ok: Whether it is within the tolerances.
    """

    kind: str
    name: str
    max_abs_diff: float
    min_cosine: float | None = None
    ok: bool = True


@dataclass
class ServerReport:
    """What :func:`check_server` found; ``ok`` is the verdict.

    Attributes:
        embed_url: The embedding server checked, or ``None``.
        rerank_url: The reranking server checked, or ``None``.
        embedding_model: The embedding model (local weights and served name).
        reranker_model: The reranker model.
        max_abs_vector_diff: Largest absolute difference of a vector value.
        min_cosine: Smallest cosine between a local and a served vector.
        max_abs_score_diff: Largest absolute difference of a reranker score.
        dimensions_accepted: Whether the server took ``dimensions`` (``False``: the client
            truncates; ``None``: not checked).
        min_cosine_allowed: The cosine tolerance.
        max_score_diff_allowed: The score tolerance.
        probes: Every comparison.
        ok: Whether everything is within the tolerances.
    """

    embed_url: str | None
    rerank_url: str | None
    embedding_model: str | None
    reranker_model: str | None
    max_abs_vector_diff: float | None = None
    min_cosine: float | None = None
    max_abs_score_diff: float | None = None
    dimensions_accepted: bool | None = None
    min_cosine_allowed: float = MIN_COSINE
    max_score_diff_allowed: float = MAX_SCORE_DIFF
    probes: list[ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every comparison is within the tolerances."""
        return all(p.ok for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-serialisable data."""
        return {**asdict(self), "ok": self.ok}

    def table(self) -> str:
        """The report as a text table, worst differences first within each kind."""
        lines = []
        if self.embed_url:
            accepted = {None: "not asked", True: "yes", False: "no (truncated here)"}
            lines.append(
                f"embeddings  {self.embed_url}  model {self.embedding_model}  dimensions "
                f"accepted: {accepted[self.dimensions_accepted]}"
            )
        if self.rerank_url:
            lines.append(f"reranking   {self.rerank_url}  model {self.reranker_model}")
        lines.append("")
        lines.append(f"{'kind':<10} {'probe':<54} {'max |diff|':>10} {'min cos':>9}  ok")
        for p in sorted(self.probes, key=lambda p: (p.kind, -p.max_abs_diff)):
            cos = "" if p.min_cosine is None else f"{p.min_cosine:.6f}"
            lines.append(
                f"{p.kind:<10} {p.name[:54]:<54} {p.max_abs_diff:>10.2e} {cos:>9}  "
                f"{'yes' if p.ok else 'NO'}"
            )
        lines.append("")
        summary = []
        if self.max_abs_vector_diff is not None:
            summary.append(
                f"vectors: max |diff| {self.max_abs_vector_diff:.2e}, min cosine "
                f"{self.min_cosine:.6f} (allowed >= {self.min_cosine_allowed})"
            )
        if self.max_abs_score_diff is not None:
            summary.append(
                f"scores: max |diff| {self.max_abs_score_diff:.2e} (allowed <= "
                f"{self.max_score_diff_allowed})"
            )
        lines.append("; ".join(summary))
        lines.append(
            "OK: the server computes the recipe"
            if self.ok
            else "DIFFERENT: the server does not compute the recipe (see the probes marked NO)"
        )
        return "\n".join(lines)


def _mrl_sizes(hidden: int) -> list[int | None]:
    sizes: list[int | None] = [None]
    sizes += [d for d in (32, 128, 512) if d < hidden]
    return sizes


def check_server(
    url: str | None = None,
    *,
    embed_url: str | None = None,
    rerank_url: str | None = None,
    embedding_model: str = "Qwen/Qwen3-Embedding-0.6B",
    reranker_model: str = "Qwen/Qwen3-Reranker-0.6B",
    max_length: int = PROBE_MAX_LENGTH,
    min_cosine: float = MIN_COSINE,
    max_score_diff: float = MAX_SCORE_DIFF,
    device: str | None = None,
    dtype: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    embed_api_key_env: str | None = None,
    rerank_api_key_env: str | None = None,
) -> ServerReport:
    """Embed and rerank a fixed probe set locally and through servers; report the differences.

    The local side loads the model weights here (a local folder or the hub cache); the
    served side sends the same inputs, formatted by the same code. Every query and document
    of the probe is embedded with each probe instruction (the default, a symmetric preset, a
    custom sentence) and each Matryoshka size below the model's, and reranked with each
    instruction; the long document is cut at ``max_length`` on both sides.

    Args:
        url: One server for both models (e.g. a router in front of two engines).
        embed_url: The embedding server (overrides ``url``); ``None`` with no ``url`` skips
            the embedding check.
        rerank_url: The reranking server (overrides ``url``).
        embedding_model: Served name and local weights of the embedding model.
        reranker_model: Served name and local weights of the reranker.
        max_length: ``max_length`` of both sides during the probe.
        min_cosine: Smallest cosine allowed between a local and a served vector.
        max_score_diff: Largest score difference allowed.
        device: Device of the local side.
        dtype: Dtype of the local side (default float32 on CPU: the reference).
        timeout: Seconds per request to the server.
        max_retries: Retries per request.
        embed_api_key_env: Variable holding the embedding server's key (default
            ``QWEN3_RAG_EMBED_API_KEY``).
        rerank_api_key_env: Variable holding the reranking server's key.

    Returns:
        The report (``report.ok``, ``report.table()``, ``report.to_dict()``).

    Raises:
        ValueError: If no server is named.
        RemoteError: If a server cannot be reached or refuses a request.
        ModelLoadError: If the local weights cannot be loaded.

    Example:
        >>> report = check_server("http://localhost:8000")  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    with _probe_truncation_not_logged():
        return _check_server(
            url,
            embed_url=embed_url,
            rerank_url=rerank_url,
            embedding_model=embedding_model,
            reranker_model=reranker_model,
            max_length=max_length,
            min_cosine=min_cosine,
            max_score_diff=max_score_diff,
            device=device,
            dtype=dtype,
            timeout=timeout,
            max_retries=max_retries,
            embed_api_key_env=embed_api_key_env,
            rerank_api_key_env=rerank_api_key_env,
        )


class _NoTruncationWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "were truncated" not in record.getMessage()


@contextlib.contextmanager
def _probe_truncation_not_logged() -> Iterator[None]:
    """The probe cuts its long document on purpose: no warning for that."""
    quiet = _NoTruncationWarning()
    loggers = [logging.getLogger(f"qwen3_rag.{m}") for m in ("embedder", "reranker", "remote")]
    for one in loggers:
        one.addFilter(quiet)
    try:
        yield
    finally:
        for one in loggers:
            one.removeFilter(quiet)


def _check_server(
    url: str | None,
    *,
    embed_url: str | None,
    rerank_url: str | None,
    embedding_model: str,
    reranker_model: str,
    max_length: int,
    min_cosine: float,
    max_score_diff: float,
    device: str | None,
    dtype: str | None,
    timeout: float,
    max_retries: int,
    embed_api_key_env: str | None,
    rerank_api_key_env: str | None,
) -> ServerReport:
    embed_url = embed_url or url
    rerank_url = rerank_url or url
    if embed_url is None and rerank_url is None:
        raise ValueError("check_server needs a server: pass url, embed_url or rerank_url")
    report = ServerReport(
        embed_url=check_base_url(embed_url, "embed_url") if embed_url else None,
        rerank_url=check_base_url(rerank_url, "rerank_url") if rerank_url else None,
        embedding_model=embedding_model if embed_url else None,
        reranker_model=reranker_model if rerank_url else None,
        min_cosine_allowed=min_cosine,
        max_score_diff_allowed=max_score_diff,
    )
    common: dict[str, Any] = {"max_length": max_length, "timeout": timeout}
    local_args: dict[str, Any] = {"device": device, "dtype": dtype, "max_length": max_length}
    if report.embed_url:
        probe = Embedder(
            embedding_model, base_url=report.embed_url, api_key_env=embed_api_key_env, **common
        )
        sizes = _mrl_sizes(probe.hidden_size)  # the served size: asks the server first
        for instruction in PROBE_INSTRUCTIONS:
            for dims in sizes:
                served = Embedder(
                    embedding_model,
                    base_url=report.embed_url,
                    api_key_env=embed_api_key_env,
                    max_retries=max_retries,
                    dimensions=dims,
                    instruction=instruction,
                    **common,
                )
                mine = Embedder(
                    embedding_model, dimensions=dims, instruction=instruction, **local_args
                )
                for side in ("queries", "documents"):
                    texts = list(PROBE_QUERIES if side == "queries" else PROBE_DOCUMENTS)
                    # The server first: a dead server fails before local weights load.
                    if side == "queries":
                        b, a = served.embed_queries(texts), mine.embed_queries(texts)
                    else:
                        b, a = served.embed_documents(texts), mine.embed_documents(texts)
                    diff = float(np.abs(a - b).max())
                    cos = float((a * b).sum(axis=1).min())
                    report.probes.append(
                        ProbeResult(
                            "embedding",
                            f"{side}, instruction={instruction or 'default'}, "
                            f"dimensions={dims or 'full'}",
                            diff,
                            cos,
                            cos >= min_cosine,
                        )
                    )
                if dims is not None and served.remote is not None:
                    accepted = served.remote.dimensions_accepted
                    if accepted is not None:
                        report.dimensions_accepted = accepted
                served.close()
        embedding = [p for p in report.probes if p.kind == "embedding"]
        report.max_abs_vector_diff = max(p.max_abs_diff for p in embedding)
        report.min_cosine = min(p.min_cosine or 0.0 for p in embedding)
    if report.rerank_url:
        for instruction in PROBE_INSTRUCTIONS:
            served_rr = Reranker(
                reranker_model,
                base_url=report.rerank_url,
                api_key_env=rerank_api_key_env,
                max_retries=max_retries,
                instruction=instruction,
                **common,
            )
            mine_rr = Reranker(reranker_model, instruction=instruction, **local_args)
            pairs = [(q, d) for q in PROBE_QUERIES for d in PROBE_DOCUMENTS]
            b_scores = np.asarray(served_rr.score_pairs(pairs))
            a_scores = np.asarray(mine_rr.score_pairs(pairs))
            diff = float(np.abs(a_scores - b_scores).max())
            report.probes.append(
                ProbeResult(
                    "rerank",
                    f"{len(pairs)} pairs, instruction={instruction or 'default'}",
                    diff,
                    None,
                    diff <= max_score_diff,
                )
            )
            served_rr.close()
        report.max_abs_score_diff = max(p.max_abs_diff for p in report.probes if p.kind == "rerank")
    return report
