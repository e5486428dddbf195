"""The ``qwen3-rag`` command: index a folder into an embedded Chroma store, then ask it.

``qwen3-rag index PATH...`` walks text files, splits them into token-sized chunks (llama-index's
``SentenceSplitter`` sized by the embedding model's own tokenizer), embeds them with
Qwen3-Embedding and upserts them into a Chroma collection persisted in a folder.
``qwen3-rag query "question"`` runs a vector search and reranks the candidates with
Qwen3-Reranker. No server runs: Chroma is embedded. ``qwen3-rag eval DATA_DIR`` measures
retrieval quality (presets, Matryoshka sizes, reranking) on a BEIR-format folder with
:mod:`qwen3_rag.evaluation`.

Re-running ``index`` is incremental and safe to interrupt at any point:

* every chunk has a deterministic id (``"{source}#{index}"``) and carries its file's content
  hash and chunk count in its metadata, so ``upsert`` can never duplicate a chunk;
* a file whose stored chunks all carry its current hash, and cover every index, is skipped;
* a changed file's chunks are upserted first and its leftover chunks deleted afterwards, so an
  interrupted run leaves old-or-new chunks (never none, never twice) and the next run redoes
  only the chunks that are missing or stale;
* chunks of files that vanished from under the indexed paths are deleted.

Example:
    >>> from qwen3_rag.cli import main
    >>> main(["index", "README.md", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
    >>> main(["query", "How do I run the tests?", "--db", "./qwen3_db"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["main"]

logger = logging.getLogger("qwen3_rag.cli")  # also when run as python -m qwen3_rag.cli

EMBED_MODEL_ENV = "QWEN3_RAG_EMBED_MODEL"
RERANK_MODEL_ENV = "QWEN3_RAG_RERANK_MODEL"
#: Test hook: after this many upserted batches, the indexer SIGKILLs itself.
KILL_AFTER_BATCHES_ENV = "QWEN3_RAG_TEST_KILL_AFTER_BATCHES"
DEFAULT_DB = "./qwen3_db"
DEFAULT_COLLECTION = "docs"
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "venv", "site-packages"})
SNIFF_BYTES = 8192
PAGE = 5000


class CliError(Exception):
    """An error the user can fix; printed as one line, exit status 1."""


# -- arguments -------------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _non_negative(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _common_parser() -> argparse.ArgumentParser:
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL

    common = argparse.ArgumentParser(add_help=False)
    store = common.add_argument_group("store")
    store.add_argument(
        "--db", default=DEFAULT_DB, help=f"folder of the Chroma store (default {DEFAULT_DB})"
    )
    store.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name (default {DEFAULT_COLLECTION})",
    )
    models = common.add_argument_group("models")
    models.add_argument(
        "--embed-model",
        help=f"Qwen3-Embedding hub id or local folder (default: ${EMBED_MODEL_ENV}, else the "
        f"model the collection was indexed with, else {DEFAULT_EMBEDDING_MODEL})",
    )
    models.add_argument(
        "--rerank-model",
        help=f"Qwen3-Reranker hub id or local folder (default: ${RERANK_MODEL_ENV}, else "
        f"{DEFAULT_RERANKER_MODEL}); used by query",
    )
    models.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    models.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    models.add_argument(
        "--dimensions",
        type=_positive,
        help="Matryoshka embedding size, 32..hidden size (default: full size; fixed at index)",
    )
    models.add_argument(
        "--instruction",
        help="query instruction: a preset name (web_search, question_answering, code_search, "
        "...) or a sentence (default: the collection's, else web_search)",
    )
    out = common.add_argument_group("output")
    out.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    out.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``qwen3-rag`` argument parser (``index``, ``query``, ``eval``, ``adapt``).

    Example:
        >>> args = build_parser().parse_args(["query", "what is it?", "-k", "3"])
        >>> args.k
        3
    """
    common = _common_parser()
    parser = argparse.ArgumentParser(
        prog="qwen3-rag",
        description="Index documents into an embedded Chroma store with Qwen3-Embedding and "
        "query them with Qwen3-Reranker. No server, no API key.",
        epilog="Example: qwen3-rag index docs README.md && qwen3-rag query 'How do I install it?'",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{index,query,eval,adapt}")

    index = sub.add_parser(
        "index",
        parents=[common],
        help="index text files (incremental; safe to interrupt and re-run)",
        description="Walk PATHs for text files, split them into token-sized chunks, embed them "
        "and upsert them. Unchanged files are skipped, changed files replaced, chunks of "
        "deleted files removed. Interrupting and re-running loses and duplicates nothing.",
    )
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    index.add_argument(
        "--chunk-size", type=_positive, default=512, help="tokens per chunk (default 512)"
    )
    index.add_argument(
        "--chunk-overlap",
        type=_non_negative,
        default=64,
        help="tokens shared by neighbouring chunks (default 64)",
    )
    index.add_argument(
        "--batch-size",
        type=_positive,
        default=32,
        help="chunks embedded and written per step (default 32)",
    )

    query = sub.add_parser(
        "query",
        parents=[common],
        help="search the index and rerank the candidates",
        description="Vector search for the question's nearest chunks, then score each "
        "candidate with Qwen3-Reranker and print the best.",
    )
    query.add_argument("question", help="the question or search query")
    query.add_argument(
        "-k", "--top-k", dest="k", type=_positive, default=5, help="results to print (default 5)"
    )
    query.add_argument(
        "--fetch-k",
        type=_positive,
        default=30,
        help="vector-search candidates handed to the reranker (default 30)",
    )
    query.add_argument(
        "--no-rerank", action="store_true", help="print the vector-search order, no reranker"
    )
    query.add_argument("--json", action="store_true", help="print the results as JSON")

    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.evaluation import DEFAULT_METRICS
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL

    ev = sub.add_parser(
        "eval",
        help="measure retrieval quality on a BEIR-format folder: presets, sizes, reranking",
        description="Embed the corpus once, search it exactly (or a Chroma collection with "
        "--db), optionally rerank, and print one table: configurations as rows, metrics as "
        "columns, the best value per column marked (*), each row tested against the first "
        "(+/-: significantly better/worse). Configurations: every --instruction x every "
        "--dimensions, and with --rerank each once more, reranked.",
        epilog="Example: qwen3-rag eval datasets/scifact --instruction web_search,fact_checking "
        "--dimensions 1024,256 --rerank --fetch-k 100",
    )
    ev.add_argument(
        "data_dir",
        metavar="DATA_DIR",
        help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
    )
    ev.add_argument("--split", default="test", help="qrels split to evaluate (default test)")
    ev.add_argument(
        "--instruction",
        action="append",
        metavar="INSTRUCTIONS",
        help="query instructions to compare: comma-separated preset names (web_search,"
        "question_answering), none for raw queries, or one sentence per --instruction "
        "(default: web_search; with --db, the collection's)",
    )
    ev.add_argument(
        "--dimensions",
        metavar="D[,D...]",
        help="Matryoshka sizes to compare, comma-separated (default: the full size)",
    )
    ev.add_argument(
        "--rerank", action="store_true", help="add each configuration reranked (Qwen3-Reranker)"
    )
    ev.add_argument(
        "--fetch-k",
        type=_positive,
        help="vector-search candidates handed to the reranker (default: -k)",
    )
    ev.add_argument(
        "-k",
        "--k",
        dest="k",
        type=_positive,
        help="results kept per query (default: the largest metric cutoff, 100)",
    )
    ev.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help=f"comma-separated metrics: nDCG@k, Recall@k, MRR@k, MAP@k, P@k (default "
        f"{','.join(DEFAULT_METRICS)})",
    )
    ev.add_argument(
        "--embed-model",
        help=f"Qwen3-Embedding hub id or local folder (default: ${EMBED_MODEL_ENV}, else the "
        f"collection's with --db, else {DEFAULT_EMBEDDING_MODEL})",
    )
    ev.add_argument(
        "--rerank-model",
        help=f"Qwen3-Reranker hub id or local folder (default: ${RERANK_MODEL_ENV}, else "
        f"{DEFAULT_RERANKER_MODEL})",
    )
    ev.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    ev.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    ev.add_argument(
        "--db", help="evaluate this Chroma store's collection (HNSW) instead of exact search"
    )
    ev.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        help=f"collection name, with --db (default {DEFAULT_COLLECTION})",
    )
    ev.add_argument(
        "--id-key",
        help="with --db: the metadata key holding each record's corpus id (source: the file "
        "path, as `query` prints it); default: the record ids are the corpus ids",
    )
    ev.add_argument("--runs", metavar="DIR", help="write each configuration's TREC run file here")
    ev.add_argument("--cache-dir", help="vector cache folder (default ~/.cache/qwen3-rag/vectors)")
    ev.add_argument("--no-cache", action="store_true", help="do not cache vectors on disk")
    ev.add_argument(
        "--test",
        choices=["permutation", "t-test"],
        default="permutation",
        help="paired significance test against the first row (default permutation)",
    )
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    ev.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")
    _add_adapt_parser(sub)
    return parser


