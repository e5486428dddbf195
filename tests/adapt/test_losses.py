"""The losses equal a literal, per-example computation of the report's formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qwen3_rag.adapt.losses import info_nce, yes_no_loss


def cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def literal_info_nce(
    q: list[list[float]],
    d: list[list[float]],
    neg: list[list[list[float]]],
    passage: list[str],
    t: float,
    margin: float = 0.1,
) -> float:
    """L = -1/N sum_i log(exp(s(q_i,d_i+)/t) / Z_i), written out term by term."""
    n = len(q)
    total = 0.0
    for i in range(n):
        s_pos = cos(q[i], d[i])
        z = math.exp(s_pos / t)
        for dn in neg[i]:  # the K hard negatives of q_i
            z += math.exp(cos(q[i], dn) / t)
        for j in range(n):
            if j == i:
                continue
            same = passage[j] == passage[i]  # d_j is d_i+
            for s in (cos(q[i], q[j]), cos(d[i], d[j]), cos(q[i], d[j])):
                m = 0.0 if (s > s_pos + margin or same) else 1.0
                z += m * math.exp(s / t)
        total += -math.log(math.exp(s_pos / t) / z)
    return total / n


def batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(5, 6, generator=g, dtype=torch.float64)
    d = q + 0.8 * torch.randn(5, 6, generator=g, dtype=torch.float64)
    d[3] = d[1]  # queries 1 and 3 share a passage
    q[4] = d[0] * 1.5  # query 4 sits on query 0's passage: a masked, too-high q-d term
    neg = torch.randn(5, 2, 6, generator=g, dtype=torch.float64)
    return F.normalize(q, dim=-1), F.normalize(d, dim=-1), F.normalize(neg, dim=-1)


@pytest.mark.parametrize("t", [0.05, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_info_nce_equals_the_literal_formula(seed: int, t: float) -> None:
    q, d, neg = batch(seed)
    passage = ["p0", "p1", "p2", "p1", "p4"]
    same = torch.tensor([[a == b for b in passage] for a in passage])
    got = info_nce(q, d, neg, temperature=t, same=same).item()
    want = literal_info_nce(q.tolist(), d.tolist(), neg.tolist(), passage, t)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_the_mask_matters_in_this_batch() -> None:
    # without the mask the loss differs: the test batch exercises both mask conditions
    q, d, neg = batch(0)
    ql, dl = q.tolist(), d.tolist()
    above = [
        (i, j)
        for i in range(5)
        for j in range(5)
        if j != i
        and max(cos(ql[i], ql[j]), cos(dl[i], dl[j]), cos(ql[i], dl[j])) > cos(ql[i], dl[i]) + 0.1
    ]
    assert above  # some in-batch term scores above s(q_i, d_i+) + 0.1
    passage = ["p0", "p1", "p2", "p1", "p4"]
    same = torch.tensor([[a == b for b in passage] for a in passage])
    masked = info_nce(q, d, neg, temperature=0.05, same=same).item()
    unmasked = literal_info_nce(
        q.tolist(), d.tolist(), neg.tolist(), [f"x{i}" for i in range(5)], 0.05, margin=10.0
    )
    assert abs(masked - unmasked) > 1e-3


def test_info_nce_without_negatives_and_gradients() -> None:
    q, d, _ = batch(1)
    q.requires_grad_(True)
    loss = info_nce(q, d, None, temperature=0.1)
    want = literal_info_nce(
        q.tolist(), d.tolist(), [[] for _ in range(5)], [f"p{i}" for i in range(5)], 0.1
    )
    assert loss.item() == pytest.approx(want, rel=1e-9)
    loss.backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_info_nce_rejects_bad_input() -> None:
    q, d, neg = batch(0)
    with pytest.raises(ValueError, match="temperature"):
        info_nce(q, d, neg, temperature=0)
    with pytest.raises(ValueError, match="positives"):
        info_nce(q, d[:3], neg)


def test_yes_no_loss_is_minus_log_p_label() -> None:
    yes = torch.tensor([2.0, -1.0, 0.5, 3.0], dtype=torch.float64)
    no = torch.tensor([0.5, 1.0, 0.5, -2.0], dtype=torch.float64)
    labels = torch.tensor([1, 0, 1, 0])
    want = 0.0
    for y, n, label in zip(yes.tolist(), no.tolist(), labels.tolist(), strict=True):
        p_yes = math.exp(y) / (math.exp(y) + math.exp(n))  # softmax over the two rows
        want += -math.log(p_yes if label == 1 else 1 - p_yes)
    assert yes_no_loss(yes, no, labels).item() == pytest.approx(want / 4, rel=1e-12)
