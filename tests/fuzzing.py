"""Hypothesis strategies and checks shared by the fuzz tests (tests/*/test_fuzz.py).

Valid input is any Unicode string (surrogates, controls, NUL, RTL, emoji, combining marks,
template and special-token look-alikes) in any list shape; wrong input is every other type where
a string or a list of strings is expected. The fuzz tests assert that valid input always gives
finite unit vectors / scores in [0, 1], and wrong input always the documented ``TypeError`` /
``ValueError`` naming the argument.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

#: Settings of every fuzz test: no per-example deadline (the shared 2-core machine is noisy);
#: each test sets its own ``max_examples`` so the three fuzz files run in well under a minute.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@contextmanager
def quiet_warnings() -> Iterator[None]:
    """Mute the package's warnings: truncation and surrogates are fuzzed by the hundred.

    Tests that check those warnings use ``caplog.at_level``, which overrides this.
    """
    log = logging.getLogger("qwen3_rag")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


#: Fragments worth meeting on purpose, beside random code points.
SPECIAL = [
    # controls, NUL, separators
    "\x00",
    "\x07",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\x7f",
    "\x85",
    "\u2028",
    # surrogates: lone high, lone low, a high+low pair, a reversed pair
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\ud83d\ude00",
    "\ude00\ud83d",
    # right-to-left
    "\u202e",
    "\u200f",
    "\u2067",
    "مرحبا بالعالم",
    "שָׁלוֹם",
    # emoji, flags, ZWJ sequences, the last planes
    "😀",
    "👩\u200d👩\u200d👧\u200d👦",
    "🇨🇳",
    "\U0010ffff",
    "\U000e0001",
    # combining marks
    "e\u0301",
    "\u0300\u0301\u0302",
    "Z\u0334\u0321\u0354a\u0337l\u0338g\u0335o\u0336",
    # BOM, replacement character, noncharacters, zero width, no-break space
    "\ufeff",
    "\ufffd",
    "\ufffe",
    "\u200b",
    "\u00a0",
    # the templates' own pieces and special tokens
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "\n<Document>: ",
    "Instruct: ",
    "\nQuery:",
    "yes",
    "no",
    # other scripts
    "中文",
    "日本語",
    "한국어",
    "\U0001d518\U0001d52b\U0001d526",  # mathematical letters
    " ",
]

#: Any code point, surrogates included (``st.characters()`` leaves them out by default).
CODE_POINT = st.one_of(st.characters(), st.characters(categories=["Cs"]))

#: Any string: random code points, or a mix of :data:`SPECIAL` fragments and random ones.
TEXT = st.one_of(
    st.text(CODE_POINT, max_size=30),
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.text(CODE_POINT, max_size=4)), max_size=8).map(
        "".join
    ),
)

#: Any list of strings, the empty list and empty strings included.
TEXTS = st.lists(TEXT, max_size=6)

#: Things that are not a string.
NOT_TEXT = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.binary(max_size=4),
    st.lists(st.text(max_size=2), max_size=2),
    st.tuples(st.text(max_size=2)),
    st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
    st.builds(np.int64, st.integers(-5, 5)),
    st.just(np.array(["a", "b"])),
    st.just(object()),
)

#: Things that are not a list of strings: other types, a bare string, bytes, a mapping, or a
#: list holding at least one non-string.
NOT_TEXTS = st.one_of(
    st.none(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=5),
    TEXT,
    st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    st.just(object()),
    st.just(np.array([[1, 2]])),
    st.tuples(st.lists(TEXT, max_size=2), NOT_TEXT, st.lists(TEXT, max_size=2)).map(
        lambda parts: [*parts[0], parts[1], *parts[2]]
    ),
)

#: Any ``top_n``: ``None`` or an integer >= 1 is valid (:func:`valid_top_n`), anything else is
#: a ``ValueError``.
TOP_N = st.one_of(
    st.none(),
    st.integers(min_value=-3, max_value=12),
    st.builds(np.int64, st.integers(0, 5)),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=2),
)


def valid_top_n(top_n: Any) -> bool:
    """Whether ``top_n`` is ``None`` or an integer >= 1 (``bool`` is not an integer here)."""
    if top_n is None:
        return True
    return isinstance(top_n, (int, np.integer)) and not isinstance(top_n, bool) and top_n >= 1


def well_formed(text: str) -> str:
    """What the package documents for surrogates, written out literally for the tests.

    A high+low surrogate pair is the character it encodes; every other surrogate is U+FFFD.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if "\ud800" <= c <= "\udbff" and i + 1 < len(text) and "\udc00" <= text[i + 1] <= "\udfff":
            out.append(chr(0x10000 + ((ord(c) - 0xD800) << 10) + (ord(text[i + 1]) - 0xDC00)))
            i += 2
            continue
        out.append("\ufffd" if "\ud800" <= c <= "\udfff" else c)
        i += 1
    return "".join(out)


def assert_unit_vectors(vectors: Any, count: int, dimension: int) -> np.ndarray:
    """``vectors`` is ``count`` finite float vectors of length ``dimension``, each of norm 1."""
    assert len(vectors) == count
    if count == 0:  # [] carries no width
        return np.zeros((0, dimension))
    array = np.asarray(vectors, dtype=np.float64)
    assert array.shape == (count, dimension)
    assert np.isfinite(array).all()
    np.testing.assert_allclose(np.linalg.norm(array, axis=1), 1.0, atol=1e-5)
    return array


def assert_scores(scores: Sequence[float], count: int) -> None:
    """``scores`` is ``count`` finite Python floats in [0, 1]."""
    assert len(scores) == count
    for s in scores:
        assert isinstance(s, float)
        assert np.isfinite(s)
        assert 0.0 <= s <= 1.0


def assert_ranked(ranked: Sequence[tuple[int, float]], count: int, top_n: int | None) -> None:
    """``ranked`` is distinct indices into ``count`` items, best first, at most ``top_n``."""
    assert len(ranked) == (count if top_n is None else min(top_n, count))
    indices = [i for i, _ in ranked]
    assert len(set(indices)) == len(indices)
    assert all(0 <= i < count for i in indices)
    assert_scores([s for _, s in ranked], len(ranked))
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