# -- store -----------------------------------------------------------------------------------


def _open_client(db: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        str(db), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


def _persisted_ef_config(collection: Any, db: Path) -> dict[str, Any]:
    from qwen3_rag.chroma import EMBEDDING_FUNCTION_NAME

    persisted = collection.configuration_json.get("embedding_function") or {}
    if persisted.get("name") != EMBEDDING_FUNCTION_NAME:
        raise CliError(
            f"collection {collection.name!r} in {db} was not made by qwen3-rag (embedding "
            f"function {persisted.get('name')!r}); use another --collection"
        )
    return dict(persisted.get("config") or {})


def _embedding_function(args: argparse.Namespace, persisted: dict[str, Any] | None) -> Any:
    """The embedding function the flags, the env var and the persisted config ask for."""
    from qwen3_rag.chroma import Qwen3EmbeddingFunction
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL

    persisted = persisted or {}
    config = {
        "model": args.embed_model
        or os.environ.get(EMBED_MODEL_ENV)
        or persisted.get("model")
        or DEFAULT_EMBEDDING_MODEL,
        "revision": persisted.get("revision"),
        "instruction": args.instruction
        if args.instruction is not None
        else persisted.get("instruction", "web_search"),
        "instruction_symmetric": False
        if args.instruction is not None
        else persisted.get("instruction_symmetric", False),
        "dimensions": args.dimensions
        if args.dimensions is not None
        else persisted.get("dimensions"),
    }
    preset = Qwen3EmbeddingFunction.build_from_config(config).embedder.preset
    return Qwen3EmbeddingFunction(
        config["model"],
        instruction=preset if preset is not None else "",
        dimensions=config["dimensions"],
        revision=config["revision"],
        device=args.device,
        dtype=args.dtype,
    )


def _check_model(ef: Any) -> None:
    """Read the model's config now, so a wrong model fails before anything is written."""
    _ = ef.embedder.dimension  # also checks --dimensions against the model


def _all_metadata(collection: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=PAGE, offset=offset)
        for id_, meta in zip(page["ids"], page["metadatas"] or [], strict=False):
            yield id_, dict(meta or {})
        if len(page["ids"]) < PAGE:
            return
        offset += PAGE


# -- files and chunks ------------------------------------------------------------------------


def _walk(roots: list[Path], exclude: Path) -> list[Path]:
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
                if not d.startswith(".") and d not in SKIP_DIRS and (here / d) != exclude
            )
            files.update(here / f for f in filenames if not f.startswith("."))
    return sorted(files)


