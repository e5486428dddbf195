"""Ray Data embedding: one model per actor, CPU or GPU actors, the exact local recipe.

:func:`embed_dataset` adds a vector column to a ``ray.data.Dataset`` of texts with
``map_batches`` over an actor pool: each actor builds one :class:`~qwen3_rag.Embedder` from
the options of the one you pass, loads the model once, and embeds its batches with
``Embedder.embed_documents``, the same code path (template, ``<|endoftext|>``, pooling,
Matryoshka size, normalisation) as in this process. :func:`ray_embed_step` is the same work
as an embed step for :func:`qwen3_rag.indexing.index_collection` (``qwen3-rag index --ray``):
the indexer keeps its guarantees (deterministic ids, batches written as they come back,
resumable after a failure at any point, nothing lost or duplicated), and Ray only computes
vectors.

Locally, :func:`init_ray` starts Ray in this process with no cluster; with an address it
joins one (``ray start --head`` on the head node, ``ray start --address`` on the others).
Actors import ``qwen3_rag``, so it must be installed on every node.

Needs the ``ray`` extra (``pip install "qwen3-rag[ray]"``).

Example:
    >>> import ray
    >>> from qwen3_rag import Embedder
    >>> from qwen3_rag.distributed import embed_dataset, init_ray
    >>> init_ray()  # doctest: +SKIP
    >>> texts = ray.data.from_items([{"text": "Beijing."}, {"text": "Paris."}])  # doctest: +SKIP
    >>> embedder = Embedder("Qwen/Qwen3-Embedding-0.6B")
    >>> rows = embed_dataset(texts, embedder, concurrency=2).take_all()  # doctest: +SKIP
    >>> rows[0]["embedding"].shape  # doctest: +SKIP
    (1024,)
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qwen3_rag._extras import install_hint, require
from qwen3_rag.options import check_positive_int

if TYPE_CHECKING:
    from qwen3_rag import Embedder
    from qwen3_rag.options import EmbedderOptions

__all__ = [
    "DEFAULT_WINDOW",
    "RAY_EXTRA",
    "RayEmbedStep",
    "embed_dataset",
    "init_ray",
    "ray_embed_step",
]

logger = logging.getLogger(__name__)

#: The error when Ray is missing names this.
RAY_EXTRA = install_hint("ray")
#: Chunks handed to Ray per dataset by :func:`ray_embed_step` (each window starts its actors
#: and loads their models once).
DEFAULT_WINDOW = 8192
#: The value of ``address`` that means a Ray in this process, with no cluster.
LOCAL = "local"


def _ray() -> Any:
    require("ray.data", "ray", "Ray embedding")  # ray[data], not only ray
    return require("ray", "ray", "Ray embedding")


def init_ray(address: str | None = None, **kwargs: Any) -> None:
    """Start Ray in this process, or join a cluster, unless Ray is running already.

    Args:
        address: ``None`` or ``"local"``: a Ray in this process with no cluster (all the
            machine's cores unless ``num_cpus`` is passed); ``"auto"``: the cluster started
            on this machine with ``ray start``; ``"ray://host:10001"`` or ``"host:6379"``: a
            remote cluster.
        **kwargs: More ``ray.init`` arguments (``num_cpus``, ``runtime_env``,
            ``include_dashboard`` ...).

    Raises:
        ImportError: If Ray is not installed (the message names the ``ray`` extra).
        ConnectionError: If no cluster answers at ``address``.

    Example:
        >>> from qwen3_rag.distributed import init_ray
        >>> init_ray(num_cpus=2, include_dashboard=False)  # doctest: +SKIP
    """
    ray = _ray()
    if ray.is_initialized():
        return
    if address is not None and address.strip().lower() != LOCAL:
        kwargs["address"] = address.strip()
    kwargs.setdefault("logging_level", logging.WARNING)
    ray.init(**kwargs)


class _EmbedActor:
    """One model per actor: builds the :class:`~qwen3_rag.Embedder` once, embeds batches."""

    def __init__(self, options: EmbedderOptions, text_column: str, vector_column: str) -> None:
        from qwen3_rag import Embedder

        self.embedder = Embedder.from_options(options)
        self.embedder.load()
        self.text_column = text_column
        self.vector_column = vector_column

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch[self.text_column]]
        return {**batch, self.vector_column: self.embedder.embed_documents(texts)}


def actor_options(embedder: Embedder) -> EmbedderOptions:
    """The settings an actor builds its embedder from: ``embedder``'s, with its resolved dtype.

    The dtype is fixed here (float32 on a CPU driver unless asked otherwise) so that every
    actor makes the vectors this process would make, whatever its device: a vector's dtype
    is part of the key by which the indexer reuses it. A relative model folder or cache
    folder is made absolute (actors run elsewhere). No progress bar in actors.
    """
    options = embedder.options
    dtype = None if embedder.remote is not None else str(embedder.dtype).removeprefix("torch.")
    # Actors run in other folders (and on other nodes): a relative model folder is made
    # absolute here, where it was meant.
    source = embedder.source
    model = os.path.abspath(source.location) if source.is_local else options.model
    cache_dir = options.cache_dir and os.path.abspath(os.path.expanduser(options.cache_dir))
    return dataclasses.replace(
        options, model=model, cache_dir=cache_dir, dtype=dtype, show_progress=False
    )


def embed_dataset(
    dataset: Any,
    embedder: Embedder,
    *,
    text_column: str = "text",
    vector_column: str = "embedding",
    concurrency: int = 1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    batch_size: int | None = None,
    max_restarts: int | None = None,
) -> Any:
    """Add a document-vector column to a ``ray.data.Dataset`` of texts (lazily).

    Runs ``dataset.map_batches`` over a pool of ``concurrency`` actors, each holding one
    model built from ``embedder``'s settings (:func:`actor_options`) and embedding with
    ``Embedder.embed_documents``: the vectors are those ``embedder`` gives in this process.

    Args:
        dataset: A ``ray.data.Dataset`` with a string column ``text_column`` (other columns,
            such as ids, are passed through).
        embedder: The settings to embed with (model, dimensions, instruction, dtype ...);
            nothing is loaded in this process.
        text_column: The column of texts.
        vector_column: The column added: one float32 vector per row.
        concurrency: Actors (models) in the pool.
        num_cpus: CPUs reserved per actor (Ray's default: 1; torch then uses that many
            threads).
        num_gpus: GPUs per actor (e.g. ``1``; the model then runs on CUDA unless the
            embedder names another device: pass ``dtype="bfloat16"`` to the embedder for
            speed there).
        batch_size: Rows per actor call (default: the embedder's ``batch_size``).
        max_restarts: Restarts of an actor that dies (``None``: Ray Data's default,
            restarting it and retrying its batches; ``0``: fail the run).

    Returns:
        The dataset with ``vector_column`` added (not yet executed).

    Raises:
        ImportError: If Ray is not installed.
        ValueError: If ``concurrency`` or ``batch_size`` is below 1, or the column is missing.
    """
    ray = _ray()
    for name, value in (("concurrency", concurrency), ("batch_size", batch_size)):
        if value is not None:
            check_positive_int(value, name)
    columns = dataset.columns(fetch_if_missing=False)
    if columns is not None and text_column not in columns:
        raise ValueError(f"text_column {text_column!r} is not a column of the dataset: {columns}")
    remote_args: dict[str, Any] = {}
    if max_restarts is not None:
        remote_args["max_restarts"] = max_restarts
    return dataset.map_batches(
        _EmbedActor,
        fn_constructor_args=(actor_options(embedder), text_column, vector_column),
        batch_size=batch_size or embedder.options.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        **remote_args,
    )


class RayEmbedStep:
    """The indexer's embed step on Ray (see :func:`ray_embed_step`, which builds it).

    Attributes:
        embedder: The settings the actors embed with; the indexer checks them against the
            collection's.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        concurrency: int = 1,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        window: int = DEFAULT_WINDOW,
        max_restarts: int | None = None,
    ) -> None:
        self._ray = _ray()
        check_positive_int(window, "window")
        check_positive_int(concurrency, "concurrency")
        self.embedder = embedder
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.window = window
        self.max_restarts = max_restarts

    def __repr__(self) -> str:
        return (
            f"RayEmbedStep({self.embedder!r}, concurrency={self.concurrency}, "
            f"num_cpus={self.num_cpus}, num_gpus={self.num_gpus}, window={self.window})"
        )

    def __call__(self, batches: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Embed the batches ``window`` chunks at a time; yield each batch's vectors in order."""
        it = iter(batches)
        while True:
            group: list[list[str]] = []
            size = 0
            for batch in it:
                group.append(list(batch))
                size += len(group[-1])
                if size >= self.window:
                    break
            if not group:
                return
            yield from self._embed_window(group)

    def _embed_window(self, group: list[list[str]]) -> Iterator[np.ndarray]:
        """One dataset: yield each batch's vectors, in order, as soon as all are back."""
        rows = [
            {"row": i, "text": text} for i, text in enumerate(itertools.chain.from_iterable(group))
        ]
        dataset = self._ray.data.from_items(rows, override_num_blocks=len(group))
        embedded = embed_dataset(
            dataset,
            self.embedder,
            concurrency=min(self.concurrency, len(group)),
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            batch_size=max(len(b) for b in group),
            max_restarts=self.max_restarts,
        )
        ends = list(itertools.accumulate(len(b) for b in group))
        starts = [end - len(b) for end, b in zip(ends, group, strict=True)]
        vectors: dict[int, np.ndarray] = {}
        done = 0  # batches yielded
        for out in embedded.iter_batches(batch_format="numpy", batch_size=None):
            for row, vector in zip(out["row"], out["embedding"], strict=True):
                vectors[int(row)] = np.asarray(vector, dtype=np.float32)
            while done < len(group) and all(r in vectors for r in range(starts[done], ends[done])):
                yield np.stack([vectors.pop(r) for r in range(starts[done], ends[done])])
                done += 1
        if done < len(group):
            raise RuntimeError(f"Ray returned vectors for {starts[done]} of {ends[-1]} chunks")


def ray_embed_step(
    embedder: Embedder,
    *,
    concurrency: int = 1,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    window: int = DEFAULT_WINDOW,
    max_restarts: int | None = None,
) -> RayEmbedStep:
    """The indexer's embed step on Ray: the same vectors, computed by a pool of actors.

    The indexer's batches are taken ``window`` chunks at a time into a dataset, embedded
    by :func:`embed_dataset`, and handed back to the indexer batch by batch, in order, as
    soon as each batch's vectors are all back; the indexer writes each batch as it gets it
    (ids, order and writes stay in this process). A failure mid-run (an actor dead with no
    restarts left, a lost cluster) keeps every batch written before it, and the next run
    embeds only the chunks still missing.

    Ray must be running (:func:`init_ray`) when the indexer calls the step, and
    ``embedder`` must have the collection's settings (the indexer checks).

    Args:
        embedder: The collection's embedder (its settings are sent to the actors).
        concurrency: Actors (models) in the pool.
        num_cpus: CPUs per actor.
        num_gpus: GPUs per actor.
        window: Chunks per dataset: a larger window amortises actor start-up (one process
            start and model load per actor per window), a smaller one returns first vectors
            sooner.
        max_restarts: See :func:`embed_dataset`.

    Returns:
        A step for :func:`qwen3_rag.indexing.index_paths` or
        :func:`~qwen3_rag.indexing.index_collection` (``embed=``).

    Raises:
        ImportError: If Ray is not installed.
        ValueError: If ``window`` or ``concurrency`` is below 1.

    Example:
        >>> from qwen3_rag import Embedder
        >>> from qwen3_rag.distributed import init_ray, ray_embed_step
        >>> from qwen3_rag.indexing import index_paths
        >>> embedder = Embedder("Qwen/Qwen3-Embedding-0.6B")
        >>> init_ray()  # doctest: +SKIP
        >>> step = ray_embed_step(embedder, concurrency=2, num_cpus=1)  # doctest: +SKIP
        >>> index_paths(["docs"], model=embedder.model, embed=step)  # doctest: +SKIP
    """
    return RayEmbedStep(
        embedder,
        concurrency=concurrency,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        window=window,
        max_restarts=max_restarts,
    )
