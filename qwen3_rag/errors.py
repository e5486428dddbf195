"""The package's own errors, under one root.

Every error the package raises on purpose derives from :class:`Qwen3RagError`, and also from
the built-in class it has always been (``OSError``, ``ValueError``, ``RuntimeError``), so code
that catches those keeps working.

Example:
    >>> from qwen3_rag import Embedder, Qwen3RagError
    >>> try:
    ...     Embedder("/no/such/folder").embed_queries(["hi"])
    ... except Qwen3RagError as exc:
    ...     print(type(exc).__name__)
    ModelLoadError
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FidelityError",
    "IdentityMismatchError",
    "ModelKindError",
    "ModelLoadError",
    "QueryModelError",
    "Qwen3RagError",
    "RemoteError",
    "StoreError",
]


class Qwen3RagError(Exception):
    """The root of the errors qwen3-rag raises on purpose; the message says what to change."""


class ModelLoadError(Qwen3RagError, OSError):
    """A model or tokenizer could not be found or loaded; the message says what to try."""


class ModelKindError(ModelLoadError, ValueError):
    """A checkpoint of the wrong kind: an embedding model given to the reranker, or the reverse.

    Attributes:
        model: The model that was given.
        expected: ``"embedding"`` or ``"reranker"``: the kind the class needs.
        found: What the checkpoint is (``"reranker"``, ``"embedding"``, ...).
    """

    def __init__(
        self, message: str, *, model: str = "", expected: str = "", found: str = ""
    ) -> None:
        super().__init__(message)
        self.model = model
        self.expected = expected
        self.found = found

    def __str__(self) -> str:
        return str(self.args[0])


class QueryModelError(Qwen3RagError, ValueError):
    """A query model that was not adapted from the model that embeds the documents.

    Attributes:
        query_model: The query model.
        model: The document model.
    """

    def __init__(self, message: str, *, query_model: str = "", model: str = "") -> None:
        super().__init__(message)
        self.query_model = query_model
        self.model = model


class RemoteError(Qwen3RagError, OSError):
    """A model server could not be reached, refused or failed a request, or answered wrongly.

    The message names the server's URL and what to change (the URL, the API key variable,
    the timeout ...).

    Attributes:
        url: The URL the request went to.
        status: The HTTP status of the answer, or ``None`` when there was none.
        server_message: What the server said, if anything.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        server_message: str = "",
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.server_message = server_message

    def __str__(self) -> str:
        return str(self.args[0])


class StoreError(Qwen3RagError, ValueError):
    """A store or collection cannot be used as asked; the message says what to change."""


class IdentityMismatchError(StoreError):
    """Stored vectors were made by other weights (or another precision) than the model at hand.

    Attributes:
        collection: The collection (or cache) whose vectors were made by ``stored``.
        stored: The identity the vectors were made with (a ``ModelIdentity``).
        now: The identity of the weights now found for the same model.
    """

    def __init__(
        self, message: str, *, collection: str = "", stored: Any = None, now: Any = None
    ) -> None:
        super().__init__(message)
        self.collection = collection
        self.stored = stored
        self.now = now


class FidelityError(Qwen3RagError, ValueError):
    """A non-exact path (reduced precision or another engine) strays too far from float32.

    Raised when the fixed probe, computed beside the float32 reference, falls below the
    documented floor (see :mod:`qwen3_rag.fidelity`); the message says what was measured.

    Attributes:
        fidelity: The measurement (a ``qwen3_rag.fidelity.Fidelity``).
    """

    def __init__(self, message: str, *, fidelity: Any = None) -> None:
        super().__init__(message)
        self.fidelity = fidelity