def _read_text(path: Path) -> str | None:
    """The file's text, or ``None`` for a binary (NUL byte or not UTF-8) file."""
    data = path.read_bytes()
    if b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_hash(text: str, chunk_size: int, chunk_overlap: int) -> str:
    h = hashlib.sha256(f"{chunk_size}:{chunk_overlap}\0".encode())
    h.update(text.encode("utf-8"))
    return h.hexdigest()


@dataclass
class Chunk:
    """One chunk of a file, as stored."""

    id: str
    text: str
    metadata: dict[str, Any]


def _chunk_id(source: str, index: int) -> str:
    return f"{source}#{index}"


def _make_splitter(
    tokenizer: Any, chunk_size: int, chunk_overlap: int
) -> Callable[[str], list[str]]:
    from llama_index.core.node_parser import SentenceSplitter

    def count(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    splitter = SentenceSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size - 1),
        tokenizer=count,
        include_metadata=False,
        include_prev_next_rel=False,
    )
    return splitter.split_text


def _chunks(
    source: str, text: str, file_hash: str, split: Callable[[str], list[str]]
) -> list[Chunk]:
    pieces = [p for p in split(text) if p.strip()]
    chunks: list[Chunk] = []
    cursor = 0
    for i, piece in enumerate(pieces):
        start = text.find(piece, cursor)
        if start < 0:
            start = text.find(piece)
        if start < 0:  # the splitter rewrote whitespace; keep the last known position
            start = cursor
        else:
            cursor = start + 1
        meta = {
            "source": source,
            "chunk": i,
            "n_chunks": len(pieces),
            "file_hash": file_hash,
            "start_char": start,
            "start_line": text.count("\n", 0, start) + 1,
        }
        chunks.append(Chunk(_chunk_id(source, i), piece, meta))
    return chunks


@dataclass
class _FilePlan:
    source: str
    pending: list[Chunk] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


@dataclass
class _Stats:
    files: int = 0
    unchanged: int = 0
    updated: int = 0
    binary: int = 0
    deleted_files: int = 0
    embedded: int = 0
    removed: int = 0


def _under(source: str, roots: list[Path]) -> bool:
    p = Path(source)
    return any(p == r or r in p.parents for r in roots)


# -- index -----------------------------------------------------------------------------------


