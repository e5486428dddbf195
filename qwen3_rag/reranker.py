"""Qwen3-Reranker inference: the published recipe, scoring only what it needs.

The recipe (Qwen3-Reranker README and code): each (query, document) pair becomes

``RERANK_PREFIX + "<Instruct>: {instruction}\\n<Query>: {query}\\n<Document>: {document}" +
RERANK_SUFFIX``

with prefix and suffix tokenized separately and never truncated, and the body cut from the
right to ``max_length - len(prefix) - len(suffix)`` tokens. The score is
``softmax([logit("no"), logit("yes")])[1]`` at the last position, i.e.
``sigmoid(logit_yes - logit_no)``: only those two rows of the LM head, and only the last
position, are ever computed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from qwen3_rag import _forward
from qwen3_rag._model import ModelBase, Runtime
from qwen3_rag.batching import encode_cut, plan_batches, repaired, rerank_budget, text_windows
from qwen3_rag.errors import ModelKindError
from qwen3_rag.fidelity import PROBE_PAIRS
from qwen3_rag.identity import SEQ_CLS_FORMAT, check_kind, inspect_checkpoint, stored_tensor
from qwen3_rag.instructions import (
    DEFAULT_INSTRUCTION,
    EOS_TOKEN,
    RERANK_PREFIX,
    RERANK_SUFFIX,
    format_rerank_body,
)
from qwen3_rag.loading import ModelSource, load_config, load_fast_tokenizer, token_id
from qwen3_rag.onnx_engine import OnnxDecoder
from qwen3_rag.options import (
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RERANKER_MODEL,
    DEFAULT_TIMEOUT,
    DEFAULT_WINDOW_OVERLAP,
    DeviceLike,
    DTypeLike,
    Engine,
    InstructionLike,
    LongDocuments,
    Precision,
    RerankerOptions,
    check_pairs,
    check_positive_int,
    check_rerank_instruction,
    check_text,
    check_texts,
)
from qwen3_rag.remote import RemoteRerankBackend

__all__ = [
    "DEFAULT_RERANKER_MODEL",
    "NO_TOKEN",
    "YES_TOKEN",
    "Ranked",
    "Reranker",
    "rerank_inputs",
]

logger = logging.getLogger(__name__)

#: The answer tokens whose two LM-head rows give the score.
YES_TOKEN = "yes"
NO_TOKEN = "no"


def rerank_inputs(
    tokenizer: Any,
    bodies: list[str],
    max_length: int,
    prefix_ids: list[int],
    suffix_ids: list[int],
) -> tuple[list[list[int]], int]:
    """The token ids Qwen3-Reranker reads for each pair: prefix + body (cut to fit) + suffix.

    This is the one tokenization path of the reranker: :class:`Reranker` and the training code
    of :mod:`qwen3_rag.adapt` both call it.

    Args:
        tokenizer: The model's ``tokenizers.Tokenizer`` (truncation and padding off).
        bodies: Pair bodies from :func:`~qwen3_rag.instructions.format_rerank_body`.
        max_length: Most tokens per pair, template included.
        prefix_ids: Token ids of :data:`~qwen3_rag.instructions.RERANK_PREFIX`.
        suffix_ids: Token ids of :data:`~qwen3_rag.instructions.RERANK_SUFFIX`.

    Returns:
        ``(token ids per pair, how many bodies were truncated)``.

    Raises:
        ValueError: If ``max_length`` leaves no room for the body.
    """
    sequences, cut = _rerank_ids(tokenizer, bodies, max_length, prefix_ids, suffix_ids)
    return sequences, sum(cut)


def _rerank_ids(
    tokenizer: Any,
    bodies: list[str],
    max_length: int,
    prefix_ids: list[int],
    suffix_ids: list[int],
) -> tuple[list[list[int]], list[bool]]:
    """:func:`rerank_inputs`, saying which bodies were cut."""
    budget = rerank_budget(max_length, len(prefix_ids) + len(suffix_ids))
    sequences, cut = encode_cut(tokenizer, bodies, budget)
    return [[*prefix_ids, *ids, *suffix_ids] for ids in sequences], cut


class Ranked(tuple[int, float]):
    """One result of :meth:`Reranker.rank`: ``(index, score)``, and the window that won.

    A plain ``(index, score)`` pair (it unpacks, compares and indexes as one), with
    ``window``: with ``long_documents="max"``, the ``(start, end)`` character span of the
    document that scored best (``document[start:end]``; ``(0, len(document))`` for a
    document read whole); ``None`` with ``long_documents="truncate"``.

    Example:
        >>> r = Ranked(2, 0.75, (120, 980))
        >>> index, score = r
        >>> (index, score) == r, r.window
        (True, (120, 980))
        >>> r
        Ranked(index=2, score=0.75, window=(120, 980))
    """

    window: tuple[int, int] | None

    def __new__(cls, index: int, score: float, window: tuple[int, int] | None = None) -> Ranked:
        """A result: ``index`` into the documents, its ``score``, its winning ``window``."""
        self = super().__new__(cls, (index, score))
        self.window = window
        return self

    def __getnewargs__(self) -> tuple[int, float, tuple[int, int] | None]:
        return (self[0], self[1], self.window)

    def __repr__(self) -> str:
        if self.window is None:
            return tuple.__repr__(self)
        return f"Ranked(index={self[0]!r}, score={self[1]!r}, window={self.window!r})"


#: Scores in input order, and the winning window of each (``None`` when not windowed).
_Scores = tuple[list[float], list["tuple[int, int] | None"]]


@dataclass
class _Windows:
    """What :meth:`Reranker._windows` plans: the candidates scored, and whose each is."""

    count: int  # input pairs
    pairs: list[tuple[str, str]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    whole: list[bool] = field(default_factory=list)

    def add(self, owner: int, pair: tuple[str, str], span: tuple[int, int], *, whole: bool) -> None:
        self.pairs.append(pair)
        self.owners.append(owner)
        self.spans.append(span)
        self.whole.append(whole)

    def best(self, scores: list[float]) -> _Scores:
        """Each input pair's best candidate score and span (the first of equal ones)."""
        best = [-1.0] * self.count
        spans: list[tuple[int, int] | None] = [None] * self.count
        for owner, score, span in zip(self.owners, scores, self.spans, strict=True):
            if score > best[owner]:
                best[owner], spans[owner] = score, span
        return best, spans


