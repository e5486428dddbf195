"""Length-sorted, token-budget batches, truncating encoding, and padding.

Every text reaches the tokenizer through :func:`encode_truncated`, which also makes it well
formed (:func:`well_formed`): surrogate code points are not characters and cannot be encoded as
UTF-8, so a high+low pair becomes the character it stands for and each lone surrogate becomes
U+FFFD, with one logged warning per call.

Texts of similar length go together so little compute is spent on padding; a batch is cut
when it reaches ``batch_size`` items or when its padded size (items x longest) would pass
``max_batch_tokens``. A text longer than the budget gets a batch of its own, so one 8k-token
text never shares a batch with other long ones. Callers scatter results back by index, so the
output is in input order.

Example:
    >>> plan_batches([5, 1, 9, 2], batch_size=2, max_batch_tokens=100)
    [[2, 0], [3, 1]]
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import torch

from qwen3_rag.options import check_positive_int

__all__ = [
    "MAX_PADDING",
    "encode_cut",
    "encode_truncated",
    "left_pad",
    "plan_batches",
    "rerank_budget",
    "repaired",
    "right_pad",
    "text_windows",
    "token_windows",
    "well_formed",
]

logger = logging.getLogger(__name__)

#: Cut a length-sorted batch once more than this fraction of it would be padding, where padding
#: costs compute: attention on a padded grid (accelerators) and transformers' own forward. The
#: lean forward on CPU computes no pad at all (see ``qwen3_rag._forward.padding_limit``).
MAX_PADDING = 0.15

_SURROGATE = re.compile("[\ud800-\udfff]")


def well_formed(texts: list[str]) -> tuple[list[str], int]:
    """The texts as well-formed Unicode, ready to be encoded as UTF-8.

    A Python ``str`` may hold surrogate code points (U+D800..U+DFFF): from JSON ``"\\ud83d"``
    escapes, from text handled as UTF-16 code units, or from bytes decoded with
    ``errors="surrogateescape"``. They are not characters and no tokenizer can read them. Here a
    high surrogate followed by a low one becomes the character the pair encodes (as UTF-16 and
    JSON read it), and every other surrogate becomes U+FFFD, the replacement character. Texts
    without surrogates are returned as they are (the same objects).

    Args:
        texts: The texts.

    Returns:
        ``(texts, how many texts held a surrogate)``.

    Example:
        >>> well_formed(["ok", "\\ud83d\\ude00", "a\\ud800b"])
        (['ok', '😀', 'a\ufffdb'], 2)
    """
    out: list[str] = []
    changed = 0
    for text in texts:
        if not text.isascii() and _SURROGATE.search(text):
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
            changed += 1
        out.append(text)
    return out, changed


def repaired(texts: list[str]) -> list[str]:
    """:func:`well_formed` texts, with one logged warning when any held a surrogate.

    Every path from a user's text to a model goes through here: the tokenizer
    (:func:`encode_cut`) and a model server's JSON body (``qwen3_rag.remote``) alike.
    """
    texts, changed = well_formed(texts)
    if changed:
        logger.warning(
            "%d of %d texts held surrogate code points (not valid Unicode): surrogate pairs "
            "were joined and each lone surrogate replaced by U+FFFD",
            changed,
            len(texts),
        )
    return texts


def encode_cut(tokenizer: Any, texts: list[str], keep: int) -> tuple[list[list[int]], list[bool]]:
    """Token ids of each text (no special tokens), cut from the right to ``keep`` tokens.

    The one place where texts meet the tokenizer: each is made :func:`well_formed` first (one
    logged warning per call if any held a surrogate).

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.
        texts: The texts.
        keep: Most tokens to keep per text (>= 1).

    Returns:
        ``(ids per text, whether each text was cut)``.
    """
    texts = repaired(texts)
    sequences: list[list[int]] = []
    cut: list[bool] = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        ids: list[int] = enc.ids
        cut.append(len(ids) > keep)
        sequences.append(ids[:keep])
    return sequences, cut


def encode_truncated(tokenizer: Any, texts: list[str], keep: int) -> tuple[list[list[int]], int]:
    """Token ids of each text (no special tokens), cut from the right to ``keep`` tokens.

    :func:`encode_cut`, counting the texts that were cut.

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.
        texts: The texts.
        keep: Most tokens to keep per text (>= 1).

    Returns:
        ``(ids per text, how many texts were cut)``.
    """
    sequences, cut = encode_cut(tokenizer, texts, keep)
    return sequences, sum(cut)


def rerank_budget(max_length: int, fixed: int) -> int:
    """Tokens left for a reranker body (instruction, query, document) within ``max_length``.

    Args:
        max_length: Most tokens per query-document pair, template included.
        fixed: Tokens of the fixed prefix and suffix together.

    Raises:
        ValueError: If the template alone fills ``max_length``.

    Example:
        >>> rerank_budget(512, 40)
        472
    """
    budget = max_length - fixed
    if budget < 1:
        raise ValueError(
            f"max_length={max_length} leaves no room for the query and document: "
            f"the fixed template alone takes {fixed} tokens"
        )
    return budget


def token_windows(
    length: int, size: int, overlap: int, max_windows: int | None = None
) -> list[tuple[int, int]]:
    """Overlapping windows ``[start, end)`` over ``length`` tokens, ``size`` tokens each.

    Windows start every ``size - overlap`` tokens; the last one ends at the last token (so
    it may share more than ``overlap`` tokens with the one before it). A text that fits is
    one window. With ``max_windows``, only the first ones are kept.

    Args:
        length: Tokens of the text.
        size: Tokens per window (>= 1).
        overlap: Tokens two neighbouring windows share (0 <= overlap < size).
        max_windows: Most windows to keep, or ``None`` for all.

    Raises:
        ValueError: If ``overlap`` does not leave the windows room to advance.

    Example:
        >>> token_windows(10, 4, 1)
        [(0, 4), (3, 7), (6, 10)]
        >>> token_windows(11, 4, 1)
        [(0, 4), (3, 7), (6, 10), (7, 11)]
        >>> token_windows(3, 4, 1), token_windows(11, 4, 1, max_windows=2)
        ([(0, 3)], [(0, 4), (3, 7)])
    """
    check_positive_int(size, "size")
    if not 0 <= overlap < size:
        raise ValueError(f"window_overlap={overlap} must be smaller than the window ({size})")
    if length <= size:
        return [(0, length)]
    starts = [*range(0, length - size, size - overlap), length - size]
    return [(start, start + size) for start in starts[:max_windows]]


def text_windows(
    tokenizer: Any,
    texts: list[str],
    sizes: Sequence[int],
    overlap: int,
    max_windows: int | None = None,
) -> list[list[tuple[int, int]]]:
    """Overlapping windows of each text, of the model's own tokens, as character spans.

    Each text is tokenized alone (no special tokens) and cut by :func:`token_windows`;
    a window is the text from its first token's first character up to the next window
    token's first character (the text's end for the last), so the windows cover the text
    and ``text[start:end]`` is what a window holds. Texts are made :func:`well_formed`
    first; spans index that form (the text itself unless it held surrogates).

    Args:
        tokenizer: A ``tokenizers.Tokenizer``.
        texts: The texts.
        sizes: Tokens per window, for each text.
        overlap: Tokens two neighbouring windows share.
        max_windows: Most windows per text, or ``None``.

    Returns:
        ``(start, end)`` character spans per text, in order.

    Raises:
        ValueError: If ``overlap`` leaves a text's windows no room to advance.
    """
    texts = repaired(texts)
    out: list[list[tuple[int, int]]] = []
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    for text, enc, size in zip(texts, encodings, sizes, strict=True):
        starts = [0, *(int(a) for a, _ in enc.offsets[1:]), len(text)]  # token i starts here
        spans = token_windows(len(enc.offsets), size, overlap, max_windows)
        out.append([(starts[a], starts[b]) for a, b in spans])
    return out


def plan_batches(
    lengths: Sequence[int],
    batch_size: int,
    max_batch_tokens: int | None,
    *,
    max_padding: float | None = None,
    min_batch_tokens: int = 512,
) -> list[list[int]]:
    """Group item indices into batches, longest first.

    Args:
        lengths: Token count of each item.
        batch_size: Most items in one batch (>= 1).
        max_batch_tokens: Most padded tokens (items x longest item) in one batch, or ``None``
            for no budget. An item longer than the budget forms a batch alone.
        max_padding: Also cut a batch when more than this fraction of its padded tokens
            would be padding, once it holds at least ``min_batch_tokens`` padded tokens
            (compute is linear in padded tokens on CPU; tiny batches run matmuls slowly).
            ``None`` never cuts for padding.
        min_batch_tokens: See ``max_padding``.

    Returns:
        Lists of indices into ``lengths``; every index appears exactly once. Items within a
        batch are in descending length order.

    Raises:
        ValueError: If ``batch_size`` or ``max_batch_tokens`` is not a positive integer.
    """
    check_positive_int(batch_size, "batch_size")
    if max_batch_tokens is not None:
        check_positive_int(max_batch_tokens, "max_batch_tokens")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    real = 0
    for i in order:
        n = lengths[i]
        if current:
            width = max(longest, n)
            padded = width * (len(current) + 1)
            over_budget = max_batch_tokens is not None and padded > max_batch_tokens
            too_padded = (
                max_padding is not None
                and width * len(current) >= min_batch_tokens
                and (padded - real - n) > max_padding * padded
            )
            if len(current) >= batch_size or over_budget or too_padded:
                batches.append(current)
                current, longest, real = [], 0, 0
        current.append(i)
        longest = max(longest, n)
        real += n
    if current:
        batches.append(current)
    return batches


def left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad token id lists into tensors, with position ids that ignore the padding.

    Position ids count real tokens only (0 at each sequence's first real token), so a
    sequence gets the same rotary positions whether it is padded or not; together with the
    attention mask this makes every result independent of which batch it landed in.

    Args:
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with.
        device: Where to put the tensors.

    Returns:
        ``(input_ids, attention_mask, position_ids)``, each ``(batch, longest)`` int64.
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def right_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists (the lean forward's layout: pads after every real token).

    Args:
        sequences: Token ids of each item (each non-empty).
        pad_id: Id to pad with (never attended to by a real token under causal attention).
        device: Where to put the tensors.

    Returns:
        ``(input_ids, lengths)``: ``(batch, longest)`` and ``(batch,)``, int64.

    Example:
        >>> ids, lengths = right_pad([[7, 8, 9], [5]], pad_id=0, device=torch.device("cpu"))
        >>> ids.tolist(), lengths.tolist()
        ([[7, 8, 9], [5, 0, 0]], [3, 1])
    """
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    return ids.to(device), lengths.to(device)
