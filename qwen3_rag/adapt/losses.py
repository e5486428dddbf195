"""The training losses of the Qwen3 Embedding report.

**Embedding (InfoNCE with in-batch terms and a false-negative mask).** For a batch of ``N``
queries ``q_i``, each with its positive passage ``d_i+`` and ``K`` hard negatives
``d_ik``, with ``s`` the cosine similarity and ``t`` the temperature::

    L = -1/N sum_i log( exp(s(q_i, d_i+) / t) / Z_i )

    Z_i = exp(s(q_i, d_i+) / t)
        + sum_k        exp(s(q_i, d_ik) / t)           the hard negatives
        + sum_{j != i} m_ij exp(s(q_i, q_j) / t)       the other queries
        + sum_{j != i} m_ij exp(s(d_i+, d_j) / t)      the other positives, as documents
        + sum_{j != i} m_ij exp(s(q_i, d_j) / t)       the other documents

where ``d_j`` is the positive of query ``j`` and each in-batch term is masked out
(``m_ij = 0``) when its score exceeds ``s(q_i, d_i+) + margin`` (0.1 in the report) or when
``d_j`` is ``d_i+`` (two queries of one passage in the batch): both are likely false
negatives.

**Reranker (supervised).** ``-log p(label | prompt)`` with label ``yes`` for a query and its
passage and ``no`` for a query and a negative, where ``p`` is the two-way softmax of the
``yes`` and ``no`` logits at the last position: exactly the score the reranker reports,
``P(yes) = sigmoid(logit_yes - logit_no)``.

Example:
    >>> import torch
    >>> from qwen3_rag.adapt.losses import info_nce
    >>> q = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    >>> d = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    >>> info_nce(q, q, None).item() < info_nce(q, d, None).item()  # matched pairs cost less
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DEFAULT_MARGIN", "DEFAULT_TEMPERATURE", "info_nce", "yes_no_loss"]

#: The temperature of the contrastive loss. The report does not state it; 0.05 is the usual
#: choice for cosine-similarity InfoNCE and the default of sentence-transformers'
#: ``MultipleNegativesRankingLoss`` (scale 20).
DEFAULT_TEMPERATURE = 0.05
#: The false-negative mask's margin over the positive's score (the report's 0.1).
DEFAULT_MARGIN = 0.1


def info_nce(
    queries: torch.Tensor,
    positives: torch.Tensor,
    negatives: torch.Tensor | None,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    margin: float = DEFAULT_MARGIN,
    same: torch.Tensor | None = None,
) -> torch.Tensor:
    """The report's InfoNCE loss over one batch (see the module docstring).

    Args:
        queries: ``(N, dim)`` L2-normalised query vectors.
        positives: ``(N, dim)`` L2-normalised vectors of each query's passage.
        negatives: ``(N, K, dim)`` L2-normalised hard negatives, or ``None`` (``K = 0``).
        temperature: ``t``.
        margin: In-batch terms scoring above ``s(q_i, d_i+) + margin`` are masked out.
        same: ``(N, N)`` bool, ``True`` where query ``j``'s passage is query ``i``'s (same
            id or text); ``None``: only ``j == i``.

    Returns:
        The mean loss, a scalar.

    Raises:
        ValueError: On shapes that do not fit together or a temperature <= 0.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = queries.shape[0]
    if positives.shape != queries.shape:
        raise ValueError(
            f"positives {tuple(positives.shape)} must match queries {tuple(queries.shape)}"
        )
    if negatives is not None and (
        negatives.shape[0] != n or negatives.shape[2] != queries.shape[1]
    ):
        raise ValueError(f"negatives must be (N, K, dim), got {tuple(negatives.shape)}")
    eye = torch.eye(n, dtype=torch.bool, device=queries.device)
    excluded = eye if same is None else (same.to(queries.device) | eye)
    pos = (queries * positives).sum(-1)  # s(q_i, d_i+)
    limit = (pos + margin).detach().unsqueeze(1)
    parts = [pos.unsqueeze(1)]
    if negatives is not None and negatives.shape[1]:
        parts.append(torch.einsum("nd,nkd->nk", queries, negatives))
    for scores in (queries @ queries.T, positives @ positives.T, queries @ positives.T):
        masked = excluded | (scores.detach() > limit)
        parts.append(scores.masked_fill(masked, float("-inf")))
    logits = torch.cat(parts, dim=1) / temperature
    return (torch.logsumexp(logits, dim=1) - pos / temperature).mean()


def yes_no_loss(
    logit_yes: torch.Tensor, logit_no: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """``-log p(label | prompt)`` over the two answer tokens, averaged.

    Args:
        logit_yes: ``(N,)`` logits of ``yes`` at the last position.
        logit_no: ``(N,)`` logits of ``no``.
        labels: ``(N,)`` 1 for ``yes``, 0 for ``no``.

    Returns:
        The mean loss, a scalar.
    """
    return F.binary_cross_entropy_with_logits(logit_yes - logit_no, labels.to(logit_yes.dtype))