@dataclass
class _RerankRuntime(Runtime):
    """One loaded reranker, shared by every :class:`Reranker` that asks for it.

    ``model`` is the decoder stack (``Qwen3Model``) without the LM head; ``fast`` also enables
    prefix sharing.
    """

    #: (2, hidden), float32: the LM-head rows of "no" and "yes"; for a sequence-classification
    #: conversion, a zero row and its one score row (``yes - no``).
    no_yes: torch.Tensor
    prefix_ids: list[int]
    suffix_ids: list[int]
    pad_id: int


class Reranker(ModelBase[RerankerOptions, _RerankRuntime]):
    """Qwen3-Reranker on local hardware, exactly as the Qwen team specified it.

    Constructing a ``Reranker`` loads nothing; the model loads on first use and is shared by
    every ``Reranker`` (and adapter) in the process with the same model, revision, device,
    dtype, quantization and engine. Methods are safe to call from several threads. Every
    argument is also a field of :class:`~qwen3_rag.RerankerOptions`
    (``Reranker.from_options(options)``).

    Args:
        model: Hugging Face hub id or local folder of a Qwen3-Reranker model.
        instruction: Task instruction: a preset name, literal text or a
            :class:`~qwen3_rag.Preset`; ``None`` (the default) uses ``"web_search"``. The
            reranker prompt always carries an instruction, so ``""`` is refused.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``; default CUDA, else MPS, else CPU.
        dtype: ``"float32"``, ``"bfloat16"``, ``"float16"`` or a torch dtype; default float32
            on CPU/MPS and bfloat16 on CUDA.
        max_length: Most tokens per pair, template included (official: 8192). Longer pairs are
            cut inside the body (query and document), with one logged warning per call.
        batch_size: Most pairs per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (bounds memory).
        revision: Hub revision (branch, tag or commit).
        cache_dir: Hub cache folder.
        local_files_only: Never use the network.
        quantize: ``None`` (default: exact) or ``"int8"`` (CPU only, needs torchao): dynamic
            int8 linear layers, about 2.2x the float32 speed on CPU. Fidelity measured on a
            random-weight 0.6B (``python -m benchmarks``): scores within 0.01 of float32;
            candidates whose scores differ by less than that may swap places.
        precision: ``"exact"`` (default: float32 PyTorch on CPU, or ``dtype``, ``quantize``
            and ``engine`` as given) or ``"fast"``: the fastest path for this CPU's
            instructions (:func:`qwen3_rag.cpu.choose_fast`: PyTorch bfloat16 with AVX-512
            BF16/AMX, else ONNX Runtime int8 with the ``onnx`` extra), logged with the reason.
            Every non-exact CPU path is probed beside float32 once per model identity and
            refused below the floor of :mod:`qwen3_rag.fidelity` (:meth:`fidelity`).
        engine: ``"torch"`` (default) or ``"onnx"``: ONNX Runtime on CPU, the decoder
            exported once and cached (float32, or int8 with ``quantize="int8"``; needs
            ``pip install "qwen3-rag[onnx]"``). The recipe around it is the same code.
        show_progress: Show a tqdm progress bar over the pairs.
        base_url: URL of a model server serving ``model`` over ``/rerank`` (vLLM with the
            Qwen3-Reranker overrides, see the README), e.g. ``"http://localhost:8001"``. The
            prefix, instruction and suffix are applied here, as vLLM's Qwen3-Reranker example
            does, so the server's scores are P(yes); ``device``, ``dtype``, ``quantize`` and
            ``max_batch_tokens`` do not apply. ``None`` (default): local weights.
        api_key_env: Environment variable holding the server's API key; ``None`` reads
            ``QWEN3_RAG_RERANK_API_KEY``. The key is read at each request, never stored.
        timeout: Seconds to wait for the server's answer to one request.
        max_retries: Retries of a request answered 429 or 5xx, or that could not connect
            (exponential backoff; ``Retry-After`` honoured).
        long_documents: What to do with a document whose pair exceeds ``max_length``:
            ``"truncate"`` (default, the official recipe) cuts it and never reads its tail;
            ``"max"`` cuts it into overlapping windows of its own tokens, scores each window
            with the full template (prefix, instruction, query, window, suffix) like any
            candidate (the query's prefix computed once for all of them, batched under the
            same token budget), and keeps the best window's P(yes); :meth:`rank` says which
            window won. With ``base_url`` the windows are cut here, with the model's
            tokenizer, and sent as documents.
        window_overlap: Tokens two neighbouring windows share (``long_documents="max"``).
        max_windows: Most windows per document, the first ones (``None``: all).

    Raises:
        ValueError: If a value is out of range, the instruction is empty or a typo of a preset
            name, or the device is not available.
        TypeError: If a value has the wrong type.

    Example:
        >>> from qwen3_rag import Reranker
        >>> rr = Reranker("Qwen/Qwen3-Reranker-0.6B")  # loads nothing yet
        >>> rr.instruction
        'Given a web search query, retrieve relevant passages that answer the query'
        >>> docs = ["Beijing is China's capital.", "Gravity."]
        >>> rr.rank("capital of China?", docs)  # doctest: +SKIP
        [(0, 0.99...), (1, 0.0...)]
    """

    kind = "reranker"
    checkpoint_kind = "reranker"

    def __init__(
        self,
        model: str = DEFAULT_RERANKER_MODEL,
        *,
        instruction: InstructionLike = None,
        device: DeviceLike = None,
        dtype: DTypeLike = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int = 16,
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
        long_documents: LongDocuments = "truncate",
        window_overlap: int = DEFAULT_WINDOW_OVERLAP,
        max_windows: int | None = None,
    ) -> None:
        super().__init__(
            RerankerOptions(
                model=model,
                instruction=instruction,
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
                long_documents=long_documents,
                window_overlap=window_overlap,
                max_windows=max_windows,
            )
        )
        self.instruction: str = check_rerank_instruction(instruction).instruction
        self.remote: RemoteRerankBackend | None = (
            None if base_url is None else RemoteRerankBackend.from_options(self.options)
        )

    def score(
        self, query: str, documents: Sequence[str], *, instruction: InstructionLike = None
    ) -> list[float]:
        """Relevance of each document to the query.

        Args:
            query: The query.
            documents: Candidate documents.
            instruction: Override this reranker's instruction for this call.

        Returns:
            P(yes) in [0, 1] for each document, in input order.

        Raises:
            TypeError: If ``query`` is not a str, ``documents`` is a bare string, or holds a
                non-string.
            qwen3_rag.remote.RemoteError: With ``base_url``, if the server cannot be reached
                or refuses the request.
        """
        return self._scored(_query_pairs(query, documents), instruction)[0]

    def score_pairs(
        self, pairs: Sequence[tuple[str, str]], *, instruction: InstructionLike = None
    ) -> list[float]:
        """Relevance of each ``(query, document)`` pair (queries may differ).

        Args:
            pairs: ``(query, document)`` pairs: a list, or any iterable such as
                ``zip(queries, documents)``.
            instruction: Override this reranker's instruction for this call.

        Returns:
            P(yes) in [0, 1] for each pair, in input order.

        Raises:
            TypeError: If ``pairs`` is not an iterable of two-string pairs (names the index).
        """
        return self._scored(check_pairs(pairs), instruction)[0]

    def rank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        instruction: InstructionLike = None,
    ) -> list[Ranked]:
        """Documents ordered by relevance, best first.

        Args:
            query: The query.
            documents: Candidate documents.
            top_n: Keep only the best ``top_n`` (``None`` keeps all).
            instruction: Override this reranker's instruction for this call.

        Returns:
            ``(index into documents, score)`` tuples (:class:`Ranked`), best first; ties keep
            input order. With ``long_documents="max"`` each also says which part of its
            document won: ``.window``, a ``(start, end)`` character span.

        Raises:
            ValueError: If ``top_n`` is not ``None`` or a positive integer.
        """
        if top_n is not None:
            top_n = check_positive_int(top_n, "top_n")
        return _ranked(*self._scored(_query_pairs(query, documents), instruction), top_n)

    async def ascore(
        self, query: str, documents: Sequence[str], *, instruction: InstructionLike = None
    ) -> list[float]:
        """Async :meth:`score`, never blocking the event loop.

        With ``base_url`` the requests run on the caller's event loop (``httpx``, no
        thread); local inference runs in a worker thread.
        """
        pairs = _query_pairs(query, documents)
        if self.remote is not None:
            return (await self._ascored_remote(self.remote, pairs, instruction))[0]
        return await asyncio.to_thread(self.score, query, documents, instruction=instruction)

    async def ascore_pairs(
        self, pairs: Sequence[tuple[str, str]], *, instruction: InstructionLike = None
    ) -> list[float]:
        """Async :meth:`score_pairs`, never blocking the event loop."""
        checked = check_pairs(pairs)
        if self.remote is not None:
            return (await self._ascored_remote(self.remote, checked, instruction))[0]
        return await asyncio.to_thread(self.score_pairs, checked, instruction=instruction)

    async def arank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        instruction: InstructionLike = None,
    ) -> list[Ranked]:
        """Async :meth:`rank`, never blocking the event loop."""
        if top_n is not None:
            top_n = check_positive_int(top_n, "top_n")
        if self.remote is None:
            return await asyncio.to_thread(
                self.rank, query, documents, top_n=top_n, instruction=instruction
            )
        pairs = _query_pairs(query, documents)
        return _ranked(*await self._ascored_remote(self.remote, pairs, instruction), top_n)

    # -- internals ---------------------------------------------------------------------------

    def _load_runtime(self) -> _RerankRuntime:
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        seq_cls = self._is_seq_cls()
        tokenizer, lm = self._load(
            AutoModelForSequenceClassification if seq_cls else AutoModelForCausalLM
        )
        pad_id = token_id(tokenizer, EOS_TOKEN, self.source)
        decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
        if seq_cls:
            no_yes = _converted_head(self.source, lm)
        else:
            yes_id = token_id(tokenizer, YES_TOKEN, self.source)
            no_id = token_id(tokenizer, NO_TOKEN, self.source)
            head = lm.get_output_embeddings().weight
            no_yes = head[[no_id, yes_id]].detach().float().clone()
            del head
        del lm  # the full LM head (or score head) is freed unless tied to the embeddings
        return _RerankRuntime(
            tokenizer=tokenizer,
            model=decoder,
            device=self.device,
            lock=threading.Lock(),
            fast=self._prepare(decoder, pad_id),  # the yes/no rows above stay float32
            no_yes=no_yes.to(self.device),
            prefix_ids=tokenizer.encode(RERANK_PREFIX, add_special_tokens=False).ids,
            suffix_ids=tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False).ids,
            pad_id=pad_id,
        )

    def _is_seq_cls(self) -> bool:
        """Whether the checkpoint is a sequence-classification conversion (else a causal LM).

        Read from the weights when they are here, else from the configuration's
        ``architectures`` (a hub model not cached yet: only its config is fetched first).
        """
        found = inspect_checkpoint(self.source)
        if found.kind != "unknown":
            return found.kind == "sequence-classification"
        architectures = getattr(load_config(self.source), "architectures", None) or []
        return any(str(a).endswith("ForSequenceClassification") for a in architectures)

    def _tokenize(
        self, rt: _RerankRuntime, bodies: list[str], whole: list[bool]
    ) -> list[list[int]]:
        """Token ids of each body, warning once when whole documents were cut.

        ``whole[i]``: body ``i`` holds a whole document (a window cut by a token at its edge
        is not what the truncation warning is about).
        """
        sequences, cut = _rerank_ids(
            rt.tokenizer, bodies, self.max_length, rt.prefix_ids, rt.suffix_ids
        )
        truncated = sum(c and w for c, w in zip(cut, whole, strict=True))
        if truncated:
            logger.warning(
                "%d of %d query-document pairs exceeded max_length=%d tokens and were truncated",
                truncated,
                sum(whole),
                self.max_length,
            )
        return sequences

    def _instruction_text(self, instruction: InstructionLike) -> str:
        if instruction is None:
            return self.instruction
        return check_rerank_instruction(instruction).instruction

    def _scored(self, pairs: list[tuple[str, str]], instruction: InstructionLike) -> _Scores:
        """Scores of the pairs and, with ``long_documents="max"``, the winning windows."""
        text = self._instruction_text(instruction)
        if not pairs:
            return [], []
        if self.options.long_documents == "truncate":
            scores = self._score_candidates(text, pairs, [True] * len(pairs))
            return scores, [None] * len(pairs)
        tokenizer = (
            self._runtime().tokenizer
            if self.remote is None
            else self._remote_tokenizer(self.remote)
        )
        windows = self._windows(tokenizer, text, pairs)
        return windows.best(self._score_candidates(text, windows.pairs, windows.whole))

    async def _ascored_remote(
        self,
        remote: RemoteRerankBackend,
        pairs: list[tuple[str, str]],
        instruction: InstructionLike,
    ) -> _Scores:
        """:meth:`_scored` with a model server, its requests sent from the event loop."""
        text = self._instruction_text(instruction)
        if self.options.long_documents == "truncate" or not pairs:
            return await remote.ascore(text, pairs), [None] * len(pairs)
        tokenizer = await asyncio.to_thread(self._remote_tokenizer, remote)
        windows = self._windows(tokenizer, text, pairs)
        return windows.best(await remote.ascore(text, windows.pairs))

    def _remote_tokenizer(self, remote: RemoteRerankBackend) -> Any:
        """The tokenizer windows are cut with, beside a model server, or a ``ValueError``."""
        tokenizer = remote.tokenizer()
        if tokenizer is None:
            raise ValueError(
                f"long_documents='max' with base_url cuts the windows here, with the model's "
                f"tokenizer, which could not be loaded for model={self.model!r}: give the "
                f"model's hub id or a local folder holding its tokenizer, or use "
                f"long_documents='truncate'"
            )
        return tokenizer

    def _windows(self, tokenizer: Any, instruction: str, pairs: list[tuple[str, str]]) -> _Windows:
        """The candidates to score: each pair whose body fits, and windows of those that do not.

        A body that exceeds the budget (``max_length`` less the fixed prefix and suffix) is
        cut, by the recipe, inside its document; here that document becomes windows of its
        own tokens instead, each as long as the budget leaves after the template, the
        instruction and the query (the body with an empty document), overlapping by
        ``window_overlap`` tokens (:func:`~qwen3_rag.batching.text_windows`). Each window is
        then an ordinary pair ``(query, window text)``, formatted and tokenized by the recipe.

        Raises:
            ValueError: If a query leaves the windows less room than ``window_overlap + 1``
                tokens.
        """
        fixed = [
            len(ids) for ids in encode_cut(tokenizer, [RERANK_PREFIX, RERANK_SUFFIX], 1 << 30)[0]
        ]
        budget = rerank_budget(self.max_length, sum(fixed))
        documents = repaired([d for _, d in pairs])
        bodies = [
            format_rerank_body(instruction, q, d)
            for (q, _), d in zip(pairs, documents, strict=True)
        ]
        cut = encode_cut(tokenizer, bodies, budget)[1]
        long = [i for i, c in enumerate(cut) if c]
        queries = sorted({pairs[i][0] for i in long})
        heads = encode_cut(
            tokenizer, [format_rerank_body(instruction, q, "") for q in queries], budget + 1
        )[0]
        room = {q: budget - len(ids) for q, ids in zip(queries, heads, strict=True)}
        for q in queries:
            if room[q] <= self.options.window_overlap:
                raise ValueError(
                    f"long_documents='max': max_length={self.max_length} leaves {room[q]} "
                    f"tokens per window after the template, instruction and a query of "
                    f"{len(q)} characters, not more than window_overlap="
                    f"{self.options.window_overlap}: raise max_length or lower window_overlap"
                )
        spans = text_windows(
            tokenizer,
            [documents[i] for i in long],
            [room[pairs[i][0]] for i in long],
            self.options.window_overlap,
            self.options.max_windows,
        )
        windowed = dict(zip(long, spans, strict=True))
        out = _Windows(count=len(pairs))
        for i, ((query, _), document) in enumerate(zip(pairs, documents, strict=True)):
            for start, end in windowed.get(i, [(0, len(document))]):
                out.add(i, (query, document[start:end]), (start, end), whole=i not in windowed)
        if long:
            logger.info(
                "%d of %d documents exceeded max_length=%d tokens: scored by %d windows",
                len(long),
                len(pairs),
                self.max_length,
                sum(len(w) for w in spans),
            )
        return out

    def _score_candidates(
        self, instruction: str, pairs: list[tuple[str, str]], whole: list[bool]
    ) -> list[float]:
        """P(yes) of each ``(query, document)`` pair as the recipe scores it."""
        if self.remote is not None:
            return self.remote.score(instruction, pairs)
        bodies = [format_rerank_body(instruction, q, d) for q, d in pairs]
        return self._score_on(self._runtime(), [q for q, _ in pairs], bodies, whole)

    def _score_on(
        self, rt: _RerankRuntime, queries: list[str], bodies: list[str], whole: list[bool]
    ) -> list[float]:
        """P(yes) of each formatted body on ``rt`` (its query's prefix shared where it can be)."""
        scores = [0.0] * len(bodies)
        with rt.lock:
            sequences = self._tokenize(rt, bodies, whole)
            with (
                tqdm(
                    total=len(bodies), desc="Reranking", unit="pair", disable=not self.show_progress
                ) as bar,
                torch.inference_mode(),
            ):
                if rt.fast:
                    groups = _share_groups(queries, sequences)
                else:
                    groups = [(0, list(range(len(bodies))))]
                for common, members in groups:
                    shared_len = _bounded_share(common, members, self.max_batch_tokens)
                    past = None
                    if shared_len:
                        prefix = sequences[members[0]][:shared_len]
                        past = _forward.prefix_kv(rt.model, prefix, rt.device)
                    rests = [sequences[i][shared_len:] for i in members]
                    for batch in plan_batches(
                        [len(r) for r in rests],
                        self.batch_size,
                        self.max_batch_tokens,
                        max_padding=_forward.padding_limit(rt.fast, rt.device),
                    ):
                        hidden = rt.final_hidden([rests[j] for j in batch], rt.pad_id, past)
                        logits = hidden.float() @ rt.no_yes.T
                        probs = torch.sigmoid(logits[:, 1] - logits[:, 0]).cpu().tolist()
                        for j, p in zip(batch, probs, strict=True):
                            scores[members[j]] = float(p)
                        bar.update(len(batch))
        return scores

    def _probe(self, runtime: _RerankRuntime) -> np.ndarray:
        """The probe pairs' P(yes) with the default instruction."""
        bodies = [format_rerank_body(DEFAULT_INSTRUCTION, q, d) for q, d in PROBE_PAIRS]
        queries = [q for q, _ in PROBE_PAIRS]
        return np.array(self._score_on(runtime, queries, bodies, [True] * len(bodies)))

    def _engine_files(self, runtime: _RerankRuntime) -> dict[str, np.ndarray]:
        return {"no_yes": runtime.no_yes.float().cpu().numpy()}

    def _engine_runtime(self, decoder: OnnxDecoder, folder: Path) -> _RerankRuntime:
        tokenizer = load_fast_tokenizer(self.source)
        no_yes = np.load(folder / "no_yes.npy", allow_pickle=False)
        return _RerankRuntime(
            tokenizer=tokenizer,
            model=decoder,
            device=self.device,
            lock=threading.Lock(),
            fast=False,
            no_yes=torch.from_numpy(no_yes),
            prefix_ids=tokenizer.encode(RERANK_PREFIX, add_special_tokens=False).ids,
            suffix_ids=tokenizer.encode(RERANK_SUFFIX, add_special_tokens=False).ids,
            pad_id=token_id(tokenizer, EOS_TOKEN, self.source),
        )


