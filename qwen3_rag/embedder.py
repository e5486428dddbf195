"""Qwen3-Embedding inference: the published recipe, batched for speed.

The recipe (Qwen3-Embedding README and code):

* queries are formatted ``"Instruct: {instruction}\\nQuery:{text}"``; documents are raw text
  (unless the instruction preset is symmetric, e.g. semantic similarity or clustering);
* every sequence ends with ``<|endoftext|>``: appended here whatever the tokenizer does, never
  twice; truncation cuts the text to ``max_length - 1`` tokens and keeps that last token;
* sequences are left-padded; the final-norm hidden state at the last position is the
  embedding; optional Matryoshka truncation keeps the first ``dimensions`` values; the
  result is L2-normalised, so similarity is a dot product.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from qwen3_rag import _forward
from qwen3_rag._model import ModelBase, Runtime
from qwen3_rag.batching import encode_truncated, plan_batches
from qwen3_rag.fidelity import PROBE_DOCUMENTS, PROBE_QUERIES
from qwen3_rag.identity import ModelIdentity, check_query_model
from qwen3_rag.instructions import (
    DEFAULT_INSTRUCTION,
    EOS_TOKEN,
    Preset,
    format_query,
    resolve_instruction,
)
from qwen3_rag.loading import load_config, load_fast_tokenizer, token_id
from qwen3_rag.onnx_engine import OnnxDecoder
from qwen3_rag.options import (
    DEFAULT_EMBEDDING_MODEL,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    MIN_DIMENSIONS,
    DeviceLike,
    DTypeLike,
    EmbedderOptions,
    Engine,
    InstructionLike,
    Precision,
    check_texts,
)
from qwen3_rag.remote import RemoteEmbeddingBackend

__all__ = ["DEFAULT_EMBEDDING_MODEL", "Embedder", "embedding_inputs"]

logger = logging.getLogger(__name__)


def embedding_inputs(
    tokenizer: Any, texts: list[str], max_length: int, eos_id: int
) -> tuple[list[list[int]], int]:
    """The token ids Qwen3-Embedding reads for each (already formatted) text.

    Each text is cut to ``max_length - 1`` tokens and ends with ``<|endoftext|>``. This is the
    one tokenization path of the embedding model: :class:`Embedder` and the training code of
    :mod:`qwen3_rag.adapt` both call it.

    Args:
        tokenizer: The model's ``tokenizers.Tokenizer`` (truncation and padding off).
        texts: Texts as the model reads them (queries already formatted with
            :meth:`Embedder.query_inputs`).
        max_length: Most tokens per text, the end token included (>= 2).
        eos_id: The id of ``<|endoftext|>``.

    Returns:
        ``(token ids per text, how many texts were truncated)``.
    """
    sequences, truncated = encode_truncated(tokenizer, texts, max_length - 1)
    return [[*ids, eos_id] for ids in sequences], truncated


@dataclass
class _EmbeddingRuntime(Runtime):
    """One loaded embedding model, shared by every :class:`Embedder` that asks for it."""

    eos_id: int
    hidden_size: int


class Embedder(ModelBase[EmbedderOptions, _EmbeddingRuntime]):
    """Qwen3-Embedding on local hardware, exactly as the Qwen team specified it.

    Constructing an ``Embedder`` loads nothing; the model loads on first use and is shared by
    every ``Embedder`` (and adapter) in the process with the same model, revision, device,
    dtype, quantization and engine. Methods are safe to call from several threads. Every
    argument is also a field of :class:`~qwen3_rag.EmbedderOptions`
    (``Embedder.from_options(options)``).

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Embedding model.
        instruction: Query instruction: a preset name from :data:`qwen3_rag.PRESETS`, literal
            instruction text, or a :class:`~qwen3_rag.Preset`; ``None`` (the default) uses
            ``"web_search"``; ``""`` embeds queries as raw text. Symmetric presets apply it
            to documents too.
        dimensions: Matryoshka output size (``32 <= dimensions <= hidden size``); the first
            ``dimensions`` values are kept and then re-normalised. ``None`` keeps all.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default CUDA, else MPS, else CPU.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or a torch dtype; default float32
            on CPU/MPS and bfloat16 on CUDA.
        max_length: Most tokens per text, ``<|endoftext|>`` included (official: 8192). Longer
            texts are truncated, with one logged warning per call giving the count.
        batch_size: Most texts per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (bounds memory); texts are sorted
            by length so batches carry little padding.
        revision: Hub revision (branch, tag or commit).
        cache_dir: Hub cache folder.
        local_files_only: Never use the network.
        quantize: ``None`` (default: exact) or ``"int8"`` (CPU only, needs torchao): dynamic
            int8 linear layers, about 2.3x the float32 speed on CPU. Fidelity measured on a
            random-weight 0.6B (``python -m benchmarks``): cosine to the float32 vectors
            >= 0.998 (mean 0.9988), top-10 neighbour overlap 0.97-1.00. Not exact: leave it
            off where vectors must match other float32 indexes bit for bit.
        precision: ``"exact"`` (default: float32 PyTorch on CPU, or ``dtype``, ``quantize``
            and ``engine`` as given) or ``"fast"``: the fastest path for this CPU's
            instructions (:func:`qwen3_rag.cpu.choose_fast`: PyTorch bfloat16 with AVX-512
            BF16/AMX, else ONNX Runtime int8 with the ``onnx`` extra), logged with the reason.
            Every non-exact CPU path is probed beside float32 once per model identity and
            refused below the floor of :mod:`qwen3_rag.fidelity` (:meth:`fidelity`).
        engine: ``"torch"`` (default) or ``"onnx"``: ONNX Runtime on CPU, the decoder
            exported once and cached (float32, or int8 with ``quantize="int8"``; needs
            ``pip install "qwen3-rag[onnx]"``). The recipe around it is the same code.
        show_progress: Show a tqdm progress bar over the texts.
        base_url: URL of a model server (vLLM, TEI, Infinity) serving ``model`` over
            ``/v1/embeddings``, e.g. ``"http://localhost:8000"`` (``.../v1`` works too). Texts
            are formatted here exactly as locally (see :mod:`qwen3_rag.remote`), then sent in
            requests of ``batch_size``; ``device``, ``dtype``, ``quantize`` and
            ``max_batch_tokens`` do not apply. ``None`` (default): local weights.
        api_key_env: Environment variable holding the server's API key; ``None`` reads
            ``QWEN3_RAG_EMBED_API_KEY``. The key is read at each request, never stored.
        timeout: Seconds to wait for the server's answer to one request.
        max_retries: Retries of a request answered 429 or 5xx, or that could not connect
            (exponential backoff; ``Retry-After`` honoured).
        query_model: Hub id or folder of a query-side adaptation of ``model``
            (``qwen3-rag adapt --queries-only``): queries are embedded by it, documents by
            ``model``, so vectors already indexed by ``model`` stay valid. Both share every
            other setting and load once per process each. A query model that records another
            base than ``model`` (or none) raises :class:`~qwen3_rag.errors.QueryModelError`
            on first use.

    Raises:
        ValueError: If a value is out of range (e.g. ``dimensions < 32``), an instruction is a
            typo of a preset name, or the device is not available.
        TypeError: If a value has the wrong type.

    Example:
        >>> from qwen3_rag import Embedder
        >>> emb = Embedder("Qwen/Qwen3-Embedding-0.6B", dimensions=256)  # loads nothing yet
        >>> emb.options.batch_size, emb.preset.name
        (32, 'web_search')
        >>> q = emb.embed_queries(["What is the capital of China?"])  # doctest: +SKIP
        >>> d = emb.embed_documents(["The capital of China is Beijing."])  # doctest: +SKIP
        >>> float(q @ d.T)  # doctest: +SKIP
        0.7646
        >>> served = Embedder("Qwen/Qwen3-Embedding-0.6B", base_url="http://localhost:8000")
        >>> served
        Embedder(model='Qwen/Qwen3-Embedding-0.6B', base_url='http://localhost:8000')
    """

    kind = "embedder"
    checkpoint_kind = "embedding"

    def __init__(
        self,
        model: str = DEFAULT_EMBEDDING_MODEL,
        *,
        instruction: InstructionLike = None,
        dimensions: int | None = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 32,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        quantize: str | None = None,
        precision: Precision = "exact",
        engine: Engine = "torch",
        show_progress: bool = False,
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        query_model: str | None = None,
    ) -> None:
        super().__init__(
            EmbedderOptions(
                model=model,
                instruction=instruction,
                dimensions=dimensions,
                device=device,
                dtype=dtype,
                max_length=max_length,
                batch_size=batch_size,
                max_batch_tokens=max_batch_tokens,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                quantize=quantize,
                precision=precision,
                engine=engine,
                show_progress=show_progress,
                base_url=base_url,
                api_key_env=api_key_env,
                timeout=timeout,
                max_retries=max_retries,
                query_model=query_model,
            )
        )
        self.preset: Preset | None = self.options.preset
        self._query_side: Embedder | None = None
        self._query_lock = threading.Lock()
        self._hidden_size: int | None = None
        self.remote: RemoteEmbeddingBackend | None = (
            None if base_url is None else RemoteEmbeddingBackend.from_options(self.options)
        )

    @property
    def query_side(self) -> Embedder:
        """The embedder that embeds queries: this one, or the one over ``query_model``.

        Raises:
            QueryModelError: If ``query_model`` was not adapted from ``model``.
        """
        if self.options.query_model is None:
            return self
        with self._query_lock:
            if self._query_side is None:
                options = self.options.replace(model=self.options.query_model, query_model=None)
                side = Embedder.from_options(options)
                if self.remote is None:
                    check_query_model(self.identity(), self.model, side.source)
                self._query_side = side
            return self._query_side

    def query_identity(self) -> ModelIdentity:
        """The :meth:`identity` of the weights that embed queries (``query_model`` or ``model``)."""
        return self.query_side.identity()

    def load(self) -> Any:
        """Load the model(s) now instead of on first use; returns ``self``."""
        super().load()
        if self.query_side is not self:
            self.query_side.load()
        return self

    @property
    def dimensions(self) -> int | None:
        """The Matryoshka size asked for, or ``None`` for the model's full size."""
        return self.options.dimensions

    @property
    def instruction(self) -> str | None:
        """The query instruction text, or ``None`` when texts are embedded raw."""
        return self.preset.instruction if self.preset else None

    @property
    def hidden_size(self) -> int:
        """The model's full embedding size (reads only the model config; a server is asked)."""
        if self._hidden_size is None:
            if self.remote is not None:
                self._hidden_size = self.remote.size()
            else:
                self._hidden_size = int(load_config(self.source).hidden_size)
        return self._hidden_size

    @property
    def dimension(self) -> int:
        """Size of the returned vectors: ``dimensions`` if set, else the model's hidden size.

        Raises:
            ValueError: If ``dimensions`` exceeds the model's hidden size.
        """
        hidden = self.hidden_size
        if self.dimensions is None:
            return hidden
        if self.dimensions > hidden:
            raise ValueError(
                f"dimensions={self.dimensions} is out of range for {self.source.model!r}: "
                f"use {MIN_DIMENSIONS} <= dimensions <= {hidden}"
            )
        return self.dimensions

    def embed_queries(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> np.ndarray:
        """Embed search queries, with the instruction.

        Args:
            texts: The queries.
            instruction: Override this embedder's instruction for this call (preset name,
                text, ``Preset``, or ``""`` for raw text); ``None`` uses the embedder's.

        Returns:
            ``float32`` array of shape ``(len(texts), dimension)``, rows L2-normalised.

        Raises:
            TypeError: If ``texts`` is a bare string or holds a non-string.
            qwen3_rag.remote.RemoteError: With ``base_url``, if the server cannot be reached
                or refuses the request.
        """
        side = self.query_side
        if side is not self:
            return side.embed_queries(texts, instruction=instruction)
        return self._embed(check_texts(texts), self._query_instruction(instruction))

    def embed_documents(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> np.ndarray:
        """Embed documents: raw text, or with the instruction for symmetric presets.

        Args:
            texts: The documents.
            instruction: Override this embedder's instruction for this call; ``None`` uses the
                embedder's. Only symmetric presets are applied to documents.

        Returns:
            ``float32`` array of shape ``(len(texts), dimension)``, rows L2-normalised.

        Raises:
            TypeError: If ``texts`` is a bare string or holds a non-string.
            qwen3_rag.remote.RemoteError: With ``base_url``, if the server cannot be reached
                or refuses the request.
        """
        return self._embed(check_texts(texts), self._document_instruction(instruction))

    def query_inputs(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> list[str]:
        """The exact strings the model reads for these queries (the instruction applied).

        :meth:`embed_queries` embeds exactly these; training code formats with it so that it
        sees what inference sees.

        Example:
            >>> Embedder("m", instruction="Find the city").query_inputs(["capital of China?"])
            ['Instruct: Find the city\\nQuery:capital of China?']
        """
        return _formatted(check_texts(texts), self._query_instruction(instruction))

    def document_inputs(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> list[str]:
        """The exact strings the model reads for these documents (raw unless symmetric).

        Example:
            >>> Embedder("m").document_inputs(["Beijing is the capital."])
            ['Beijing is the capital.']
        """
        return _formatted(check_texts(texts), self._document_instruction(instruction))

    def token_ids(self, inputs: Sequence[str]) -> list[list[int]]:
        """The token ids the model reads for these input strings, one list per input.

        ``inputs`` are strings as :meth:`query_inputs` / :meth:`document_inputs` give them:
        each is cut to ``max_length - 1`` tokens and ends with ``<|endoftext|>``, exactly as
        :meth:`embed_queries` and :meth:`embed_documents` tokenize. Loads the tokenizer (and
        the model) on first use.

        Example:
            >>> emb = Embedder("Qwen/Qwen3-Embedding-0.6B")
            >>> emb.token_ids(emb.document_inputs(["Beijing."]))  # doctest: +SKIP
            [[3430, 23649, 13, 151643]]
        """
        return self._tokenize(self._runtime(), check_texts(inputs, "inputs"))

    async def aembed_queries(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> np.ndarray:
        """Async :meth:`embed_queries`, never blocking the event loop.

        With ``base_url`` the requests run on the caller's event loop (``httpx``, no
        thread); local inference runs in a worker thread.
        """
        side = self.query_side
        if side is not self:
            return await side.aembed_queries(texts, instruction=instruction)
        checked, applied = check_texts(texts), self._query_instruction(instruction)
        if self.remote is not None:
            return await self.remote.aembed(_formatted(checked, applied), self.dimensions)
        return await asyncio.to_thread(self.embed_queries, checked, instruction=instruction)

    async def aembed_documents(
        self, texts: Sequence[str], *, instruction: InstructionLike = None
    ) -> np.ndarray:
        """Async :meth:`embed_documents`, never blocking the event loop.

        With ``base_url`` the requests run on the caller's event loop (``httpx``, no
        thread); local inference runs in a worker thread.
        """
        checked, applied = check_texts(texts), self._document_instruction(instruction)
        if self.remote is not None:
            return await self.remote.aembed(_formatted(checked, applied), self.dimensions)
        return await asyncio.to_thread(self.embed_documents, checked, instruction=instruction)

    # -- internals ---------------------------------------------------------------------------

    def _preset(self, instruction: InstructionLike) -> Preset | None:
        return self.preset if instruction is None else resolve_instruction(instruction)

    def _query_instruction(self, instruction: InstructionLike) -> str | None:
        preset = self._preset(instruction)
        return preset.instruction if preset is not None else None

    def _document_instruction(self, instruction: InstructionLike) -> str | None:
        preset = self._preset(instruction)
        return preset.instruction if preset is not None and preset.symmetric else None

    def _runtime(self) -> _EmbeddingRuntime:
        rt = super()._runtime()
        self._hidden_size = rt.hidden_size
        return rt

    def _load_runtime(self) -> _EmbeddingRuntime:
        from transformers import AutoModel

        tokenizer, model = self._load(AutoModel)
        eos_id = token_id(tokenizer, EOS_TOKEN, self.source)
        return _EmbeddingRuntime(
            tokenizer=tokenizer,
            model=model,
            device=self.device,
            lock=threading.Lock(),
            fast=self._prepare(model, eos_id),
            eos_id=eos_id,
            hidden_size=int(model.config.hidden_size),
        )

    def _tokenize(self, rt: _EmbeddingRuntime, texts: list[str]) -> list[list[int]]:
        """Token ids per text: text cut to ``max_length - 1`` tokens, then ``<|endoftext|>``."""
        sequences, truncated = embedding_inputs(rt.tokenizer, texts, self.max_length, rt.eos_id)
        if truncated:
            logger.warning(
                "%d of %d texts exceeded max_length=%d tokens and were truncated",
                truncated,
                len(texts),
                self.max_length,
            )
        return sequences

    def _embed(self, texts: list[str], instruction: str | None) -> np.ndarray:
        texts = _formatted(texts, instruction)
        if self.remote is not None:
            return self.remote.embed(texts, self.dimensions)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._embed_on(self._runtime(), texts, self.dimension)

    def _embed_on(self, rt: _EmbeddingRuntime, texts: list[str], dim: int) -> np.ndarray:
        """The recipe on formatted ``texts``: tokens, last-token pooling, cut to ``dim``, L2."""
        out = np.empty((len(texts), dim), dtype=np.float32)
        with rt.lock:
            sequences = self._tokenize(rt, texts)
            batches = plan_batches(
                [len(s) for s in sequences],
                self.batch_size,
                self.max_batch_tokens,
                max_padding=_forward.padding_limit(rt.fast, rt.device),
            )
            with (
                tqdm(
                    total=len(texts),
                    desc="Embedding",
                    unit="text",
                    disable=not self.show_progress,
                ) as bar,
                torch.inference_mode(),
            ):
                for batch in batches:
                    pooled = rt.final_hidden([sequences[i] for i in batch], rt.eos_id)
                    pooled = torch.nn.functional.normalize(pooled[:, :dim].float(), p=2, dim=-1)
                    out[batch] = pooled.cpu().numpy()
                    bar.update(len(batch))
        return out

    def _probe(self, runtime: _EmbeddingRuntime) -> np.ndarray:
        """The probe: its queries with the default instruction, then its documents."""
        texts = [*_formatted(list(PROBE_QUERIES), DEFAULT_INSTRUCTION), *PROBE_DOCUMENTS]
        return self._embed_on(runtime, texts, runtime.hidden_size)

    def _engine_runtime(self, decoder: OnnxDecoder, folder: Path) -> _EmbeddingRuntime:
        tokenizer = load_fast_tokenizer(self.source)
        return _EmbeddingRuntime(
            tokenizer=tokenizer,
            model=decoder,
            device=self.device,
            lock=threading.Lock(),
            fast=False,
            eos_id=token_id(tokenizer, EOS_TOKEN, self.source),
            hidden_size=decoder.hidden_size,
        )


def _formatted(texts: list[str], instruction: str | None) -> list[str]:
    """The texts as the model sees them: the query template applied when there is an instruction."""
    if instruction is None:
        return texts
    return [format_query(instruction, t) for t in texts]
