"""LangChain ``Embeddings`` over :class:`qwen3_rag.Embedder`."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import ConfigDict, Field, PrivateAttr, model_validator

from qwen3_rag import Embedder, EmbedderOptions
from qwen3_rag.fields import EmbedderFields, option_field
from qwen3_rag.instructions import format_query
from qwen3_rag.options import check_text

__all__ = ["Qwen3Embeddings"]

logger = logging.getLogger(__name__)

#: ``model_kwargs`` keys of ``langchain-qwen3`` 0.1.2 (passed there to ``from_pretrained``)
#: that map onto a field of :class:`Qwen3Embeddings`.
_MODEL_KWARGS_MAP = {
    "torch_dtype": "dtype",
    "dtype": "dtype",
    "revision": "revision",
    "cache_dir": "cache_dir",
    "local_files_only": "local_files_only",
}
#: ``model_kwargs`` keys accepted and ignored: Qwen3 is native in transformers, so
#: ``trust_remote_code`` changes nothing.
_MODEL_KWARGS_IGNORED = frozenset({"trust_remote_code"})


class Qwen3Embeddings(EmbedderFields, Embeddings):
    """Qwen3-Embedding models (0.6B / 4B / 8B) run locally, with the published recipe.

    ``embed_query`` formats the query with the task instruction
    (``"Instruct: {instruction}\\nQuery:{text}"``); ``embed_documents`` embeds raw text.
    Vectors are L2-normalised lists of Python floats, so cosine similarity is a dot product.
    Inference (tokenizing, length-sorted token-budget batches, pooling) is done by
    :class:`qwen3_rag.Embedder`; this class only converts types. Constructing it loads
    nothing: the model loads on first use and is shared with every other object in the
    process that uses the same model, revision, device and dtype.

    Setup:
        Install the ``langchain`` extra of ``qwen3-rag`` (it provides the ``langchain_qwen3``
        module and replaces the ``langchain-qwen3`` package):

        .. code-block:: bash

            pip install "qwen3-rag[langchain]"

    Key init args:
        model: str
            Hub id or local folder (alias ``model_name``). Default
            ``"Qwen/Qwen3-Embedding-0.6B"``.
        instruction: str | Preset | None
            Preset name (``"web_search"``, ``"question_answering"``, ...) or one-sentence
            instruction text; ``None`` (default) uses ``"web_search"``; ``""`` embeds
            queries as raw text.
        dimensions: int | None
            Matryoshka output size (32 .. hidden size); ``None`` keeps all.
        device: str | None
            ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default CUDA, else MPS, else CPU.
        dtype: str | None
            ``"float32"``, ``"bfloat16"``, ``"float16"``; default float32 on CPU, bf16 on CUDA.
        max_length: int
            Most tokens per text (official 8192); longer texts are truncated, with a
            logged warning.
        batch_size: int
            Most texts per forward pass.
        base_url: str | None
            A model server (vLLM, TEI, Infinity) serving ``model`` over ``/v1/embeddings``
            instead of local weights; the recipe is still applied here. API key from
            ``QWEN3_RAG_EMBED_API_KEY`` (or the variable ``api_key_env`` names).

    Instantiate:
        .. code-block:: python

            from langchain_qwen3 import Qwen3Embeddings

            embeddings = Qwen3Embeddings(model="Qwen/Qwen3-Embedding-0.6B")
            # or a local folder, offline:
            embeddings = Qwen3Embeddings(model="/models/Qwen3-Embedding-0.6B")

    Embed:
        .. code-block:: python

            vector = embeddings.embed_query("What is the capital of China?")
            vectors = embeddings.embed_documents(["The capital of China is Beijing."])
            len(vector) == len(vectors[0])  # 1024 for the 0.6B model

    Async:
        .. code-block:: python

            vector = await embeddings.aembed_query("What is the capital of China?")
            vectors = await embeddings.aembed_documents(["The capital of China is Beijing."])

    Migrating from ``langchain-qwen3`` 0.1.2:
        ``Qwen3Embeddings(model=..., max_length=..., device=..., model_kwargs=...)`` keeps
        working. ``model_kwargs`` keys ``torch_dtype``/``dtype``, ``revision``, ``cache_dir``
        and ``local_files_only`` map onto the fields of the same meaning;
        ``trust_remote_code`` is accepted and ignored; any other key raises ``ValueError``.
        ``use_modelscope=True`` raises ``ValueError`` (download the model with ModelScope and
        pass its folder). Unlike 0.1.2, ``embed_query`` applies the instruction itself: drop
        calls to ``get_detailed_instruct`` and pass ``instruction=task`` instead (or set
        ``instruction=""`` to keep formatting queries yourself).

    Example:
        >>> from langchain_qwen3 import Qwen3Embeddings
        >>> embeddings = Qwen3Embeddings(model="Qwen/Qwen3-Embedding-0.6B", device="cpu")
        >>> embeddings.embedder.preset.name
        'web_search'
        >>> embeddings.embed_query("What is the capital of China?")[:2]  # doctest: +SKIP
        [0.0123, -0.0456]
    """

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        protected_namespaces=(),
        arbitrary_types_allowed=True,
    )

    model: str = option_field(EmbedderOptions, "model", alias="model_name")
    batch_size: int = option_field(EmbedderOptions, "batch_size")
    model_kwargs: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Compatibility with langchain-qwen3 0.1.2: torch_dtype/dtype, revision, cache_dir "
            "and local_files_only are mapped onto the fields of that name, trust_remote_code "
            "is ignored, anything else raises ValueError."
        ),
    )
    use_modelscope: bool = Field(
        default=False,
        description=(
            "Compatibility with langchain-qwen3 0.1.2: only False is supported; download the "
            "model with ModelScope and pass its folder as model."
        ),
    )

    _embedder: Embedder = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _map_legacy_kwargs(cls, data: Any) -> Any:
        """Map the ``model_kwargs`` / ``use_modelscope`` of ``langchain-qwen3`` 0.1.2."""
        if not isinstance(data, dict):
            return data
        if data.get("use_modelscope"):
            raise ValueError(
                "use_modelscope=True is not supported: download the model with ModelScope "
                "(e.g. `modelscope download --model Qwen/Qwen3-Embedding-0.6B --local_dir DIR`) "
                "and pass model='DIR'."
            )
        extra = data.get("model_kwargs")
        if not extra:
            return data
        if not isinstance(extra, dict):
            raise TypeError(f"model_kwargs must be a dict, not {type(extra).__name__}")
        unknown = sorted(k for k in extra if k not in _MODEL_KWARGS_MAP)
        unknown = [k for k in unknown if k not in _MODEL_KWARGS_IGNORED]
        if unknown:
            raise ValueError(
                f"model_kwargs keys {unknown} are not supported. Supported: "
                f"{sorted(_MODEL_KWARGS_MAP)} (mapped onto the fields of that meaning) and "
                f"{sorted(_MODEL_KWARGS_IGNORED)} (ignored). Use the fields device=, dtype=, "
                f"max_length=, batch_size= directly; authenticate with the HF_TOKEN variable."
            )
        data = dict(data)
        for key, value in extra.items():
            field = _MODEL_KWARGS_MAP.get(key)
            if field is None:
                logger.debug("model_kwargs[%r] ignored: Qwen3 is native in transformers", key)
                continue
            if field in data and data[field] != value:
                raise ValueError(
                    f"model_kwargs[{key!r}]={value!r} conflicts with {field}={data[field]!r}; "
                    f"pass it once, as {field}="
                )
            data[field] = value
        return data

    @model_validator(mode="after")
    def _build_embedder(self) -> Qwen3Embeddings:
        options = self.embedder_options(model=self.model, batch_size=self.batch_size)
        self._embedder = Embedder.from_options(options)
        return self

    @property
    def embedder(self) -> Embedder:
        """The :class:`qwen3_rag.Embedder` doing the work (shared model, lazy loading)."""
        return self._embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents as raw text (with the instruction only for symmetric presets).

        Args:
            texts: The documents.

        Returns:
            One L2-normalised vector (list of floats) per text, in input order.

        Raises:
            TypeError: If ``texts`` is a bare string or holds a non-string.
        """
        vectors: list[list[float]] = self._embedder.embed_documents(texts).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, formatted with the instruction.

        Args:
            text: The query.

        Returns:
            The L2-normalised query vector.

        Raises:
            TypeError: If ``text`` is not a string.
        """
        vector: list[float] = self._embedder.embed_queries([check_text(text)])[0].tolist()
        return vector

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`, never blocking the event loop.

        With ``base_url`` the requests are sent from the event loop (``httpx``); local
        inference runs in a worker thread.
        """
        vectors: list[list[float]] = (await self._embedder.aembed_documents(texts)).tolist()
        return vectors

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`, never blocking the event loop."""
        vector: list[float] = (await self._embedder.aembed_queries([check_text(text)]))[0].tolist()
        return vector

    def get_detailed_instruct(self, task_description: str, query: str) -> str:
        """Format a query by hand, as ``langchain-qwen3`` 0.1.2 asked users to.

        Only valid with ``instruction=""`` (raw queries): otherwise :meth:`embed_query`
        already applies the instruction and formatting twice would silently hurt retrieval.

        Args:
            task_description: The one-sentence task instruction.
            query: The query.

        Returns:
            ``"Instruct: {task_description}\\nQuery:{query}"``.

        Raises:
            ValueError: If this object has an instruction of its own.

        Example:
            >>> emb = Qwen3Embeddings(model="Qwen/Qwen3-Embedding-0.6B", instruction="")
            >>> emb.get_detailed_instruct("Retrieve parallel sentences", "Bonjour")
            'Instruct: Retrieve parallel sentences\\nQuery:Bonjour'
        """
        if self._embedder.instruction is not None:
            raise ValueError(
                "embed_query already applies the instruction "
                f"{self._embedder.instruction!r}; formatting the query again would apply it "
                "twice. Pass instruction=task_description to Qwen3Embeddings and call "
                'embed_query(query), or construct it with instruction="" (raw queries).'
            )
        return format_query(task_description, query)