def _converted_head(source: ModelSource, model: Any) -> torch.Tensor:
    """The ``(2, hidden)`` rows a sequence-classification conversion scores with.

    The published conversions store one row, ``yes - no`` of the LM head; the reranker scores
    ``sigmoid((yes - no) . h)`` from its two rows, so the converted head becomes the rows
    ``[0, yes - no]``: one scoring path for both formats. The row is read as stored (float32
    here, whatever the compute dtype), and only from a head transformers' class reads whole.

    Raises:
        ModelKindError: If the loaded model has no one-row ``score`` head, or the files hold
            a bias beside it (which the format has not).
    """
    found = check_kind(source, "reranker")  # one row, named score.weight, or an error
    weight = getattr(getattr(model, "score", None), "weight", None)
    if found.kind != "sequence-classification" or weight is None or _stores(source, "score.bias"):
        raise ModelKindError(
            f"model={source.model!r}: its configuration and its weights disagree on the score "
            f"head; the reranker reads {SEQ_CLS_FORMAT}",
            model=source.model,
            expected="reranker",
            found="sequence-classification (unreadable score head)",
        )
    row = stored_tensor(source, "score.weight").reshape(1, -1)
    if row.shape[1] != weight.shape[1]:
        raise ModelKindError(
            f"model={source.model!r}: its score head has {row.shape[1]} columns for a hidden "
            f"size of {weight.shape[1]}; the reranker reads {SEQ_CLS_FORMAT}",
            model=source.model,
            expected="reranker",
            found="sequence-classification (score head of the wrong width)",
        )
    return torch.cat([torch.zeros_like(row), row])


