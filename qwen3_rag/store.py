"""The Chroma store that the indexer writes and ``qwen3-rag query`` reads: open, check, lock, ask.

A qwen3-rag collection remembers the embedding settings its vectors were made with (model,
revision, instruction, dimensions: :class:`~qwen3_rag.chroma.Qwen3EmbeddingFunction`'s
configuration). The functions here open such a collection on any chromadb client (the
embedded :func:`open_client`, or a ``chromadb.HttpClient``), refuse settings that would mix
incomparable vectors, serialise writers of one store folder (:func:`lock_db`), and answer a
question with a vector search followed by Qwen3-Reranker (:func:`search`). Errors are
:class:`StoreError` subclasses (``ValueError``) whose message says what to change.

Needs the ``chroma`` extra (``pip install "qwen3-rag[chroma]"``).

Example:
    >>> from qwen3_rag.store import embedding_function_for
    >>> ef = embedding_function_for(None, model="Qwen/Qwen3-Embedding-0.6B", dimensions=256)
    >>> ef.get_config()["dimensions"], ef.get_config()["instruction"]
    (256, 'web_search')
    >>> from qwen3_rag.store import open_client, open_for_search, search
    >>> client = open_client("./qwen3_db")  # doctest: +SKIP
    >>> docs = open_for_search(client, "docs").collection  # doctest: +SKIP
    >>> search(docs, "How do I install it?", k=3)[0].source  # doctest: +SKIP
    '/home/me/project/README.md'
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_rag._extras import require
from qwen3_rag.errors import IdentityMismatchError, StoreError
from qwen3_rag.identity import ModelIdentity, check_query_model

if TYPE_CHECKING:
    from qwen3_rag.chroma import Qwen3EmbeddingFunction
    from qwen3_rag.reranker import Reranker

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_DB",
    "LOCK_FILE",
    "ConfigMismatchError",
    "DbLockedError",
    "EmptyCollectionError",
    "ForeignCollectionError",
    "IdentityMismatchError",
    "NoCollectionError",
    "NoIndexError",
    "OpenedCollection",
    "SearchHit",
    "StoreError",
    "check_same_vectors",
    "CHROMA_URL_ENV",
    "collection_config",
    "connect",
    "embedding_function_for",
    "find_collection",
    "lock_db",
    "open_client",
    "has_store",
    "open_collection",
    "open_for_search",
    "search",
    "set_query_model",
    "stored_config",
    "stored_identity",
]

logger = logging.getLogger(__name__)

#: The store folder ``qwen3-rag`` uses when none is named.
DEFAULT_DB = "./qwen3_db"
#: The collection ``qwen3-rag`` uses when none is named.
DEFAULT_COLLECTION = "docs"
#: The file in a store folder that an index run holds locked (see :func:`lock_db`).
LOCK_FILE = ".qwen3-rag-index.lock"
#: The environment variable the ``qwen3-rag`` command reads a Chroma server's URL from.
CHROMA_URL_ENV = "QWEN3_RAG_CHROMA_URL"
#: The port of a Chroma server URL that names none (``chroma run``'s default).
CHROMA_PORT = 8000
#: The settings that fix a collection's vectors: indexing with any other value is refused.
VECTOR_SETTINGS = ("model", "revision", "dimensions", "instruction")


class NoIndexError(StoreError):
    """The store folder holds no Chroma store yet."""


class NoCollectionError(StoreError):
    """The store has no collection of that name.

    Attributes:
        available: The names of the collections it has, sorted.
    """

    def __init__(self, message: str, available: list[str]) -> None:
        super().__init__(message)
        self.available = available


class EmptyCollectionError(StoreError):
    """The collection holds no chunks."""


class ForeignCollectionError(StoreError):
    """The collection was made by another embedding function than qwen3-rag's."""


