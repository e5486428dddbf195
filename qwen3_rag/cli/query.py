"""``qwen3-rag query``: vector search in a collection, then Qwen3-Reranker."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwen3_rag.cli._common import (
    EMBED_MODEL_ENV,
    EMBED_URL_ENV,
    RERANK_MODEL_ENV,
    RERANK_URL_ENV,
    CliError,
    chroma_url,
    connect,
    instruction_arg,
    long_document_options,
    model_errors,
    positive,
    precision_settings,
    server_url,
    store_errors,
)

if TYPE_CHECKING:
    from qwen3_rag.store import SearchHit

logger = logging.getLogger("qwen3_rag.cli")


def add_parser(sub: Any, common: list[argparse.ArgumentParser]) -> None:
    """Register ``query`` on the subcommands ``sub``."""
    query = sub.add_parser(
        "query",
        parents=common,
        help="search the index and rerank the candidates",
        description="Vector search for the question's nearest chunks, then score each "
        "candidate with Qwen3-Reranker and print the best.",
    )
    query.set_defaults(run=cmd_query)
    query.add_argument("question", help="the question or search query")
    query.add_argument(
        "-k", "--top-k", dest="k", type=positive, default=5, help="results to print (default 5)"
    )
    query.add_argument(
        "--fetch-k",
        type=positive,
        default=30,
        help="vector-search candidates handed to the reranker (default 30)",
    )
    query.add_argument(
        "--no-rerank", action="store_true", help="print the vector-search order, no reranker"
    )
    query.add_argument("--json", action="store_true", help="print the results as JSON")
    long_document_options(query)


def cmd_query(args: argparse.Namespace) -> int:
    """Run ``qwen3-rag query``; returns the exit status."""
    from qwen3_rag import DEFAULT_RERANKER_MODEL, Reranker, store
    from qwen3_rag.loading import tune_cpu_threads

    question = args.question.strip()
    if not question:
        raise CliError("the question is empty")
    db = Path(args.db).expanduser()
    url = chroma_url(args)
    if url is None and not store.has_store(db):
        raise CliError(f"no index at {args.db}: run `qwen3-rag index PATH... --db {args.db}` first")
    tune_cpu_threads()
    client = connect(url) if url is not None else None
    with store_errors(args):
        if client is None:
            client = store.open_client(db)
        stored = store.stored_config(client, args.collection)
        function = store.embedding_function_for(
            stored,
            model=args.embed_model or os.environ.get(EMBED_MODEL_ENV),
            instruction=instruction_arg(args.instruction),
            dimensions=args.dimensions,
            device=args.device,
            base_url=server_url(args.embed_url, EMBED_URL_ENV, (stored or {}).get("base_url")),
            **precision_settings(args.precision, args.dtype),
        )
        with model_errors("embedding", function.embedder.model):
            opened = store.open_for_search(client, args.collection, embedding_function=function)
        reranker = None
        if not args.no_rerank:
            model = args.rerank_model or os.environ.get(RERANK_MODEL_ENV) or DEFAULT_RERANKER_MODEL
            reranker = Reranker(
                model,
                instruction=function.embedder.preset or "web_search",
                device=args.device,
                base_url=server_url(args.rerank_url, RERANK_URL_ENV),
                **precision_settings(args.precision, args.dtype),
                long_documents=args.long_documents,
                window_overlap=args.window_overlap,
                max_windows=args.max_windows,
                max_length=args.rerank_max_length,
            )
            with model_errors("reranker", model):
                reranker.load()
        with model_errors("embedding", function.embedder.model):
            hits = store.search(
                opened.collection, question, k=args.k, fetch_k=args.fetch_k, reranker=reranker
            )
    results = [_result(rank, hit) for rank, hit in enumerate(hits, start=1)]
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


def _display_path(source: str) -> str:
    try:
        return str(Path(source).relative_to(Path.cwd()))
    except ValueError:
        return source


def _result(rank: int, hit: SearchHit) -> dict[str, Any]:
    return {
        "rank": rank,
        "id": hit.id,
        "source": _display_path(hit.source),
        "chunk": hit.metadata.get("chunk"),
        "start_line": hit.metadata.get("start_line"),
        "rerank_score": hit.rerank_score,
        "vector_score": hit.vector_score,
        "window": list(hit.window) if hit.window is not None else None,
        "text": hit.text,
    }
