"""A chromadb embedding function over :class:`qwen3_rag.Embedder`.

Importing this module registers :class:`Qwen3EmbeddingFunction` with chromadb under the name
``"qwen3_rag"``. A collection created with it stores the function's configuration (model,
instruction, dimensions, and the model server's ``base_url`` if one embeds), so after
``import qwen3_rag.chroma`` the collection reopens in any process with no
``embedding_function`` argument, and ``query_texts`` get the query instruction while
documents are embedded raw, as the Qwen3 recipe asks. API keys are never stored: only the name
of the environment variable that holds one (``api_key_env``), when it is not the default.

Example:
    >>> import chromadb
    >>> from qwen3_rag.chroma import Qwen3EmbeddingFunction
    >>> ef = Qwen3EmbeddingFunction("Qwen/Qwen3-Embedding-0.6B")  # loads nothing yet
    >>> ef.get_config()["instruction"]
    'web_search'
    >>> client = chromadb.PersistentClient("./qwen3_db")  # doctest: +SKIP
    >>> docs = client.get_or_create_collection("docs", embedding_function=ef)  # doctest: +SKIP
    >>> docs.add(ids=["1"], documents=["The capital of China is Beijing."])  # doctest: +SKIP
    >>> docs.query(query_texts=["capital of China?"], n_results=1)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from qwen3_rag.embedder import Embedder
from qwen3_rag.errors import IdentityMismatchError
from qwen3_rag.identity import ModelIdentity
from qwen3_rag.instructions import PRESETS, Preset
from qwen3_rag.loading import ModelSource
from qwen3_rag.options import DEFAULT_EMBEDDING_MODEL, DeviceLike, DTypeLike, InstructionLike

__all__ = ["EMBEDDING_FUNCTION_NAME", "Qwen3EmbeddingFunction", "check_identity"]

logger = logging.getLogger(__name__)

#: The name the function is registered and persisted under in chromadb.
EMBEDDING_FUNCTION_NAME = "qwen3_rag"

_CONFIG_KEYS = {
    "model",
    "instruction",
    "instruction_symmetric",
    "dimensions",
    "revision",
    "base_url",
    "api_key_env",
    "identity",
    "query_model",
}


def check_identity(
    name: str, stored: ModelIdentity, now: ModelIdentity, model: str, *, adding: bool
) -> None:
    """Refuse vectors of ``now`` beside vectors of ``stored`` when they are not comparable.

    Different weights are refused for questions and documents alike. A different precision
    or engine is refused for documents (the collection would hold vectors of two paths) and
    logged for questions (a question embedded in another precision still finds the right
    neighbours, only its scores move by rounding; it is never stored).

    Args:
        name: The collection.
        stored: The identity its vectors were made with.
        now: The identity of the model at hand.
        model: The model's name or folder, for the message.
        adding: Whether documents are being added (else a question is embedded).

    Raises:
        IdentityMismatchError: If the vectors would not be comparable.
    """
    changes = stored.changes(now)
    if not changes:
        return
    if not adding and all(c.startswith(("precision", "engine")) for c in changes):
        logger.info("collection %r: questions embedded in %s", name, "; ".join(changes))
        return
    weights = any(c.startswith("weights") for c in changes)
    what = f"other weights than {model} holds now" if weights else "another compute path"
    use = (
        "use the weights it was indexed with"
        if weights
        else f"use the path it was indexed with ({stored.engine}, {stored.precision}: "
        f"qwen3-rag --precision, or the dtype/quantize/engine arguments)"
    )
    raise IdentityMismatchError(
        f"collection {name!r} was indexed by {what} ({'; '.join(changes)}): its vectors "
        f"would not match new ones. Rebuild it with the model at hand (qwen3-rag index "
        f"--rebuild, or index_paths(..., rebuild=True)), or {use}",
        collection=name,
        stored=stored,
        now=now,
    )


def _persisted_model(model: str) -> str:
    """A local folder as an absolute path (valid from any working directory), else the hub id."""
    source = ModelSource(model)
    return os.path.abspath(source.location) if source.is_local else model


def _instruction_config(preset: Preset | None) -> tuple[str, bool]:
    """The persisted form of an instruction: a preset name when it is one, else its text.

    No instruction (raw queries) is persisted as ``""``.
    """
    if preset is None:
        return "", False
    if PRESETS.get(preset.name) == preset:
        return preset.name, preset.symmetric
    return preset.instruction, preset.symmetric


@register_embedding_function
class Qwen3EmbeddingFunction(EmbeddingFunction[Documents]):
    """Qwen3-Embedding as a chromadb embedding function, registered as ``"qwen3_rag"``.

    Documents (``add``/``upsert``) go through :meth:`Embedder.embed_documents`; query texts go
    through :meth:`embed_query`, i.e. :meth:`Embedder.embed_queries` with the instruction.
    Vectors are L2-normalised, so the default space is cosine.

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Embedding model. A local folder
            is persisted as an absolute path.
        instruction: Query instruction: preset name, instruction text, a
            :class:`~qwen3_rag.instructions.Preset`; ``None`` for the default
            (``"web_search"``), ``""`` for raw queries (see :class:`Embedder`).
        dimensions: Matryoshka output size, or ``None`` for the model's full size.
        device: Device for the model (not persisted: chosen afresh on each machine).
        dtype: Compute dtype (not persisted).
        revision: Hub revision, persisted with the model.
        base_url: A model server serving ``model`` (see :mod:`qwen3_rag.remote`); persisted,
            so a collection indexed through a server reopens through it. The vectors are the
            same as local ones: passing another ``embedding_function`` (or
            ``base_url=None``) later is safe.
        api_key_env: Environment variable holding the server's API key; the name is
            persisted, never the key.
        query_model: A query-side adaptation of ``model`` that embeds the questions
            (see :class:`Embedder`); persisted. Documents are still embedded by ``model``.
        identity: The :class:`~qwen3_rag.identity.ModelIdentity` the collection's vectors
            were made with (persisted; the indexer records it). Before its first vector the
            function checks the model at hand against it and raises
            :class:`~qwen3_rag.errors.IdentityMismatchError` when the weights differ (see
            :func:`check_identity`).
        **embedder_kwargs: Other :class:`Embedder` arguments (``batch_size``, ``max_length``,
            ``cache_dir``, ``local_files_only``, ``timeout`` ...), not persisted.

    Example:
        >>> from qwen3_rag.chroma import Qwen3EmbeddingFunction
        >>> ef = Qwen3EmbeddingFunction("Qwen/Qwen3-Embedding-0.6B", dimensions=256)
        >>> Qwen3EmbeddingFunction.build_from_config(ef.get_config()).get_config()["dimensions"]
        256
        >>> ef.default_space()
        'cosine'
    """

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        instruction: InstructionLike = None,
        dimensions: int | None = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        revision: str | None = None,
        base_url: str | None = None,
        api_key_env: str | None = None,
        identity: ModelIdentity | Mapping[str, Any] | None = None,
        query_model: str | None = None,
        **embedder_kwargs: Any,
    ) -> None:
        self.identity = (
            ModelIdentity.from_dict(identity) if isinstance(identity, Mapping) else identity
        )
        self._checked: set[bool] = set()  # adding (True) / asking (False), once each
        self._check_lock = threading.Lock()
        self.embedder = Embedder(
            model,
            instruction=instruction,
            dimensions=dimensions,
            device=device,
            dtype=dtype,
            revision=revision,
            base_url=base_url,
            api_key_env=api_key_env,
            query_model=query_model,
            **embedder_kwargs,
        )

    def __repr__(self) -> str:
        return f"Qwen3EmbeddingFunction({self.embedder!r})"

    def __call__(self, input: Documents) -> Embeddings:
        """Embed documents (raw text, or with the instruction for symmetric presets).

        Args:
            input: The documents.

        Returns:
            One float32 vector per document.

        Raises:
            IdentityMismatchError: If the collection's vectors were made by other weights.
        """
        self._check(adding=True)
        return list(self.embedder.embed_documents(input))

    def embed_query(self, input: Documents) -> Embeddings:
        """Embed query texts with the query instruction (chromadb calls this for query_texts).

        Args:
            input: The queries.

        Returns:
            One float32 vector per query.

        Raises:
            IdentityMismatchError: If the collection's vectors were made by other weights.
        """
        self._check(adding=False)
        return list(self.embedder.embed_queries(input))

    def _check(self, *, adding: bool) -> None:
        """Compare the model at hand with the persisted identity, once per direction."""
        if self.identity is None or adding in self._checked:
            return
        with self._check_lock:
            if adding not in self._checked:
                now = self.embedder.identity()
                check_identity(
                    "(this collection)", self.identity, now, self.embedder.model, adding=adding
                )
                self._checked.add(adding)

    @staticmethod
    def name() -> str:
        """The name this function is registered and persisted under."""
        return EMBEDDING_FUNCTION_NAME

    def default_space(self) -> Space:
        """Cosine: the vectors are L2-normalised, so cosine ranks exactly like the dot product."""
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        """All three spaces rank normalised vectors identically; cosine is the default."""
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        """The persisted configuration: model, revision, instruction, dimensions, server.

        ``base_url`` and ``api_key_env`` appear only when set; an API key never does.

        Returns:
            A JSON-serialisable dict that :meth:`build_from_config` turns back into an equal
            function.
        """
        instruction, symmetric = _instruction_config(self.embedder.preset)
        served = self.embedder.base_url is not None
        config: dict[str, Any] = {
            # A served model's name means something to its server only: kept as written.
            "model": self.embedder.model if served else _persisted_model(self.embedder.model),
            "revision": self.embedder.source.revision,
            "instruction": instruction,
            "instruction_symmetric": symmetric,
            "dimensions": self.embedder.dimensions,
        }
        for key in ("base_url", "api_key_env"):  # only when set: local configs stay as in 0.1
            value = getattr(self.embedder.options, key)
            if value is not None:
                config[key] = value
        query_model = self.embedder.options.query_model
        if query_model is not None:  # only when set: other configs stay as they were
            config["query_model"] = query_model if served else _persisted_model(query_model)
        if self.identity is not None:
            config["identity"] = self.identity.to_dict()
        return config

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> Qwen3EmbeddingFunction:
        """Rebuild the function from :meth:`get_config`'s output (chromadb calls this).

        Args:
            config: The persisted configuration.

        Returns:
            A new function with the same model, revision, instruction, dimensions and
            server, on this machine's default device and dtype.

        Raises:
            ValueError: If the configuration is malformed.
        """
        Qwen3EmbeddingFunction.validate_config(config)
        # A null instruction was written by qwen3-rag 0.1 for "no instruction".
        text = config.get("instruction") or ""
        instruction: InstructionLike = text
        if isinstance(text, str) and text not in PRESETS and config.get("instruction_symmetric"):
            instruction = Preset("custom", text, symmetric=True)
        return Qwen3EmbeddingFunction(
            config["model"],
            instruction=instruction,
            dimensions=config.get("dimensions"),
            revision=config.get("revision"),
            base_url=config.get("base_url"),
            api_key_env=config.get("api_key_env"),
            identity=config.get("identity"),
            query_model=config.get("query_model"),
        )

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        """Check a persisted configuration's shape.

        Raises:
            ValueError: If ``model`` is missing or a value has the wrong type.
        """
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown qwen3_rag embedding config keys: {sorted(unknown)}")
        if not isinstance(config.get("model"), str) or not config["model"]:
            raise ValueError("qwen3_rag embedding config needs a 'model' string")
        dims = config.get("dimensions")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int)):
            raise ValueError(f"qwen3_rag embedding config: dimensions={dims!r} is not an int")
        for key in ("instruction", "revision", "base_url", "api_key_env", "query_model"):
            value = config.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"qwen3_rag embedding config: {key}={value!r} is not a string")
        identity = config.get("identity")
        if identity is not None:
            if not isinstance(identity, Mapping):
                raise ValueError(f"qwen3_rag embedding config: identity={identity!r} is not a dict")
            ModelIdentity.from_dict(identity)

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Refuse changes that would make stored vectors incomparable with new ones.

        Raises:
            ValueError: If the update changes the model, revision, dimensions or a recorded
                identity (recording one where none was is allowed).
        """
        old = old_config.get("identity")
        if old is not None and new_config.get("identity", old) != old:
            raise ValueError(
                "cannot change the identity of a qwen3_rag collection's weights: its stored "
                "vectors would no longer match; rebuild the collection instead"
            )
        for key in ("model", "revision", "dimensions"):
            if key in new_config and new_config[key] != old_config.get(key):
                raise ValueError(
                    f"cannot change {key} of a qwen3_rag embedding function from "
                    f"{old_config.get(key)!r} to {new_config[key]!r}: the stored vectors would "
                    f"no longer match; create a new collection instead"
                )