class ConfigMismatchError(StoreError):
    """The settings asked for differ from those the collection's vectors were made with.

    Attributes:
        differences: ``{setting: (stored, asked)}`` for each differing setting.
    """

    def __init__(self, message: str, differences: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.differences = differences


class DbLockedError(StoreError):
    """Another index run holds the store folder and the caller chose not to wait."""


def _chromadb() -> Any:
    return require("chromadb", "chroma", "the Chroma store")


def open_client(db: str | os.PathLike[str]) -> Any:
    """Open (creating the folder if needed) an embedded Chroma store, telemetry off.

    Args:
        db: The store folder.

    Returns:
        A ``chromadb.PersistentClient``.

    Raises:
        StoreError: If ``db`` exists and is a file.
    """
    chromadb = _chromadb()
    from chromadb.config import Settings

    path = Path(db).expanduser().resolve()  # chromadb shares one client per path string
    if path.exists() and not path.is_dir():
        raise StoreError(f"{os.fspath(db)} is a file, not a folder")
    return chromadb.PersistentClient(
        str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


def connect(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    tenant: str | None = None,
    database: str | None = None,
) -> Any:
    """Connect to a Chroma server (``chroma run``, Docker, Chroma Cloud) by its URL.

    The same collections, with the same persisted settings, as in an embedded store:
    :func:`open_collection`, :func:`open_for_search`, :func:`search` and
    :func:`qwen3_rag.indexing.index_paths` (``client=``) take the client returned here. A
    server has no store folder, so nothing here holds :func:`lock_db`: keep two index runs
    on one collection apart yourself.

    Args:
        url: ``http://host:port`` or ``https://host[:port]``; without a port, 443 for
            ``https``, else 8000 (``chroma run``'s default).
        headers: Sent with every request (e.g. ``{"x-chroma-token": ...}`` for a server
            with token auth).
        tenant: The tenant (default: chromadb's default tenant).
        database: The database (default: chromadb's default database).

    Returns:
        A ``chromadb.HttpClient``, telemetry off.

    Raises:
        StoreError: If the URL is malformed or no Chroma server answers there.

    Example:
        >>> from qwen3_rag.store import connect, open_for_search
        >>> client = connect("http://localhost:8000")  # doctest: +SKIP
        >>> docs = open_for_search(client, "docs").collection  # doctest: +SKIP
    """
    from urllib.parse import urlsplit

    chromadb = _chromadb()
    from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings

    parts = urlsplit(url.strip() if "://" in url else f"http://{url.strip()}")
    try:
        port = parts.port
    except ValueError:
        raise StoreError(f"{url!r} is not a Chroma server URL (http://host:port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise StoreError(f"{url!r} is not a Chroma server URL (http://host:port)")
    ssl = parts.scheme == "https"
    try:
        return chromadb.HttpClient(
            host=parts.hostname,
            port=port if port is not None else 443 if ssl else CHROMA_PORT,
            ssl=ssl,
            headers=dict(headers or {}),
            settings=Settings(anonymized_telemetry=False),
            tenant=tenant or DEFAULT_TENANT,
            database=database or DEFAULT_DATABASE,
        )
    except ValueError as exc:  # chromadb says "Could not connect to a Chroma server ..."
        raise StoreError(f"no Chroma server answers at {url}: {exc}") from exc


def has_store(db: str | os.PathLike[str]) -> bool:
    """Whether ``db`` holds an embedded Chroma store (without creating anything)."""
    return (Path(db).expanduser() / "chroma.sqlite3").is_file()


def collection_config(collection: Any) -> dict[str, Any]:
    """The qwen3-rag embedding settings persisted with ``collection``.

    Raises:
        ForeignCollectionError: If another embedding function made the collection.
    """
    from qwen3_rag.chroma import EMBEDDING_FUNCTION_NAME

    persisted = (collection.configuration_json or {}).get("embedding_function") or {}
    if persisted.get("name") != EMBEDDING_FUNCTION_NAME:
        raise ForeignCollectionError(
            f"collection {collection.name!r} was not made by qwen3-rag (embedding function "
            f"{persisted.get('name')!r}); use another collection"
        )
    return dict(persisted.get("config") or {})


def embedding_function_for(
    config: Mapping[str, Any] | None,
    *,
    model: str | None = None,
    instruction: str | None = None,
    dimensions: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    base_url: str | None = None,
    query_model: str | None = None,
    precision: str | None = None,
    engine: str | None = None,
    quantize: str | None = None,
) -> Qwen3EmbeddingFunction:
    """The embedding function for a collection: each setting as asked, else as persisted.

    Args:
        config: The collection's persisted settings (:func:`collection_config`), or ``None``
            for a new collection.
        model: Hub id or folder; ``None`` takes the persisted one, else
            :data:`qwen3_rag.DEFAULT_EMBEDDING_MODEL`.
        instruction: Query instruction (preset name or sentence); ``None`` takes the
            persisted one, else the default preset.
        dimensions: Matryoshka size; ``None`` takes the persisted one, else the full size.
        device: Device for the model (never persisted).
        dtype: Compute dtype (never persisted).
        base_url: A model server to embed with (see :mod:`qwen3_rag.remote`), or ``None``
            for local weights. Taken as given, not from the collection: its vectors are the
            same either way. With a server, the key's variable name is the persisted one.
        query_model: The model that embeds questions (see :class:`~qwen3_rag.Embedder`);
            ``None`` takes the persisted one (:func:`set_query_model`), else ``model``.
        precision: ``"exact"`` or ``"fast"`` (see :class:`~qwen3_rag.Embedder`).
        engine: ``"torch"`` or ``"onnx"``.
        quantize: ``None`` or ``"int8"``. When none of ``dtype``, ``precision``, ``engine``
            and ``quantize`` is given, the path the collection's recorded identity was
            computed with is used (:meth:`~qwen3_rag.identity.ModelIdentity.settings`), so
            that a collection indexed with ``precision="fast"`` is queried the same way.

    Returns:
        A :class:`~qwen3_rag.chroma.Qwen3EmbeddingFunction` (nothing loaded yet).

    Example:
        >>> stored = {"model": "/models/emb", "instruction": "code_search", "dimensions": 128}
        >>> ef = embedding_function_for(stored, device="cpu")
        >>> ef.get_config()["instruction"], ef.get_config()["dimensions"]
        ('code_search', 128)
    """
    from qwen3_rag import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.chroma import Qwen3EmbeddingFunction

    persisted = dict(config or {})
    merged: dict[str, Any] = {
        "model": model or persisted.get("model") or DEFAULT_EMBEDDING_MODEL,
        "revision": persisted.get("revision"),
        "instruction": instruction
        if instruction is not None
        else persisted.get("instruction", "web_search"),
        "instruction_symmetric": False
        if instruction is not None
        else persisted.get("instruction_symmetric", False),
        "dimensions": dimensions if dimensions is not None else persisted.get("dimensions"),
    }
    # The persisted form of an instruction goes back through the function's own reader.
    preset = Qwen3EmbeddingFunction.build_from_config(merged).embedder.preset
    path: dict[str, Any] = {
        k: v
        for k, v in {
            "dtype": dtype,
            "precision": precision,
            "engine": engine,
            "quantize": quantize,
        }.items()
        if v is not None
    }
    recorded = stored_identity(config)
    if not path and recorded is not None and base_url is None:
        path = dict(recorded.settings())
    return Qwen3EmbeddingFunction(
        merged["model"],
        instruction=preset if preset is not None else "",  # None would mean the default
        dimensions=merged["dimensions"],
        revision=merged["revision"],
        device=device,
        base_url=base_url,
        api_key_env=persisted.get("api_key_env") if base_url is not None else None,
        query_model=query_model or persisted.get("query_model"),
        **path,
    )


def check_same_vectors(
    name: str, stored: Mapping[str, Any], function: Qwen3EmbeddingFunction
) -> None:
    """Refuse a function whose vectors would not be comparable with the stored ones.

    Raises:
        ConfigMismatchError: If the model, revision, dimensions or instruction differ.
    """
    wanted = function.get_config()
    differences = {
        key: (stored.get(key), wanted[key])
        for key in VECTOR_SETTINGS
        if stored.get(key) != wanted[key]
    }
    if differences:
        listed = "; ".join(
            f"{k} {old!r} (asked for {new!r})" for k, (old, new) in differences.items()
        )
        raise ConfigMismatchError(
            f"collection {name!r} was indexed with {listed}: its vectors would not match",
            differences,
        )


@dataclass(frozen=True)
class OpenedCollection:
    """A qwen3-rag collection, opened with the embedding function its vectors need.

    Attributes:
        collection: The chromadb collection.
        embedding_function: The function (its ``embedder`` embeds documents and queries).
        created: Whether this call created the collection.
    """

    collection: Any
    embedding_function: Qwen3EmbeddingFunction
    created: bool


def open_collection(
    client: Any,
    name: str = DEFAULT_COLLECTION,
    *,
    model: str | None = None,
    instruction: str | None = None,
    dimensions: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    embedding_function: Qwen3EmbeddingFunction | None = None,
) -> OpenedCollection:
    """Open a collection for indexing: created when missing, refused when settings differ.

    Each setting left ``None`` is taken from the collection (or the default, for a new one);
    any setting that fixes the vectors (model, revision, dimensions, instruction) must match
    the collection's. The model's configuration is read before anything is created, so a
    model that cannot be found fails first and leaves no empty collection behind.

    Args:
        client: Any chromadb client (``open_client(db)``, ``chromadb.HttpClient(...)``).
        name: The collection.
        model: Embedding model hub id or folder.
        instruction: Query instruction (preset name or sentence).
        dimensions: Matryoshka size.
        device: Device for the model.
        dtype: Compute dtype.
        embedding_function: A function built already (e.g. by :func:`embedding_function_for`,
            or with other ``Embedder`` options), instead of the five settings above.

    Returns:
        The collection, its embedding function, and whether it was created.

    Raises:
        ForeignCollectionError: If another embedding function made the collection.
        ConfigMismatchError: If a setting asked for differs from the collection's.
        qwen3_rag.ModelLoadError: If the model cannot be found.
    """
    from qwen3_rag.chroma import check_identity

    existing = find_collection(client, name)
    stored = collection_config(existing) if existing is not None else None
    function = _function(stored, embedding_function, model, instruction, dimensions, device, dtype)
    if stored is not None:
        check_same_vectors(name, stored, function)
    _ = function.embedder.dimension  # reads the model config; checks dimensions against it
    now = function.embedder.identity()
    recorded = stored_identity(stored)
    if recorded is not None:
        check_identity(name, recorded, now, function.embedder.model, adding=True)
    function.identity = now  # persisted with a new collection
    collection = client.get_or_create_collection(name, embedding_function=function)
    if existing is None:
        logger.info("created collection %r", name)
    elif recorded is None:
        collection.modify(configuration={"embedding_function": function})
        logger.warning(
            "collection %r had no record of the weights its vectors were made with (indexed "
            "by qwen3-rag 0.2): recorded %s; from now on other weights are refused",
            name,
            now,
        )
    return OpenedCollection(collection, function, existing is None)


def open_for_search(
    client: Any,
    name: str = DEFAULT_COLLECTION,
    *,
    model: str | None = None,
    instruction: str | None = None,
    dimensions: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    embedding_function: Qwen3EmbeddingFunction | None = None,
) -> OpenedCollection:
    """Open an existing, non-empty collection for questions.

    Settings left ``None`` are the collection's. A different ``instruction`` is allowed
    (it changes only how questions are embedded); a different model is allowed with a
    logged warning (its vectors are rarely comparable); different ``dimensions`` are refused.

    Args:
        client: Any chromadb client.
        name: The collection.
        model: Embedding model hub id or folder.
        instruction: Query instruction (preset name or sentence).
        dimensions: Matryoshka size.
        device: Device for the model.
        dtype: Compute dtype.
        embedding_function: A function built already, instead of the five settings above.

    Returns:
        The collection and the embedding function its questions go through.

    Raises:
        NoCollectionError: If there is no such collection.
        ForeignCollectionError: If another embedding function made the collection.
        EmptyCollectionError: If it holds no chunks.
        ConfigMismatchError: If ``dimensions`` differ from the collection's.
        qwen3_rag.ModelLoadError: If the model cannot be found.
    """
    from qwen3_rag.chroma import check_identity

    existing = find_collection(client, name)
    if existing is None:
        names = sorted(c.name for c in client.list_collections())
        have = f" (it has: {', '.join(names)})" if names else ""
        raise NoCollectionError(f"no collection {name!r}{have}", names)
    stored = collection_config(existing)
    if existing.count() == 0:
        raise EmptyCollectionError(f"collection {name!r} is empty")
    function = _function(stored, embedding_function, model, instruction, dimensions, device, dtype)
    wanted = function.get_config()
    if wanted["dimensions"] != stored.get("dimensions"):
        raise ConfigMismatchError(
            f"collection {name!r} was indexed with dimensions {stored.get('dimensions')!r} "
            f"(asked for {wanted['dimensions']!r})",
            {"dimensions": (stored.get("dimensions"), wanted["dimensions"])},
        )
    for key in ("model", "revision"):
        if wanted[key] != stored.get(key):
            logger.warning(
                "collection %r was indexed with %s %s; querying with %s",
                name,
                key,
                stored.get(key),
                wanted[key],
            )
    _ = function.embedder.dimension  # a model that cannot be found fails here
    recorded = stored_identity(stored)
    same_model = (wanted["model"], wanted["revision"]) == (
        stored.get("model"),
        stored.get("revision"),
    )
    if recorded is None:
        logger.warning(
            "collection %r has no record of the weights its vectors were made with (indexed "
            "by qwen3-rag 0.2): the next qwen3-rag index records it; until then a change of "
            "weights cannot be detected",
            name,
        )
    elif same_model and function.embedder.base_url is None:
        check_identity(name, recorded, function.embedder.identity(), wanted["model"], adding=False)
        function.identity = recorded
    return OpenedCollection(
        client.get_collection(name, embedding_function=function), function, False
    )


def _function(
    stored: Mapping[str, Any] | None,
    given: Qwen3EmbeddingFunction | None,
    model: str | None,
    instruction: str | None,
    dimensions: int | None,
    device: str | None,
    dtype: str | None,
) -> Qwen3EmbeddingFunction:
    if given is None:
        return embedding_function_for(
            stored,
            model=model,
            instruction=instruction,
            dimensions=dimensions,
            device=device,
            dtype=dtype,
        )
    asked = {"model": model, "instruction": instruction, "dimensions": dimensions}
    clash = [k for k, v in {**asked, "device": device, "dtype": dtype}.items() if v is not None]
    if clash:
        raise TypeError(f"pass either embedding_function or {', '.join(clash)}, not both")
    return given


def set_query_model(client: Any, name: str, query_model: str | None) -> None:
    """Record the model that embeds a collection's questions, with nothing re-embedded.

    A query-side adaptation (``qwen3-rag adapt --queries-only``) of the model that embedded
    the collection's documents: from then on ``qwen3-rag query``, :func:`open_for_search` and
    the Chroma embedding function embed questions with it, and ``qwen3-rag index`` still
    embeds documents with the collection's model.

    Args:
        client: Any chromadb client.
        name: The collection.
        query_model: Hub id or folder of the query model; ``None`` goes back to the
            collection's own model.

    Raises:
        NoCollectionError: If there is no such collection.
        StoreError: If the collection records no model identity yet (run ``qwen3-rag index``
            once).
        qwen3_rag.errors.QueryModelError: If the query model was not adapted from the weights
            that embedded the collection.
    """
    from qwen3_rag.loading import ModelSource

    existing = find_collection(client, name)
    if existing is None:
        names = sorted(c.name for c in client.list_collections())
        raise NoCollectionError(f"no collection {name!r}", names)
    stored = collection_config(existing)
    recorded = stored_identity(stored)
    if recorded is None:
        raise StoreError(
            f"collection {name!r} records no identity of its model yet: run qwen3-rag index "
            f"on it once (it records it), then set the query model"
        )
    if query_model is not None:
        check_query_model(recorded, str(stored.get("model")), ModelSource(query_model))
    function = embedding_function_for({**stored, "query_model": None}, query_model=query_model)
    function.identity = recorded
    existing.modify(configuration={"embedding_function": function})
    logger.info("collection %r: questions embedded by %s", name, query_model or stored["model"])


def stored_identity(config: Mapping[str, Any] | None) -> ModelIdentity | None:
    """The :class:`~qwen3_rag.identity.ModelIdentity` a collection's settings record, if any.

    Collections indexed by qwen3-rag 0.2 record none.
    """
    data = (config or {}).get("identity")
    return None if data is None else ModelIdentity.from_dict(data)


def stored_config(client: Any, name: str) -> dict[str, Any] | None:
    """The persisted settings of collection ``name`` (:func:`collection_config`), or ``None``.

    Raises:
        ForeignCollectionError: If another embedding function made the collection.
    """
    existing = find_collection(client, name)
    return None if existing is None else collection_config(existing)


def find_collection(client: Any, name: str) -> Any | None:
    """The collection ``name`` of ``client`` (no embedding function attached), or ``None``."""
    if name not in {c.name for c in client.list_collections()}:
        return None
    return client.get_collection(name)


@contextlib.contextmanager
def lock_db(
    db: str | os.PathLike[str],
    *,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Hold the store folder's writer lock: one index run per folder at a time.

    The lock is an OS file lock on ``db/.qwen3-rag-index.lock`` (``flock`` on Unix, via the
    ``filelock`` package, which also covers Windows). The operating system releases it when
    the holder exits in any way, ``kill -9`` included, so a stale lock cannot outlive its
    process. Creates the folder if needed.

    Args:
        db: The store folder.
        wait: Wait for the holder to finish (the default), else raise at once.
        on_wait: Called once, before waiting, when another process holds the lock.

    Raises:
        DbLockedError: If another process holds the lock and ``wait`` is false.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as db, lock_db(db):
        ...     pass  # index into db here
    """
    from filelock import FileLock, Timeout

    folder = Path(db).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if not wait:
            raise DbLockedError(
                f"another qwen3-rag index run is writing to {os.fspath(db)}"
            ) from None
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class SearchHit:
    """One answer of :func:`search`.

    Attributes:
        id: The chunk id (``"{source}#{chunk}"``).
        text: The chunk text.
        metadata: The chunk metadata (``source``, ``chunk``, ``start_line`` ...).
        vector_score: Cosine similarity of the instructed query and the chunk.
        rerank_score: Qwen3-Reranker's P(yes), or ``None`` without a reranker.
        window: With a reranker reading long documents by windows
            (``long_documents="max"``), the ``(start, end)`` characters of ``text`` its best
            window covers; else ``None``.
    """

    id: str
    text: str
    metadata: dict[str, Any]
    vector_score: float
    rerank_score: float | None
    window: tuple[int, int] | None = None

    @property
    def source(self) -> str:
        """The file the chunk comes from."""
        return str(self.metadata.get("source", ""))


def search(
    collection: Any,
    question: str,
    *,
    k: int = 5,
    fetch_k: int = 30,
    reranker: Reranker | None = None,
) -> list[SearchHit]:
    """Vector search for ``question``'s nearest chunks, then rerank them.

    Args:
        collection: A qwen3-rag collection opened with its embedding function (which
            embeds the question with the query instruction).
        question: The question or search query.
        k: Hits to return.
        fetch_k: Vector-search candidates handed to the reranker (at least ``k``).
        reranker: Scores the candidates; ``None`` keeps the vector-search order.

    Returns:
        At most ``k`` hits, best first.

    Raises:
        ValueError: If the question is empty.
        EmptyCollectionError: If the collection holds no chunks.
    """
    question = question.strip()
    if not question:
        raise ValueError("the question is empty")
    count = collection.count()
    if count == 0:
        raise EmptyCollectionError(f"collection {collection.name!r} is empty")
    fetch = min(count, k if reranker is None else max(fetch_k, k))
    found = collection.query(
        query_texts=[question], n_results=fetch, include=["documents", "metadatas", "distances"]
    )
    ids: list[str] = found["ids"][0]
    docs = [d or "" for d in (found["documents"] or [[]])[0]]
    metas = [dict(m or {}) for m in (found["metadatas"] or [[]])[0]]
    cosine = [1.0 - float(d) for d in (found["distances"] or [[]])[0]]
    if reranker is None:
        return [
            SearchHit(ids[i], docs[i], metas[i], cosine[i], None) for i in range(min(len(ids), k))
        ]
    return [
        SearchHit(ids[r[0]], docs[r[0]], metas[r[0]], cosine[r[0]], float(r[1]), r.window)
        for r in reranker.rank(question, docs, top_n=k)
    ]
