from __future__ import annotations

import pytest
import torch

from qwen3_rag.batching import left_pad, plan_batches


@pytest.mark.parametrize("budget", [None, 1, 10, 64, 1000])
@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_every_item_once_and_limits_respected(batch_size: int, budget: int | None) -> None:
    lengths = [5, 1, 90, 7, 7, 33, 2, 64, 1, 12, 40]
    batches = plan_batches(lengths, batch_size, budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= batch_size
        width = max(lengths[i] for i in batch)
        if budget is not None and len(batch) > 1:
            assert width * len(batch) <= budget
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)


def test_a_text_over_the_budget_gets_a_batch_of_its_own() -> None:
    batches = plan_batches([8000, 10, 8000, 12], batch_size=32, max_batch_tokens=4096)
    assert batches[:2] == [[0], [2]]
    assert batches[2] == [3, 1]


def test_similar_lengths_are_grouped() -> None:
    assert plan_batches([5, 100, 6, 99], batch_size=2, max_batch_tokens=None) == [[1, 3], [2, 0]]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "8"])
def test_bad_sizes_are_value_errors(bad: object) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        plan_batches([1], bad, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_batch_tokens"):
        plan_batches([1], 1, bad)  # type: ignore[arg-type]


def test_left_pad_positions_ignore_padding() -> None:
    ids, mask, pos = left_pad([[7, 8, 9], [5]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[7, 8, 9], [0, 0, 5]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert pos.tolist()[0] == [0, 1, 2]
    assert pos.tolist()[1][-1] == 0
