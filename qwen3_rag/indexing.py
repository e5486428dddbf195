"""The incremental, interrupt-safe indexer: text files into a Chroma collection.

:func:`index_paths` is what ``qwen3-rag index`` runs, callable from a script or a notebook.
It goes through six stages, each a function here that can be used (or replaced) alone:

1. **walk** (:func:`walk`): the text files under the paths; hidden files and folders, and
   ``__pycache__``/``node_modules``/virtual environments, are skipped.
2. **read** (:func:`read_text`): a file's UTF-8 text; a binary file (a NUL byte, or not
   UTF-8) reads as ``None`` and is skipped.
3. **chunk** (:class:`Chunker`): token-sized chunks, by ``semantic-text-splitter`` counting
   the embedding model's own tokens, each with its exact position in the file.
4. **plan** (:func:`plan_file`, :func:`find_reusable`): what to write and what to delete per
   file, from the file's content hash and the chunks already stored; and which chunks to
   write get a stored vector instead of a model call.
5. **apply**: embed the other chunks (the ``embed`` step), upsert every chunk in order, then
   delete the file's leftovers.
6. **stats**: an :class:`IndexStats` of what was done.

Stages 1-4 run in a planning thread, ahead of the model (a bounded queue), and the writes
in a writing thread, so that reading, chunking, hashing and the store stay off the model's
critical path (``python -m benchmarks.indexing`` measures what is left).

Re-running is incremental and safe to interrupt at any point:

* every chunk has a deterministic id (``"{source}#{index}"``) and carries its file's content
  hash and chunk count in its metadata, so ``upsert`` can never duplicate a chunk;
* a file whose stored chunks all carry its current hash, and cover every index, is skipped;
* a changed file's new chunks are upserted first and its leftover chunks deleted afterwards,
  so an interrupted run leaves old-or-new chunks (never none, never twice) and the next run
  redoes only the chunks that are missing or stale;
* chunks of files that vanished from under the indexed paths are deleted;
* only new text meets the model: every chunk stores a ``vector_key`` (a hash of its text and
  of the settings that fix its vector: model, revision, dimensions, document instruction,
  length limit, dtype, quantization), and a chunk to write whose key is stored anywhere in
  the collection is written with that vector. Editing one paragraph of a long file embeds
  the chunks that changed; renaming a file embeds nothing.

Two runs on one store folder never interleave: :func:`index_paths` holds the folder's lock
(:func:`qwen3_rag.store.lock_db`) and a second run waits for the first.

The stages are open for other engines: :func:`index_collection` takes any chromadb collection
(an embedded store or a ``chromadb.HttpClient`` one) and an ``embed`` step (any callable that
turns an iterable of text batches into one vector array per batch, in order).

Needs the ``chroma`` extra (``pip install "qwen3-rag[chroma]"``).

Example:
    >>> from qwen3_rag.indexing import index_paths
    >>> stats = index_paths(["docs", "README.md"], db="qwen3_db")  # doctest: +SKIP
    >>> stats.chunks_embedded, stats.files_unchanged  # doctest: +SKIP
    (42, 0)
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from qwen3_rag.chunking import (
    Chunk,
    Chunker,
    check_chunking,
    chunk_id,
    file_hash,
    read_text,
    resolve_paths,
    shared_chunker,
    walk,
)
from qwen3_rag.index_plan import (
    PAGE,
    FilePlan,
    StoredRecords,
    complete_file,
    find_reusable,
    plan_file,
    stored_chunks,
    vector_key,
    vector_settings,
)
from qwen3_rag.options import check_positive_int
from qwen3_rag.store import DEFAULT_COLLECTION, DEFAULT_DB

if TYPE_CHECKING:
    from qwen3_rag import Embedder
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

__all__ = [
    "REBUILD_SUFFIX",
    "Chunk",  # re-exported from qwen3_rag.chunking, as are the other chunking names
    "Chunker",
    "EmbedStep",
    "FilePlan",
    "IndexProgress",
    "IndexStats",
    "check_chunking",
    "chunk_id",
    "embed_locally",
    "file_hash",
    "index_collection",
    "index_paths",
    "plan_file",
    "read_text",
    "resolve_paths",
    "stored_chunks",
    "vector_key",
    "vector_settings",
    "walk",
]

logger = logging.getLogger(__name__)

#: Appended to a collection's name for the collection a rebuild fills before the swap.
REBUILD_SUFFIX = ".rebuild"
#: Files planned ahead of the model, and batches queued for the store (memory bounds).
PLANS_AHEAD = 16
WRITES_AHEAD = 8


# -- embed -----------------------------------------------------------------------------------


class EmbedStep(Protocol):
    """Turns batches of chunk texts into vectors: one ``(len(batch), dim)`` array per batch.

    Arrays come back in the order of the batches. The default is :func:`embed_locally`; a
    distributed engine can consume the batches lazily and embed them anywhere.
    """

    def __call__(self, batches: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Embed each batch of documents, in order."""
        ...