def cmd_index(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag index``; returns the exit status."""
    from tqdm.auto import tqdm

    from qwen3_rag.loading import load_fast_tokenizer

    if args.chunk_overlap >= args.chunk_size:
        raise CliError(
            f"--chunk-overlap ({args.chunk_overlap}) must be smaller than --chunk-size "
            f"({args.chunk_size})"
        )
    roots: list[Path] = []
    for p in args.paths:
        path = Path(p).expanduser()
        if not path.exists():
            raise CliError(f"no such file or folder: {p}")
        roots.append(path.resolve())
    db = Path(args.db).expanduser().resolve()
    if db.exists() and not db.is_dir():
        raise CliError(f"--db {args.db} is a file, not a folder")
    files = _walk(roots, exclude=db)
    if not files:
        logger.warning("no files found under %s", ", ".join(args.paths))

    existing: dict[str, Any] | None = None
    collection = None
    client = None
    if (db / "chroma.sqlite3").exists():
        client = _open_client(db)
        if args.collection in {c.name for c in client.list_collections()}:
            collection = client.get_collection(args.collection)
            existing = _persisted_ef_config(collection, db)
    ef = _embedding_function(args, existing)
    if existing is not None:
        wanted = ef.get_config()
        diffs = [
            f"{key} {existing.get(key)!r} (asked for {wanted[key]!r})"
            for key in ("model", "revision", "dimensions", "instruction")
            if existing.get(key) != wanted[key]
        ]
        if diffs:
            raise CliError(
                f"collection {args.collection!r} in {args.db} was indexed with "
                f"{'; '.join(diffs)}: its vectors would not match; drop the option or "
                f"environment variable, or index into another --collection or --db"
            )
    _check_model(ef)
    if client is None:
        client = _open_client(db)
    if collection is None:
        collection = client.create_collection(args.collection, embedding_function=ef)
        logger.info("created collection %r in %s", args.collection, args.db)
    else:
        collection = client.get_collection(args.collection, embedding_function=ef)

    stored: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for id_, meta in _all_metadata(collection):
        stored.setdefault(str(meta.get("source", "")), []).append((id_, meta))

    stats = _Stats()
    plans: list[_FilePlan] = []
    seen: set[str] = set()
    split: Callable[[str], list[str]] | None = None
    for path in files:
        source = str(path)
        try:
            text = _read_text(path)
        except OSError as exc:
            logger.warning("skipped %s: %s", path, exc.strerror or exc)
            seen.add(source)  # unreadable now: keep whatever was indexed before
            continue
        seen.add(source)
        records = stored.get(source, [])
        if text is None:
            logger.info("skipped binary file %s", path)
            stats.binary += 1
            if records:
                plans.append(_FilePlan(source, stale=[i for i, _ in records]))
            continue
        stats.files += 1
        digest = _file_hash(text, args.chunk_size, args.chunk_overlap)
        current = {int(m["chunk"]): i for i, m in records if m.get("file_hash") == digest}
        total = next((int(m["n_chunks"]) for _, m in records if m.get("file_hash") == digest), -1)
        if total >= 0 and all(k in current for k in range(total)):
            keep = {_chunk_id(source, k) for k in range(total)}
            stale = [i for i, _ in records if i not in keep]
            if stale:
                plans.append(_FilePlan(source, stale=stale))
            stats.unchanged += 1
            continue
        if split is None:
            tokenizer = load_fast_tokenizer(ef.embedder.source)
            split = _make_splitter(tokenizer, args.chunk_size, args.chunk_overlap)
        chunks = _chunks(source, text, digest, split)
        keep = {c.id for c in chunks}
        plans.append(
            _FilePlan(
                source,
                pending=[c for c in chunks if c.id not in current.values()],
                stale=[i for i, _ in records if i not in keep],
            )
        )
        stats.updated += 1
    for source, records in stored.items():
        if source not in seen and _under(source, roots):
            plans.append(_FilePlan(source, stale=[i for i, _ in records]))
            stats.deleted_files += 1
            logger.info("removing chunks of deleted file %s", source)

    # Files with nothing to embed: drop their stale chunks now.
    for plan in plans:
        if not plan.pending and plan.stale:
            collection.delete(ids=plan.stale)
            stats.removed += len(plan.stale)
    work = [p for p in plans if p.pending]
    todo = sum(len(p.pending) for p in work)
    kill_after = int(os.environ.get(KILL_AFTER_BATCHES_ENV, "0") or 0)
    batches = 0
    with tqdm(
        total=todo, desc="Indexing", unit="chunk", disable=None if not args.quiet else True
    ) as bar:
        queue = [(plan, chunk) for plan in work for chunk in plan.pending]
        left = {id(plan): len(plan.pending) for plan in work}
        for start in range(0, len(queue), args.batch_size):
            batch = queue[start : start + args.batch_size]
            collection.upsert(
                ids=[c.id for _, c in batch],
                documents=[c.text for _, c in batch],
                metadatas=[c.metadata for _, c in batch],
            )
            stats.embedded += len(batch)
            bar.update(len(batch))
            # A file's leftover chunks go only once all its new chunks are written.
            for plan, _ in batch:
                left[id(plan)] -= 1
                if left[id(plan)] == 0 and plan.stale:
                    collection.delete(ids=plan.stale)
                    stats.removed += len(plan.stale)
            batches += 1
            if kill_after and batches >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
    logger.info(
        "%d chunks embedded, %d removed; %d text files (%d unchanged, %d new or changed), "
        "%d deleted, %d binary skipped; %s now holds %d chunks in %r",
        stats.embedded,
        stats.removed,
        stats.files,
        stats.unchanged,
        stats.updated,
        stats.deleted_files,
        stats.binary,
        args.db,
        collection.count(),
        args.collection,
    )
    return 0


# -- query -----------------------------------------------------------------------------------


def _display_path(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


def cmd_query(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag query``; returns the exit status."""
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL, Reranker

    question = args.question.strip()
    if not question:
        raise CliError("the question is empty")
    db = Path(args.db).expanduser().resolve()
    if not (db / "chroma.sqlite3").is_file():
        raise CliError(f"no index at {args.db}: run `qwen3-rag index PATH... --db {args.db}` first")
    client = _open_client(db)
    names = sorted(c.name for c in client.list_collections())
    if args.collection not in names:
        have = f" (it has: {', '.join(names)})" if names else ""
        raise CliError(
            f"no collection {args.collection!r} in {args.db}{have}: run "
            f"`qwen3-rag index PATH... --db {args.db} --collection {args.collection}` first"
        )
    collection = client.get_collection(args.collection)
    persisted = _persisted_ef_config(collection, db)
    count = collection.count()
    if count == 0:
        raise CliError(
            f"collection {args.collection!r} in {args.db} is empty: index some text files first"
        )
    ef = _embedding_function(args, persisted)
    wanted = ef.get_config()
    if wanted["dimensions"] != persisted.get("dimensions"):
        raise CliError(
            f"collection {args.collection!r} was indexed with dimensions="
            f"{persisted.get('dimensions')}, not {wanted['dimensions']}: drop --dimensions"
        )
    if wanted["model"] != persisted.get("model"):
        logger.warning(
            "collection %r was indexed with %s; querying with %s",
            args.collection,
            persisted.get("model"),
            wanted["model"],
        )
    _check_model(ef)  # a missing model fails here, with the core's message
    collection = client.get_collection(args.collection, embedding_function=ef)
    fetch = min(count, args.k if args.no_rerank else max(args.fetch_k, args.k))
    found = collection.query(
        query_texts=[question], n_results=fetch, include=["documents", "metadatas", "distances"]
    )
    ids: list[str] = found["ids"][0]
    docs: list[str] = [d or "" for d in (found["documents"] or [[]])[0]]
    metas: list[dict[str, Any]] = [dict(m or {}) for m in (found["metadatas"] or [[]])[0]]
    vector = [1.0 - float(d) for d in (found["distances"] or [[]])[0]]

    order: list[tuple[int, float | None]]
    if args.no_rerank:
        order = [(i, None) for i in range(min(len(ids), args.k))]
    else:
        model = args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL
        instruction = ef.embedder.preset or "web_search"
        reranker = Reranker(model, instruction=instruction, device=args.device, dtype=args.dtype)
        order = [(i, s) for i, s in reranker.rank(question, docs, top_n=args.k)]

    results = [
        {
            "rank": rank,
            "id": ids[i],
            "source": _display_path(str(metas[i].get("source", ""))),
            "chunk": metas[i].get("chunk"),
            "start_line": metas[i].get("start_line"),
            "rerank_score": score,
            "vector_score": vector[i],
            "text": docs[i],
        }
        for rank, (i, score) in enumerate(order, start=1)
    ]
    if args.json:
        sys.stdout.write(json.dumps({"query": question, "results": results}, indent=2) + "\n")
        return 0
    lines = []
    for r in results:
        rerank = "   -  " if r["rerank_score"] is None else f"{r['rerank_score']:.4f}"
        snippet = " ".join(str(r["text"]).split())
        if len(snippet) > 240:
            snippet = snippet[:239] + "…"
        lines.append(
            f"{r['rank']}. rerank {rerank}  vector {r['vector_score']:.4f}  "
            f"{r['source']}:{r['start_line']}  (chunk {r['chunk']})\n   {snippet}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


# -- eval ------------------------------------------------------------------------------------


def _eval_instructions(values: list[str] | None) -> list[str | None]:
    """``--instruction`` values: preset lists split at commas, sentences kept whole."""
    from qwen3_rag.instructions import PRESETS

    if not values:
        return [None]  # the embedder's (or the collection's) own
    out: list[str | None] = []
    for value in values:
        pieces = [p.strip() for p in value.split(",")]
        if all(p in PRESETS or p.lower() == "none" for p in pieces):
            out.extend("" if p.lower() == "none" else p for p in pieces)
        else:
            out.append(value)
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag eval``; returns the exit status."""
    from qwen3_rag import evaluation
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL, Embedder
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL, Reranker

    logging.getLogger(evaluation.__name__).setLevel(logger.getEffectiveLevel())
    try:
        metrics = [evaluation.parse_metric(m).name for m in args.metrics.split(",") if m.strip()]
    except ValueError as exc:
        raise CliError(f"--metrics: {exc}") from None
    if not metrics:
        raise CliError("--metrics is empty")
    k = args.k or max(evaluation.parse_metric(m).k for m in metrics)
    if args.rerank and args.fetch_k is not None and args.fetch_k < k:
        raise CliError(
            f"--fetch-k ({args.fetch_k}) must be at least -k ({k}): the reranker must see the "
            f"results it keeps"
        )
    if args.fetch_k is not None and not args.rerank:
        logger.warning("--fetch-k is used only with --rerank")
    dimensions: list[int | None] = [None]
    if args.dimensions:
        try:
            dimensions = [int(d) for d in args.dimensions.split(",") if d.strip()]
        except ValueError:
            raise CliError(
                f"--dimensions {args.dimensions!r}: expected integers like 1024,256"
            ) from None
    if args.id_key and not args.db:
        raise CliError("--id-key applies only with --db")
    if args.db and args.dimensions:
        raise CliError("--dimensions cannot be used with --db: the collection's size is fixed")
    data = evaluation.load_beir(args.data_dir, split=args.split)
    logger.info(
        "%s, split %s: %d queries with relevant documents, %d documents",
        args.data_dir,
        args.split,
        len(data.queries),
        len(data.corpus),
    )
    model = args.embed_model or os.environ.get(EMBED_MODEL_ENV)
    collection = None
    revision = None
    if args.db:
        db = Path(args.db).expanduser().resolve()
        if not (db / "chroma.sqlite3").is_file():
            raise CliError(f"--db {args.db}: no Chroma store there (run `qwen3-rag index` first)")
        client = _open_client(db)
        names = sorted(c.name for c in client.list_collections())
        if args.collection not in names:
            have = f" (it has: {', '.join(names)})" if names else ""
            raise CliError(f"--collection {args.collection!r}: not in {args.db}{have}")
        collection = client.get_collection(args.collection)
        persisted = _persisted_ef_config(collection, db)
        model = model or persisted.get("model")
        revision = persisted.get("revision")
    embedder = Embedder(
        model or DEFAULT_EMBEDDING_MODEL, revision=revision, device=args.device, dtype=args.dtype
    )
    reranker = None
    if args.rerank:
        reranker = Reranker(
            args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL,
            device=args.device,
            dtype=args.dtype,
        )
    instructions = _eval_instructions(args.instruction)
    vector_rows = [
        evaluation.Configuration(instruction=i, dimensions=d)
        for i in instructions
        for d in dimensions
    ]
    reranked = [
        evaluation.Configuration(
            instruction=c.instruction, dimensions=c.dimensions, rerank=True, fetch_k=args.fetch_k
        )
        for c in vector_rows
        if args.rerank
    ]
    cache: Any = False if args.no_cache else args.cache_dir
    report = evaluation.evaluate(
        data,
        vector_rows + reranked,
        embedder=embedder,
        reranker=reranker,
        metrics=metrics,
        k=k,
        collection=collection,
        id_key=args.id_key,
        cache=cache,
        runs_dir=args.runs,
        test=args.test,
        show_progress=None if not args.quiet else False,
    )
    if args.runs:
        logger.info("run files written to %s", args.runs)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.table() + "\n")
    return 0


# -- adapt -----------------------------------------------------------------------------------


def _fraction(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {x}")
    return x


def _pair(kind: Callable[[str], Any]) -> Callable[[str], tuple[Any, Any]]:
    def parse(value: str) -> tuple[Any, Any]:
        parts = value.split(",")
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {value!r}")
        try:
            return kind(parts[0]), kind(parts[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two numbers, got {value!r}") from None

    return parse


def _add_adapt_parser(sub: Any) -> None:
    from qwen3_rag.adapt.pipeline import STAGES

    ad = sub.add_parser(
        "adapt",
        help="adapt Qwen3-Embedding to your documents (synthetic queries, LoRA, merge, eval)",
        description="Chunk the documents like `index`, have an LLM write a query per chunk, "
        "filter the pairs, mine hard negatives, train a LoRA adapter, merge the epoch "
        "checkpoints (slerp) into a verified model folder OUT/model, and compare it with the "
        "base model on held-out chunks. Interrupted? Run the same command again: finished "
        "stages are skipped, synthesis and training resume.",
        epilog="Example: qwen3-rag adapt docs/ --llm ollama:qwen3:4b --out adapted",
    )
    ad.add_argument("paths", nargs="+", metavar="CORPUS", help="files or folders of text")
    ad.add_argument(
        "--llm",
        help="the LLM that writes the queries: a local chat-model folder (transformers), or "
        "a LangChain init_chat_model spec such as ollama:qwen3:4b or openai:gpt-4o-mini "
        '(pip install "qwen3-rag[langchain]" and the provider package); needed to synthesize',
    )
    ad.add_argument("--out", required=True, help="output folder (resumed when it holds a run)")
    ad.add_argument(
        "--stage",
        choices=STAGES,
        help="run one stage again: synthesize retries the passages that failed, train "
        "starts over, the others recompute",
    )
    ad.add_argument(
        "--overwrite", action="store_true", help="delete a previous run's outputs in --out first"
    )
    models = ad.add_argument_group("models")
    models.add_argument(
        "--embed-model",
        help=f"base Qwen3-Embedding hub id or folder (default: ${EMBED_MODEL_ENV}, else "
        "Qwen/Qwen3-Embedding-0.6B)",
    )
    models.add_argument(
        "--rerank-model",
        help="Qwen3-Reranker hub id or folder: checks mined negatives (and enables "
        "--rerank-band, --train-reranker); default none",
    )
    models.add_argument(
        "--instruction",
        help="query instruction trained and evaluated with: a preset name or a sentence "
        "(default web_search); use the same one with the adapted model",
    )
    models.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda, mps, cpu)")
    models.add_argument(
        "--dtype", help="float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on CUDA)"
    )
    data = ad.add_argument_group("data")
    data.add_argument("--chunk-size", type=_positive, default=512, help="tokens per chunk (512)")
    data.add_argument(
        "--chunk-overlap", type=_non_negative, default=64, help="tokens shared by chunks (64)"
    )
    data.add_argument(
        "--languages", default="English", help="query languages, comma-separated (English)"
    )
    data.add_argument(
        "--query-words",
        type=_pair(int),
        default=(4, 20),
        metavar="MIN,MAX",
        help="query length in words (4,20)",
    )
    data.add_argument(
        "--workers",
        type=_positive,
        help="LLM calls in flight (default 8 for a chat-model spec, 1 for a local folder)",
    )
    data.add_argument(
        "--retries", type=_non_negative, default=2, help="attempts after a bad reply (2)"
    )
    data.add_argument(
        "--threshold",
        default="0.7",
        help="keep pairs whose base-model cosine similarity reaches this (0.7, the report's "
        "value for the real models); 'none' keeps all",
    )
    data.add_argument(
        "--rerank-band",
        type=_pair(float),
        metavar="LOW,HIGH",
        help="keep pairs whose reranker P(yes) lies within (needs a reranker)",
    )
    data.add_argument("--test-fraction", type=_fraction, default=0.2, help="held out (0.2)")
    data.add_argument("--dev-fraction", type=_fraction, default=0.1, help="dev loss (0.1)")
    data.add_argument(
        "--negatives", type=_non_negative, default=3, help="hard negatives per query (3)"
    )
    data.add_argument(
        "--mine-margin",
        type=float,
        default=0.05,
        help="skip negatives scoring within this of the positive (0.05)",
    )
    train = ad.add_argument_group("training")
    train.add_argument(
        "--epochs", type=_positive, default=2, help="epochs, one checkpoint each (2)"
    )
    train.add_argument("--batch-size", type=_positive, default=16, help="queries per step (16)")
    train.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (1e-4)")
    train.add_argument("--lora-r", type=_positive, default=16, help="LoRA rank (16)")
    train.add_argument("--lora-alpha", type=_positive, default=32, help="LoRA alpha (32)")
    train.add_argument("--temperature", type=float, default=0.05, help="InfoNCE temperature (0.05)")
    train.add_argument(
        "--max-length", type=_positive, default=512, help="most tokens per text in training (512)"
    )
    train.add_argument(
        "--gradient-checkpointing", action="store_true", help="less memory, ~30%% more compute"
    )
    train.add_argument(
        "--train-reranker", action="store_true", help="also fine-tune the reranker (yes/no SFT)"
    )
    train.add_argument(
        "--merge",
        choices=("all", "last"),
        default="all",
        help="merge every epoch checkpoint (slerp, default) or only the last",
    )
    train.add_argument("--seed", type=_non_negative, default=0, help="random seed (0)")
    out = ad.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the summary as JSON")
    out.add_argument("-v", "--verbose", action="store_true", help="log details and tracebacks")
    out.add_argument("-q", "--quiet", action="store_true", help="log only warnings and errors")


def _llm(spec: str, args: argparse.Namespace) -> Any:
    """``--llm``: a local chat-model folder, else a LangChain ``init_chat_model`` spec."""
    if Path(spec).expanduser().is_dir():
        from qwen3_rag.adapt.llm import TransformersChatLLM

        return TransformersChatLLM(
            str(Path(spec).expanduser()), device=args.device, dtype=args.dtype
        )
    try:
        import langchain_qwen3
    except ImportError as exc:
        raise CliError(
            f"--llm {spec}: a chat-model spec needs LangChain: pip install "
            f'"qwen3-rag[langchain]" ({exc})'
        ) from exc
    try:
        return langchain_qwen3.llm_from_spec(spec)
    except ImportError as exc:
        raise CliError(f"--llm {spec}: {_one_line(exc)}") from exc
    except ValueError as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise CliError(
            f"--llm {spec}: not a folder, and LangChain cannot use it as a chat-model spec "
            f"(provider:model, e.g. ollama:qwen3:4b): {first}"
        ) from exc


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag adapt``; returns the exit status."""
    from qwen3_rag.adapt import AdaptConfig, TrainConfig, adapt
    from qwen3_rag.embedder import DEFAULT_EMBEDDING_MODEL
    from qwen3_rag.loading import tune_cpu_threads
    from qwen3_rag.reranker import DEFAULT_RERANKER_MODEL

    tune_cpu_threads()
    threshold = None if args.threshold.strip().lower() == "none" else float(args.threshold)
    needs_reranker = args.rerank_band is not None or args.train_reranker
    reranker = args.rerank_model or (
        (os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL) if needs_reranker else None
    )
    local = args.llm is not None and Path(args.llm).expanduser().is_dir()
    config = AdaptConfig(
        base_model=args.embed_model or os.environ.get(EMBED_MODEL_ENV) or DEFAULT_EMBEDDING_MODEL,
        reranker_model=reranker,
        instruction=args.instruction,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        languages=tuple(x.strip() for x in args.languages.split(",") if x.strip()),
        query_lengths=args.query_words,
        retries=args.retries,
        workers=args.workers or (1 if local else 8),
        threshold=threshold,
        rerank_band=args.rerank_band,
        test_fraction=args.test_fraction,
        dev_fraction=args.dev_fraction,
        mine_margin=args.mine_margin,
        train=TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.lr,
            lora_r=args.lora_r,
            lora_alpha=args.lora_alpha,
            temperature=args.temperature,
            negatives=args.negatives,
            max_length=args.max_length,
            gradient_checkpointing=args.gradient_checkpointing,
            seed=args.seed,
        ),
        train_reranker=args.train_reranker,
        merge=args.merge,
        seed=args.seed,
        device=args.device,
        dtype=args.dtype,
        show_progress=None if not args.quiet else False,
    )
    llm = _llm(args.llm, args) if args.llm else None
    summary = adapt(
        args.paths, llm=llm, out=args.out, config=config, stage=args.stage, overwrite=args.overwrite
    )
    if args.json:
        sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(summary.table() + "\n")
    return 0


# -- entry point -----------------------------------------------------------------------------


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the command's log records to the current ``sys.stderr``, as bare messages."""


def _setup_logging(verbose: bool, quiet: bool) -> None:
    package = logging.getLogger("qwen3_rag")
    package.handlers[:] = [h for h in package.handlers if not isinstance(h, _CliHandler)]
    handler = _CliHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package.addHandler(handler)
    package.propagate = False
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    for noisy in ("chromadb", "httpx", "transformers", "torch", "torchao"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)
    if not verbose:  # our own bar shows indexing progress; transformers' load bars are noise
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qwen3-rag`` command; returns the exit status.

    Args:
        argv: Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        0 on success, 1 on an error (printed as one line), 130 when interrupted.

    Example:
        >>> main(["query", "How do I install it?", "--json"])  # doctest: +SKIP
        0
    """
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    command = {"index": cmd_index, "query": cmd_query, "eval": cmd_eval, "adapt": cmd_adapt}[
        args.command
    ]
    try:
        return command(args)
    except KeyboardInterrupt:
        logger.error("interrupted: what was written is kept; run the same command again to finish")
        return 130
    except CliError as exc:
        logger.error("error: %s", exc)
        return 1
    except Exception as exc:
        logger.debug("traceback", exc_info=True)
        from qwen3_rag.loading import ModelLoadError

        known = (ModelLoadError, ValueError, TypeError, OSError)
        prefix = "" if isinstance(exc, known) else f"{type(exc).__name__}: "
        logger.error("error: %s%s", prefix, _one_line(exc))
        return 1


if __name__ == "__main__":
    sys.exit(main())