def _stores(source: ModelSource, name: str) -> bool:
    """Whether the model's safetensors files hold a tensor ``name``."""
    try:
        stored_tensor(source, name)
    except KeyError:
        return False
    return True


def _query_pairs(query: str, documents: Sequence[str]) -> list[tuple[str, str]]:
    """``(query, document)`` pairs, or a clear error for a bad query or documents."""
    query = check_text(query, "query")
    return [(query, d) for d in check_texts(documents, "documents")]


def _ranked(
    scores: list[float], windows: list[tuple[int, int] | None], top_n: int | None
) -> list[Ranked]:
    """``(index, score)`` best first, ties in input order, the best ``top_n`` kept."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return [Ranked(i, scores[i], windows[i]) for i in order[:top_n]]


#: The shared prefix is capped at this fraction of ``max_batch_tokens`` (see _bounded_share).
SHARE_FRACTION = 8


def _bounded_share(common: int, members: list[int], max_batch_tokens: int | None) -> int:
    """How many tokens of a group's common prefix to compute once and share.

    Sharing saves the prefix's compute for every member after the first, at the cost of holding
    its keys and values for every layer while the group runs: 229 KB per token for the 0.6B
    model in float32 (2 x 28 layers x 8 heads x 128), about 8x the peak of one token of a batch
    (~28 KB measured). So a lone member shares nothing (it would save nothing, and one
    32k-token pair would hold 7.5 GB), and the shared part is capped at
    ``max_batch_tokens // SHARE_FRACTION`` tokens (2,048 by default: more than any template,
    instruction and usual query), which keeps its cache near one full batch's peak. Sharing any
    prefix of the common one is exact.
    """
    if len(members) < 2:
        return 0
    if max_batch_tokens is None:
        return common
    return min(common, max_batch_tokens // SHARE_FRACTION)


def _common_prefix(sequences: list[list[int]]) -> int:
    """Length of the longest common prefix of the token lists."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for s in sequences[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n


def _share_groups(queries: list[str], sequences: list[list[int]]) -> list[tuple[int, list[int]]]:
    """Group pairs that share a token prefix: ``(shared length, member indices)``.

    Pairs with the same query form one group (template, instruction and query in common);
    pairs whose query occurs once are pooled, sharing at least the template and instruction.
    The shared part is the longest common *token* prefix of the members' exact token lists
    (BPE merges may cross any text boundary, so nothing is assumed from the strings), kept
    one token short of the shortest member so every member has a token of its own to score.
    """
    by_query: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        by_query.setdefault(q, []).append(i)
    groups = [m for m in by_query.values() if len(m) > 1]
    singles = [m[0] for m in by_query.values() if len(m) == 1]
    if singles:
        groups.append(singles)
    out: list[tuple[int, list[int]]] = []
    for members in groups:
        seqs = [sequences[i] for i in members]
        shared = min(_common_prefix(seqs), min(len(s) for s in seqs) - 1)
        out.append((max(shared, 0), members))
    return out
