"""The incremental, interrupt-safe indexer: text files into a Chroma collection.

:func:`index_paths` is what ``qwen3-rag index`` runs, callable from a script or a notebook.
It goes through six stages, each a function here that can be used (or replaced) alone:

1. **walk** (:func:`walk`): the text files under the paths; hidden files and folders, and
   ``__pycache__``/``node_modules``/virtual environments, are skipped.
2. **read** (:func:`read_text`): a file's UTF-8 text; a binary file (a NUL byte, or not
   UTF-8) reads as ``None`` and is skipped.
3. **chunk** (:class:`Chunker`): token-sized chunks, by ``semantic-text-splitter`` counting
   the embedding model's own tokens, each with its exact position in the file.
4. **plan** (:func:`plan_file`): what to write and what to delete per file, from the file's
   content hash and the chunks already stored.
5. **apply**: embed the chunks to write, upsert them, then delete the file's leftovers.
6. **stats**: an :class:`IndexStats` of what was done.

Re-running is incremental and safe to interrupt at any point:

* every chunk has a deterministic id (``"{source}#{index}"``) and carries its file's content
  hash and chunk count in its metadata, so ``upsert`` can never duplicate a chunk;
* a file whose stored chunks all carry its current hash, and cover every index, is skipped;
* a changed file's new chunks are upserted first and its leftover chunks deleted afterwards,
  so an interrupted run leaves old-or-new chunks (never none, never twice) and the next run
  redoes only the chunks that are missing or stale;
* chunks of files that vanished from under the indexed paths are deleted.

Two runs on one store folder never interleave: :func:`index_paths` holds the folder's lock
(:func:`qwen3_rag.store.lock_db`) and a second run waits for the first.

The stages are open for other engines: :func:`index_collection` takes any chromadb collection
(an embedded store or a ``chromadb.HttpClient`` one) and an ``embed`` step (any callable that
turns an iterable of text batches into one vector array per batch, in order).

Needs the ``chroma`` extra (``pip install "qwen3-rag[chroma]"``).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from qwen3_rag.indexing import walk, read_text
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = (Path(folder) / "a.md").write_text("# Notes\\n")
    ...     _ = (Path(folder) / ".hidden").write_text("secret")
    ...     [(p.name, read_text(p)) for p in walk([folder])]
    [('a.md', '# Notes\\n')]
    >>> from qwen3_rag.indexing import index_paths
    >>> stats = index_paths(["docs", "README.md"], db="qwen3_db")  # doctest: +SKIP
    >>> stats.chunks_embedded, stats.files_unchanged  # doctest: +SKIP
    (42, 0)
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from qwen3_rag.store import DEFAULT_COLLECTION, DEFAULT_DB

if TYPE_CHECKING:
    from qwen3_rag import Embedder
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

__all__ = [
    "Chunk",
    "Chunker",
    "EmbedStep",
    "FilePlan",
    "IndexProgress",
    "IndexStats",
    "embed_locally",
    "file_hash",
    "index_collection",
    "index_paths",
    "plan_file",
    "read_text",
    "stored_chunks",
    "walk",
]

logger = logging.getLogger(__name__)

#: Folders never walked into (besides hidden ones).
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
#: Bytes read to sniff a NUL byte (a binary file).
SNIFF_BYTES = 8192
#: Records read, or ids deleted, per store call.
PAGE = 1000
#: Names the chunking method in every file hash: a new method re-chunks every file.
CHUNKER_ID = "semantic-text-splitter/1"

StoredRecords = dict[str, list[tuple[str, dict[str, Any]]]]


# -- walk and read ---------------------------------------------------------------------------


def walk(
    paths: Iterable[str | os.PathLike[str]], *, exclude: Iterable[str | os.PathLike[str]] = ()
) -> list[Path]:
    """The files to index under ``paths``, absolute and sorted.

    A path that is a file is taken as it is; folders are walked, skipping hidden files and
    folders (``.git``, ``.venv`` ...), :data:`SKIP_DIRS` and the folders in ``exclude``.

    Args:
        paths: Files and folders.
        exclude: Folders not to walk into (e.g. the store folder itself).

    Returns:
        Absolute file paths, sorted, each once.

    Raises:
        FileNotFoundError: If a path does not exist.
    """
    roots = resolve_paths(paths)
    skip = {Path(p).expanduser().resolve() for p in exclude}
    files: set[Path] = set()
    for root in roots:
        if root.is_file():
            files.add(root)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and d not in SKIP_DIRS and (here / d) not in skip
            )
            files.update(here / f for f in filenames if not f.startswith("."))
    return sorted(files)


def resolve_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Absolute paths of existing files or folders.

    Raises:
        TypeError: If ``paths`` is a single string.
        FileNotFoundError: If a path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        raise TypeError("paths must be a list of files or folders, not a single path")
    roots: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {os.fspath(p)}")
        roots.append(path.resolve())
    return roots


def read_text(path: str | os.PathLike[str]) -> str | None:
    """The file's text, or ``None`` for a binary (NUL byte or not UTF-8) file.

    Raises:
        OSError: If the file cannot be read.
    """
    data = Path(path).read_bytes()
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- chunk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """One chunk of a file, as stored.

    Attributes:
        id: ``"{source}#{index}"``.
        text: The chunk's text, exactly ``file_text[start_char:start_char + len(text)]``.
        metadata: ``source``, ``chunk`` (index), ``n_chunks``, ``file_hash``, ``start_char``,
            ``start_line`` (1-based).
    """

    id: str
    text: str
    metadata: dict[str, Any]


def chunk_id(source: str, index: int) -> str:
    """The id of chunk ``index`` of ``source``: ``"{source}#{index}"``."""
    return f"{source}#{index}"


class Chunker:
    """Token-sized chunks that end at the largest boundary that fits.

    Built on ``semantic-text-splitter``'s ``TextSplitter`` sized by a Hugging Face
    ``tokenizers.Tokenizer`` (the embedding model's own): each chunk is at most
    ``chunk_size`` tokens and is made of the largest units that fit: paragraphs (blank
    lines), then lines, sentences, words. Neighbouring chunks share at most
    ``chunk_overlap`` tokens of whole units. ``python -m benchmarks.chunking`` compares it
    with the other splitters.

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` (see :func:`qwen3_rag.loading.load_fast_tokenizer`).
        chunk_size: Most tokens per chunk.
        chunk_overlap: Most tokens shared by neighbouring chunks (``< chunk_size``).

    Raises:
        ValueError: If the sizes are out of range.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> words = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        >>> words.pre_tokenizer = pre_tokenizers.Whitespace()
        >>> chunker = Chunker(words, chunk_size=4, chunk_overlap=0)
        >>> [c.text for c in chunker.chunks("a.md", "One two.\\n\\nThree four five.\\n", "h")]
        ['One two.', 'Three four five.']
        >>> second = chunker.chunks("a.md", "One two.\\n\\nThree four five.\\n", "h")[1]
        >>> second.id, second.metadata["start_char"], second.metadata["start_line"]
        ('a.md#1', 10, 3)
    """

    def __init__(self, tokenizer: Any, chunk_size: int = 512, chunk_overlap: int = 64) -> None:
        check_chunking(chunk_size, chunk_overlap)
        try:
            from semantic_text_splitter import TextSplitter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'chunking needs semantic-text-splitter: pip install "qwen3-rag[chroma]"'
            ) from exc
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self._splitter = TextSplitter.from_huggingface_tokenizer(
            tokenizer, chunk_size, chunk_overlap
        )

    def __repr__(self) -> str:
        return f"Chunker(chunk_size={self.chunk_size}, chunk_overlap={self.chunk_overlap})"

    @property
    def settings(self) -> str:
        """What fixes the chunks besides the text (part of every :func:`file_hash`)."""
        return f"{CHUNKER_ID}:{self.chunk_size}:{self.chunk_overlap}"

    def split(self, text: str) -> list[tuple[int, str]]:
        """``(start_char, chunk_text)`` pairs; blank text gives none."""
        return [(int(start), piece) for start, piece in self._splitter.chunk_indices(text)]

    def chunks(self, source: str, text: str, file_hash: str) -> list[Chunk]:
        """The chunks of ``text`` (the file ``source`` with hash ``file_hash``), as stored."""
        pieces = self.split(text)
        out: list[Chunk] = []
        line, seen = 1, 0
        for i, (start, piece) in enumerate(pieces):
            line += text.count("\n", seen, start)
            seen = start
            meta = {
                "source": source,
                "chunk": i,
                "n_chunks": len(pieces),
                "file_hash": file_hash,
                "start_char": start,
                "start_line": line,
            }
            out.append(Chunk(chunk_id(source, i), piece, meta))
        return out


def check_chunking(chunk_size: int, chunk_overlap: int) -> None:
    """Check the chunk sizes.

    Raises:
        ValueError: If ``chunk_size < 1``, ``chunk_overlap < 0`` or the overlap is not
            smaller than the size.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    if isinstance(chunk_overlap, bool) or not isinstance(chunk_overlap, int) or chunk_overlap < 0:
        raise ValueError(f"chunk_overlap must be an int >= 0, got {chunk_overlap!r}")
    if chunk_overlap >= chunk_size:
        raise ValueError(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )


def file_hash(text: str, settings: str) -> str:
    """The hash stored with each chunk of a file: its text and the chunker settings."""
    h = hashlib.sha256(f"{settings}\0".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


# -- plan ------------------------------------------------------------------------------------


@dataclass
class FilePlan:
    """What one file needs: chunks to write, then leftover ids to delete.

    The leftovers are deleted only once every chunk in ``write`` is stored, so an
    interrupted run leaves the file's old or new chunks, never neither.

    Attributes:
        source: The file's absolute path.
        status: ``"changed"`` (new or changed text), ``"unchanged"``, ``"binary"``,
            ``"unreadable"`` (kept as it was) or ``"deleted"`` (gone from under the paths).
        write: Chunks to embed and upsert.
        stale: Ids of stored chunks to delete afterwards.
    """

    source: str
    status: Literal["changed", "unchanged", "binary", "unreadable", "deleted"]
    write: list[Chunk] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def stored_chunks(collection: Any) -> StoredRecords:
    """Every stored chunk's id and metadata, by source file (read page by page)."""
    out: StoredRecords = {}
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        for id_, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
            meta = dict(meta or {})
            out.setdefault(str(meta.get("source", "")), []).append((id_, meta))
        if len(page["ids"]) < PAGE:
            return out
        offset += PAGE


def plan_file(
    source: str,
    text: str | None,
    records: Sequence[tuple[str, dict[str, Any]]],
    chunker: Callable[[], Chunker],
) -> FilePlan:
    """Decide what one file needs, from its text and its stored chunks.

    Args:
        source: The file's absolute path (the ``source`` of its chunks).
        text: Its text, or ``None`` for a binary file.
        records: Its stored chunks: ``(id, metadata)`` pairs.
        chunker: Returns the chunker (called only when the file must be chunked).

    Returns:
        The file's plan. Chunks already stored with the file's current hash (by an
        interrupted run) are not written again.
    """
    if text is None:
        return FilePlan(source, "binary", stale=[i for i, _ in records])
    split = chunker()
    digest = file_hash(text, split.settings)
    current = {int(m["chunk"]): i for i, m in records if m.get("file_hash") == digest}
    total = next((int(m["n_chunks"]) for _, m in records if m.get("file_hash") == digest), -1)
    if total >= 0 and all(k in current for k in range(total)):
        keep = {chunk_id(source, k) for k in range(total)}
        return FilePlan(source, "unchanged", stale=[i for i, _ in records if i not in keep])
    chunks = split.chunks(source, text, digest)
    keep = {c.id for c in chunks}
    done = set(current.values())
    return FilePlan(
        source,
        "changed",
        write=[c for c in chunks if c.id not in done],
        stale=[i for i, _ in records if i not in keep],
    )


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
        chunks_embedded: Chunks embedded and written.
        chunks_removed: Stale chunks deleted.
        chunks_stored: Chunks in the collection at the end.
        seconds: Wall time of the run.
    """

    files: int = 0
    files_unchanged: int = 0
    files_changed: int = 0
    files_binary: int = 0
    files_unreadable: int = 0
    files_deleted: int = 0
    chunks_embedded: int = 0
    chunks_removed: int = 0
    chunks_stored: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class IndexProgress:
    """Progress of an index run, handed to ``on_progress`` after each written batch.

    Attributes:
        chunks_done: Chunks written so far.
        chunks_total: Chunks to write in this run.
        files_total: Files found under the paths.
    """

    chunks_done: int
    chunks_total: int
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

    Args:
        paths: Files and folders.
        collection: A chromadb collection made by qwen3-rag, on any client.
        embedder: The collection's embedder: its tokenizer sizes the chunks and, unless
            ``embed`` is given, it embeds them.
        chunk_size: Most tokens per chunk.
        chunk_overlap: Most tokens shared by neighbouring chunks.
        batch_size: Chunks embedded and written per step.
        exclude: Folders not to walk into.
        embed: The embed step; default :func:`embed_locally` over ``embedder``.
        on_progress: Called with an :class:`IndexProgress` after each written batch.

    Returns:
        What was done.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If a size is out of range.
    """
    from qwen3_rag.loading import load_fast_tokenizer

    started = time.perf_counter()
    check_chunking(chunk_size, chunk_overlap)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    roots = resolve_paths(paths)
    files = walk(roots, exclude=exclude)
    if not files:
        logger.warning("no files found under %s", ", ".join(map(str, roots)))
    stored = stored_chunks(collection)

    chunkers: list[Chunker] = []

    def chunker() -> Chunker:
        if not chunkers:
            tokenizer = load_fast_tokenizer(embedder.source)
            chunkers.append(Chunker(tokenizer, chunk_size, chunk_overlap))
        return chunkers[0]

    stats = IndexStats()
    plans = _plan(files, roots, stored, chunker, stats)
    _apply(
        plans,
        collection,
        embed or embed_locally(embedder),
        batch_size,
        stats,
        on_progress,
        len(files),
    )
    stats.chunks_stored = collection.count()
    stats.seconds = time.perf_counter() - started
    return stats


def _plan(
    files: list[Path],
    roots: list[Path],
    stored: StoredRecords,
    chunker: Callable[[], Chunker],
    stats: IndexStats,
) -> list[FilePlan]:
    plans: list[FilePlan] = []
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
        if text is None:
            logger.info("skipped binary file %s", path)
        plan = plan_file(source, text, stored.get(source, []), chunker)
        plans.append(plan)
        if plan.status == "binary":
            stats.files_binary += 1
            continue
        stats.files += 1
        if plan.status == "unchanged":
            stats.files_unchanged += 1
        else:
            stats.files_changed += 1
    for source, records in stored.items():
        if source not in seen and _under(source, roots):
            logger.info("removing chunks of deleted file %s", source)
            plans.append(FilePlan(source, "deleted", stale=[i for i, _ in records]))
            stats.files_deleted += 1
    return plans


def _under(source: str, roots: list[Path]) -> bool:
    p = Path(source)
    return any(p == r or r in p.parents for r in roots)


def _delete(collection: Any, ids: list[str], stats: IndexStats) -> None:
    for start in range(0, len(ids), PAGE):
        collection.delete(ids=ids[start : start + PAGE])
    stats.chunks_removed += len(ids)


def _apply(
    plans: list[FilePlan],
    collection: Any,
    embed: EmbedStep,
    batch_size: int,
    stats: IndexStats,
    on_progress: Callable[[IndexProgress], None] | None,
    files_total: int,
) -> None:
    # Files with nothing to write: drop their stale chunks now.
    for plan in plans:
        if not plan.write and plan.stale:
            _delete(collection, plan.stale, stats)
    queue = [(plan, chunk) for plan in plans for chunk in plan.write]
    batches = [queue[i : i + batch_size] for i in range(0, len(queue), batch_size)]
    left = {id(plan): len(plan.write) for plan in plans if plan.write}
    vectors = embed([c.text for _, c in batch] for batch in batches)
    for batch, batch_vectors in zip(batches, vectors, strict=True):
        collection.upsert(
            ids=[c.id for _, c in batch],
            documents=[c.text for _, c in batch],
            metadatas=[c.metadata for _, c in batch],
            embeddings=np.asarray(batch_vectors, dtype=np.float32),
        )
        stats.chunks_embedded += len(batch)
        # A file's leftover chunks go only once all its new chunks are written.
        for plan, _ in batch:
            left[id(plan)] -= 1
            if left[id(plan)] == 0 and plan.stale:
                _delete(collection, plan.stale, stats)
        if on_progress is not None:
            on_progress(IndexProgress(stats.chunks_embedded, len(queue), files_total))


# -- the whole run ---------------------------------------------------------------------------


def index_paths(
    paths: Iterable[str | os.PathLike[str]],
    *,
    db: str | os.PathLike[str] = DEFAULT_DB,
    collection: str = DEFAULT_COLLECTION,
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
    on_progress: Callable[[IndexProgress], None] | None = None,
) -> IndexStats:
    """Index files and folders into a collection of an embedded Chroma store.

    Creates the store folder and the collection when missing. The collection remembers its
    embedding model, instruction and dimensions; settings left ``None`` are taken from it
    (or the defaults), and settings that would change its vectors are refused. The model is
    checked before anything is written, and the store folder is locked for the run: a
    second run on the same folder waits (``wait=True``) or raises.

    Args:
        paths: Files and folders to index.
        db: The store folder.
        collection: The collection name.
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
        on_progress: Called with an :class:`IndexProgress` after each written batch.

    Returns:
        What was done.

    Raises:
        FileNotFoundError: If a path does not exist.
        ValueError: If a size is out of range.
        qwen3_rag.store.StoreError: If ``db`` is a file, the collection was made by another
            embedding function, its settings differ from those asked for, or (``wait=False``)
            another run holds the store.
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
    if folder.exists() and not folder.is_dir():
        raise store.StoreError(f"{os.fspath(db)} is a file, not a folder")
    asked = {"model": model, "instruction": instruction, "dimensions": dimensions}
    clash = [k for k, v in {**asked, "device": device, "dtype": dtype}.items() if v is not None]
    if embedding_function is not None and clash:
        raise TypeError(f"pass either embedding_function or {', '.join(clash)}, not both")
    # Check the settings and the model before creating or locking anything.
    stored = (
        store.stored_config(store.open_client(folder), collection)
        if store.has_store(folder)
        else None
    )
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

    with store.lock_db(folder, wait=wait, on_wait=waiting):
        opened = store.open_collection(
            store.open_client(folder), collection, embedding_function=function
        )
        return index_collection(
            roots,
            opened.collection,
            function.embedder,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            batch_size=batch_size,
            exclude=[folder],
            on_progress=on_progress,
        )