def embed_locally(embedder: Embedder) -> EmbedStep:
    """The embed step that runs ``embedder.embed_documents`` in this process, batch by batch.

    Example:
        >>> from qwen3_rag import Embedder
        >>> step = embed_locally(Embedder("Qwen/Qwen3-Embedding-0.6B"))  # loads nothing yet
        >>> next(step([["The capital of China is Beijing."]])).shape  # doctest: +SKIP
        (1, 1024)
    """

    def step(batches: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        for batch in batches:
            yield embedder.embed_documents(list(batch))

    return step


# -- apply and stats -------------------------------------------------------------------------


@dataclass
class IndexStats:
    """What an index run did.

    Attributes:
        files: Text files found under the paths.
        files_unchanged: Of those, skipped as already indexed.
        files_changed: Of those, new or changed (chunked and written).
        files_binary: Binary files skipped.
        files_unreadable: Files that could not be read (their chunks kept as they were).
        files_deleted: Files gone from under the paths whose chunks were removed.
        chunks_embedded: Chunks embedded by the model and written.
        chunks_reused: Chunks written with a stored vector of the same text and settings.
        chunks_removed: Stale chunks deleted.
        chunks_stored: Chunks in the collection at the end.
        seconds: Wall time of the run.
        model_seconds: Of that, time spent waiting for the embed step (the model); the rest
            (reading, chunking, hashing, store reads and writes) is what the pipeline does
            not hide behind the model.
    """

    files: int = 0
    files_unchanged: int = 0
    files_changed: int = 0
    files_binary: int = 0
    files_unreadable: int = 0
    files_deleted: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_removed: int = 0
    chunks_stored: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0


@dataclass(frozen=True)
class IndexProgress:
    """Progress of an index run, handed to ``on_progress`` after each batch is stored.

    Attributes:
        chunks_done: Chunks written so far.
        chunks_total: Chunks to write, as far as the files planned so far tell.
        files_done: Files planned so far.
        files_total: Files found under the paths.
    """

    chunks_done: int
    chunks_total: int
    files_done: int
    files_total: int


def index_collection(
    paths: Iterable[str | os.PathLike[str]],
    collection: Any,
    embedder: Embedder,
    *,
    chunk_size: int = 512,
    chunk_overlap: int = 64,
    batch_size: int = 32,
    exclude: Iterable[str | os.PathLike[str]] = (),
    embed: EmbedStep | None = None,
    on_progress: Callable[[IndexProgress], None] | None = None,
) -> IndexStats:
    """Index ``paths`` into an open collection (incremental and interrupt-safe).

    The caller opens the collection (e.g. :func:`qwen3_rag.store.open_collection`, which
    checks its settings) and keeps other writers away (:func:`index_paths` holds the store
    lock); ``embedder`` must be the collection's embedder.

    Three threads overlap the work: one reads, chunks and plans the files ahead (a bounded
    queue), this one runs the embed step, one writes to the store. The writer alone writes,
    in order, and deletes a file's leftover chunks only after all its new chunks are
    written, so a kill at any moment leaves every file old, new, or old-and-partly-new, and
    the next run finishes it. Chunks whose text (with the same model settings) is already
    stored anywhere in the collection get the stored vector, not a model call.

    Args:
        paths: Files and folders.
        collection: A chromadb collection made by qwen3-rag, on any client.
        embedder: The collection's embedder: its tokenizer sizes the chunks, its settings
            key the reused vectors and, unless ``embed`` is given, it embeds the chunks.
        chunk_size: Most tokens per chunk.
        chunk_overlap: Most tokens shared by neighbouring chunks.
        batch_size: Chunks embedded per model step, and written per store call.
        exclude: Folders not to walk into.
        embed: The embed step; default :func:`embed_locally` over ``embedder``. A step
            with an ``embedder`` attribute (e.g. :func:`qwen3_rag.distributed.ray_embed_step`)
            must have ``embedder``'s vector settings.
        on_progress: Called with an :class:`IndexProgress` after each stored batch (from
            the writing thread).

    Returns:
        What was done.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If a size is out of range, or the embed step's embedder has other
            settings than ``embedder``.
    """
    started = time.perf_counter()
    check_chunking(chunk_size, chunk_overlap)
    check_positive_int(batch_size, "batch_size")
    roots = resolve_paths(paths)
    files = walk(roots, exclude=exclude)
    if not files:
        logger.warning("no files found under %s", ", ".join(map(str, roots)))
    stored = stored_chunks(collection)
    settings = vector_settings(embedder)
    step_embedder = getattr(embed, "embedder", None)
    theirs = settings if step_embedder is None else vector_settings(step_embedder)
    if theirs != settings:
        raise ValueError(
            f"the embed step embeds with other settings than the collection's "
            f"({theirs} vs {settings}): build it from the collection's embedder"
        )

    chunker = shared_chunker(embedder.source, chunk_size, chunk_overlap)
    stats = IndexStats()
    run = _Run(collection, stats, batch_size, on_progress, len(files))
    if embed is None:  # load the model beside the first chunking, once a file needs it
        run.preload = embedder.load
    planner = threading.Thread(
        target=run.guard,
        args=("planner", _plan, files, roots, stored, chunker, settings, run),
        name="qwen3-rag-plan",
        daemon=True,
    )
    writer = threading.Thread(
        target=run.guard, args=("writer", _write, run), name="qwen3-rag-write", daemon=True
    )
    planner.start()
    writer.start()
    try:
        _embed_all(run, embed or embed_locally(embedder))
        run.put(run.writes, None)  # everything is queued: the writer finishes and stops
        while writer.is_alive():
            writer.join(0.1)
        run.raise_failure()
    finally:
        run.stop.set()
        writer.join()  # it stops after the write in progress: none may follow the lock
        planner.join(5)  # it only reads
    stats.chunks_stored = collection.count()
    stats.seconds = time.perf_counter() - started
    return stats


_NO_VECTORS = np.empty((0, 0), dtype=np.float32)


def _preload(load: Callable[[], Any]) -> None:
    """Load the model ahead of its first batch (a failure shows again, there)."""
    try:
        load()
    except Exception:
        logger.debug("loading the model ahead failed", exc_info=True)


class _Failed(Exception):
    """Another pipeline thread failed; its error is raised instead."""


class _Run:
    """What the three threads of one run share: the queues, the stop flag, the first error."""

    def __init__(
        self,
        collection: Any,
        stats: IndexStats,
        batch_size: int,
        on_progress: Callable[[IndexProgress], None] | None,
        files_total: int,
    ) -> None:
        self.collection = collection
        self.stats = stats
        self.batch_size = batch_size
        self.on_progress = on_progress
        self.files_total = files_total
        self.plans: queue.Queue[FilePlan | None] = queue.Queue(maxsize=PLANS_AHEAD)
        self.writes: queue.Queue[tuple[FilePlan | None, list[Chunk], np.ndarray] | None] = (
            queue.Queue(maxsize=WRITES_AHEAD)
        )
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.files_done = 0
        self.chunks_planned = 0
        self.chunks_done = 0
        self.preload: Callable[[], Any] | None = None  # loads the model, if the run needs it

    def start_preload(self) -> None:
        """Start loading the model in the background, once per run."""
        if self.preload is not None:
            threading.Thread(target=_preload, args=(self.preload,), daemon=True).start()
            self.preload = None

    def guard(self, name: str, work: Callable[..., None], *args: Any) -> None:
        """Run a thread's work; keep its error (a kill stand-in included) and stop the run."""
        try:
            work(*args)
        except _Failed:
            pass
        except BaseException as exc:
            if self.failure is None:
                self.failure = exc
            logger.debug("the %s thread failed", name, exc_info=True)
            self.stop.set()

    def raise_failure(self) -> None:
        """Raise the first error of another thread, if any."""
        if self.failure is not None:
            raise self.failure

    def put(self, q: queue.Queue[Any], item: Any) -> None:
        """Put ``item``, waiting for room unless the run stops."""
        while True:
            if self.stop.is_set():
                self.raise_failure()
                raise _Failed
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(self, q: queue.Queue[Any]) -> Any:
        """Take the next item, waiting unless the run stops."""
        while True:
            if self.stop.is_set():
                self.raise_failure()
                raise _Failed
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                continue

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(
                IndexProgress(
                    self.chunks_done, self.chunks_planned, self.files_done, self.files_total
                )
            )


def _plan(
    files: list[Path],
    roots: list[Path],
    stored: StoredRecords,
    chunker: Chunker,
    settings: str,
    run: _Run,
) -> None:
    """The planning thread: read, chunk and plan each file, find reusable vectors."""
    stats = run.stats
    by_key = {
        str(meta["vector_key"]): id_
        for records in stored.values()
        for id_, meta in records
        if meta.get("vector_key")
    }
    seen: set[str] = set()
    for path in files:
        source = str(path)
        seen.add(source)
        try:
            text = read_text(path)
        except OSError as exc:
            logger.warning("skipped %s: %s", path, exc.strerror or exc)
            stats.files_unreadable += 1  # unreadable now: keep whatever was indexed before
            continue
        records = stored.get(source, [])
        if text is None:
            logger.info("skipped binary file %s", path)
        elif complete_file(records, file_hash(text, chunker.settings)) is None:
            run.start_preload()  # this file needs chunking and the model
        plan = plan_file(source, text, records, chunker, vector_settings=settings)
        if plan.write:
            plan.reuse = find_reusable(run.collection, plan.write, by_key, settings)
        if plan.status == "binary":
            stats.files_binary += 1
        else:
            stats.files += 1
            if plan.status == "unchanged":
                stats.files_unchanged += 1
            else:
                stats.files_changed += 1
        run.put(run.plans, plan)
    # Last, so that a file renamed in this run could still reuse their vectors.
    for source, records in stored.items():
        if source not in seen and _under(source, roots):
            logger.info("removing chunks of deleted file %s", source)
            stats.files_deleted += 1
            run.put(run.plans, FilePlan(source, "deleted", stale=[i for i, _ in records]))
    run.put(run.plans, None)


@dataclass
class _Slot:
    """A chunk on its way to the store, in file order; its vector once known."""

    chunk: Chunk
    vector: np.ndarray | None


def _embed_all(run: _Run, embed: EmbedStep) -> None:
    """This thread: feed the embed step, and hand whole batches to the writer in order.

    The store sees the same sequence of batches (``batch_size`` consecutive chunks in file
    order, reused or embedded alike) whatever the timing of the threads.
    """
    order: collections.deque[_Slot] = collections.deque()  # not yet handed to the writer
    waiting: collections.deque[_Slot] = collections.deque()  # need the model, not yet sent
    sent: collections.deque[list[_Slot]] = collections.deque()  # sent to the model
    outside = 0.0  # time spent in this generator, inside the embed step's clock

    def flush(final: bool) -> None:
        while order and (final or len(order) >= run.batch_size):
            head = list(itertools.islice(order, run.batch_size))
            ready = [slot.vector for slot in head if slot.vector is not None]
            if len(ready) < len(head):
                return
            for _ in head:
                order.popleft()
            run.put(run.writes, (None, [slot.chunk for slot in head], np.stack(ready)))

    def batches() -> Iterator[list[str]]:
        nonlocal outside
        start = time.perf_counter()
        while True:
            plan = run.get(run.plans)
            if plan is None:
                break
            run.files_done += 1
            run.chunks_planned += len(plan.write)
            run.stats.chunks_reused += len(plan.reuse)
            run.put(run.writes, (plan, [], _NO_VECTORS))  # announce the file to the writer
            for i, chunk in enumerate(plan.write):
                slot = _Slot(chunk, plan.reuse.get(i))
                order.append(slot)
                if slot.vector is None:
                    waiting.append(slot)
            plan.reuse = {}
            flush(final=False)
            while len(waiting) >= run.batch_size:
                outside += time.perf_counter() - start
                yield _take(waiting, run.batch_size, sent)
                start = time.perf_counter()
        if waiting:
            outside += time.perf_counter() - start
            yield _take(waiting, len(waiting), sent)
            start = time.perf_counter()
        outside += time.perf_counter() - start

    vectors = iter(embed(batches()))
    while True:
        started, before = time.perf_counter(), outside
        batch_vectors = next(vectors, None)
        run.stats.model_seconds += time.perf_counter() - started - (outside - before)
        if batch_vectors is None:
            break
        batch = sent.popleft()
        array = np.asarray(batch_vectors, dtype=np.float32)
        if array.shape[0] != len(batch):
            raise ValueError(
                f"the embed step returned {array.shape[0]} vectors for a batch of {len(batch)}"
            )
        for slot, vector in zip(batch, array, strict=True):
            slot.vector = vector
        run.stats.chunks_embedded += len(batch)
        flush(final=False)
    if sent or waiting:
        raise ValueError("the embed step stopped before embedding every batch")
    flush(final=True)


def _take(
    waiting: collections.deque[_Slot], n: int, sent: collections.deque[list[_Slot]]
) -> list[str]:
    batch = [waiting.popleft() for _ in range(n)]
    sent.append(batch)
    return [slot.chunk.text for slot in batch]


def _write(run: _Run) -> None:
    """The writing thread: upsert batches in order; a file's leftovers after its last chunk."""
    left: dict[str, int] = {}
    plans: dict[str, FilePlan] = {}
    stats = run.stats
    while True:
        item = run.get(run.writes)
        if item is None:
            return
        plan, chunks, vectors = item
        if plan is not None:  # a file announced: delete now, or count down its chunks
            if plan.write:
                left[plan.source] = len(plan.write)
                plans[plan.source] = plan
            elif plan.stale:
                _delete(run.collection, plan.stale, stats)
            continue
        run.collection.upsert(
            ids=[c.id for c in chunks],
            documents=[c.text for c in chunks],
            metadatas=[c.metadata for c in chunks],
            embeddings=vectors,
        )
        run.chunks_done += len(chunks)
        # A file's leftover chunks go only once all its new chunks are written.
        for chunk in chunks:
            source = str(chunk.metadata["source"])
            left[source] -= 1
            if left[source] == 0:
                del left[source]
                done = plans.pop(source)
                if done.stale:
                    _delete(run.collection, done.stale, stats)
        run.progress()


def _under(source: str, roots: list[Path]) -> bool:
    p = Path(source)
    return any(p == r or r in p.parents for r in roots)


def _delete(collection: Any, ids: list[str], stats: IndexStats) -> None:
    for start in range(0, len(ids), PAGE):
        collection.delete(ids=ids[start : start + PAGE])
    stats.chunks_removed += len(ids)


# -- the whole run ---------------------------------------------------------------------------


def index_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    db: str | os.PathLike[str] = DEFAULT_DB,
    collection: str = DEFAULT_COLLECTION,
    client: Any = None,
    model: str | None = None,
    instruction: str | None = None,
    dimensions: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    embedding_function: Qwen3EmbeddingFunction | None = None,
    chunk_size: int = 512,
    chunk_overlap: int = 64,
    batch_size: int = 32,
    wait: bool = True,
    embed: EmbedStep | None = None,
    on_progress: Callable[[IndexProgress], None] | None = None,
    rebuild: bool = False,
) -> IndexStats:
    """Index files and folders into a collection of an embedded Chroma store or a server.

    Creates the store folder and the collection when missing. The collection remembers its
    embedding model, instruction and dimensions; settings left ``None`` are taken from it
    (or the defaults), and settings that would change its vectors are refused. The model is
    checked before anything is written, and the store folder is locked for the run: a
    second run on the same folder waits (``wait=True``) or raises.

    Args:
        paths: Files and folders to index.
        db: The store folder (not used with ``client``).
        collection: The collection name.
        client: A chromadb client to index into instead of the store in ``db``, e.g. a
            Chroma server's (:func:`qwen3_rag.store.connect`). No lock is held then: a
            server has no store folder, so keep two runs on one collection apart yourself.
        model: Qwen3-Embedding hub id or local folder.
        instruction: Query instruction (preset name or sentence), kept with the collection.
        dimensions: Matryoshka size, fixed when the collection is created.
        device: Device for the model (default: CUDA, else MPS, else CPU).
        dtype: Compute dtype (default: float32 on CPU, bfloat16 on CUDA).
        embedding_function: A function built already, instead of the five settings above.
        chunk_size: Most tokens per chunk.
        chunk_overlap: Most tokens shared by neighbouring chunks.
        batch_size: Chunks embedded and written per step.
        wait: Wait for another run on ``db`` to finish, else raise
            :class:`~qwen3_rag.store.DbLockedError`.
        embed: The embed step (default: this process, :func:`embed_locally`), e.g.
            :func:`qwen3_rag.distributed.ray_embed_step` to embed on a Ray cluster.
        on_progress: Called with an :class:`IndexProgress` after each written batch.
        rebuild: Embed everything again with the weights at hand, for a collection whose
            vectors were made by other weights (which is otherwise refused with
            :class:`~qwen3_rag.errors.IdentityMismatchError`). The new vectors go to a
            collection beside it (``<collection>.rebuild``), swapped in by name once
            complete, so the store never holds old and new vectors in one collection; an
            interrupted rebuild resumes on the next run. Only the files this run indexes are
            kept.

    Returns:
        What was done.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If a size is out of range.
        qwen3_rag.store.StoreError: If ``db`` is a file, the collection was made by another
            embedding function, its settings differ from those asked for, or (``wait=False``)
            another run holds the store.
        qwen3_rag.errors.IdentityMismatchError: If the collection's vectors were made by other
            weights or another precision, and ``rebuild`` is false.
        qwen3_rag.ModelLoadError: If the model cannot be found.

    Example:
        >>> from qwen3_rag.indexing import index_paths
        >>> stats = index_paths(
        ...     ["docs"], db="qwen3_db", model="models/Qwen3-Embedding-0.6B"
        ... )  # doctest: +SKIP
        >>> print(stats.chunks_embedded, stats.chunks_stored)  # doctest: +SKIP
        42 42
    """
    from qwen3_rag import store

    check_chunking(chunk_size, chunk_overlap)
    roots = resolve_paths(paths)
    folder = Path(db).expanduser()
    if client is None and folder.exists() and not folder.is_dir():
        raise store.StoreError(f"{os.fspath(db)} is a file, not a folder")
    asked = {"model": model, "instruction": instruction, "dimensions": dimensions}
    clash = [k for k, v in {**asked, "device": device, "dtype": dtype}.items() if v is not None]
    if embedding_function is not None and clash:
        raise TypeError(f"pass either embedding_function or {', '.join(clash)}, not both")
    # Check the settings and the model before creating or locking anything.
    if client is not None:
        stored = store.stored_config(client, collection)
    elif store.has_store(folder):
        stored = store.stored_config(store.open_client(folder), collection)
    else:
        stored = None
    function = embedding_function or store.embedding_function_for(
        stored,
        model=model,
        instruction=instruction,
        dimensions=dimensions,
        device=device,
        dtype=dtype,
    )
    if stored is not None:
        store.check_same_vectors(collection, stored, function)
    _ = function.embedder.dimension  # reads the model config: a missing model fails here

    def waiting() -> None:
        logger.warning(
            "another qwen3-rag index run is writing to %s: waiting for it to finish", os.fspath(db)
        )

    def run(target: Any, exclude: list[Path]) -> IndexStats:
        name = collection
        beside = f"{collection}{REBUILD_SUFFIX}"
        exists = store.find_collection(target, collection) is not None
        if (rebuild and exists) or (not exists and store.find_collection(target, beside)):
            name = beside  # a rebuild, or the swap of an interrupted one still to finish
        try:
            opened = store.open_collection(target, name, embedding_function=function)
        except store.IdentityMismatchError:
            if name != beside:
                raise
            logger.info("dropping %r, a rebuild with other weights", beside)
            target.delete_collection(beside)
            opened = store.open_collection(target, name, embedding_function=function)
        stats = index_collection(
            roots,
            opened.collection,
            function.embedder,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            batch_size=batch_size,
            exclude=exclude,
            embed=embed,
            on_progress=on_progress,
        )
        if name == beside:
            if store.find_collection(target, collection) is not None:
                target.delete_collection(collection)
            opened.collection.modify(name=collection)
            logger.warning("rebuilt collection %r with %s", collection, function.identity)
        return stats

    if client is not None:
        return run(client, [])
    with store.lock_db(folder, wait=wait, on_wait=waiting):
        return run(store.open_client(folder), [folder])
