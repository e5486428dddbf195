"""Validation of user inputs shared by the embedder and the reranker."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["check_positive_int", "check_texts"]


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """Return ``texts`` as a list of strings, or raise a clear error.

    Args:
        texts: What the caller passed; must be a sequence (list, tuple) of ``str``.
        name: The argument's name, for the error message.

    Raises:
        TypeError: If ``texts`` is a bare string (which would be read as characters), not a
            sequence, or holds a non-string item (the message names its index).
    """
    if isinstance(texts, str):
        raise TypeError(
            f"{name} must be a list of strings, got a single str. Wrap it in a list: [text]."
        )
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(
                f"{name} must be a list of strings, not {type(texts).__name__}"
            ) from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str, not {type(t).__name__}")
    return list(texts)


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` >= ``minimum``, else raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
